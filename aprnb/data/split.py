"""Train/test splitters: leave-one-out, per-user random holdout, validation carve-out.

All splitters return ``(train, test)`` as binary CSR matrices of the input's
shape, never share an interaction between the two, and are reproducible from
``random_state``. A user with a single interaction keeps it in train (there is
nothing left to learn from otherwise), so such users have no test item.
"""
import numpy as np
import scipy.sparse as sp

from .._validation import check_float, check_interactions, check_random_state
from .dataset import Interactions, _binary_csr


def _split_by_mask(M, test_mask):
    coo_rows = np.repeat(np.arange(M.shape[0]), np.diff(M.indptr))
    tr = _binary_csr(coo_rows[~test_mask], M.indices[~test_mask], M.shape)
    te = _binary_csr(coo_rows[test_mask], M.indices[test_mask], M.shape)
    return tr, te


def leave_one_out(data, random_state=None):
    """Hold out one interaction per user (with at least two interactions).

    Parameters
    ----------
    data : Interactions or sparse/dense matrix
        With an :class:`~aprnb.data.Interactions` log that has timestamps, each
        user's latest interaction is held out (ties broken at random, seeded);
        otherwise the held-out interaction is chosen uniformly at random.
    random_state : None, int or numpy.random.Generator

    Returns
    -------
    train, test : scipy.sparse.csr_matrix
    """
    rng = check_random_state(random_state)
    if isinstance(data, Interactions):
        if data.timestamps is not None:
            return _loo_latest(data, rng)
        M = data.to_csr()
    else:
        M = check_interactions(data, "data")
    deg = np.diff(M.indptr)
    pick = M.indptr[:-1] + np.floor(rng.random(M.shape[0]) * deg).astype(np.int64)
    has = deg >= 2
    mask = np.zeros(M.nnz, dtype=bool)
    mask[pick[has]] = True
    return _split_by_mask(M, mask)


def _loo_latest(log, rng):
    shape = (log.n_users, log.n_items)
    ts = np.where(np.isnan(log.timestamps), -np.inf, log.timestamps)
    # Deduplicate (user, item), keeping the latest timestamp of each pair.
    order = np.lexsort((ts, log.items, log.users))
    u, i, t = log.users[order], log.items[order], ts[order]
    last = np.ones(len(u), dtype=bool)
    last[:-1] = (u[1:] != u[:-1]) | (i[1:] != i[:-1])
    u, i, t = u[last], i[last], t[last]
    # Per user, the latest pair; random tie break.
    order = np.lexsort((rng.random(len(u)), t, u))
    u, i = u[order], i[order]
    is_last = np.ones(len(u), dtype=bool)
    is_last[:-1] = u[1:] != u[:-1]
    deg = np.bincount(u, minlength=shape[0])
    test_mask = is_last & (deg[u] >= 2)
    return (_binary_csr(u[~test_mask], i[~test_mask], shape),
            _binary_csr(u[test_mask], i[test_mask], shape))


def holdout_split(data, test_fraction=0.2, random_state=None):
    """Per-user random holdout: ``round(test_fraction * deg)`` items per user go to test.

    Every user keeps at least one training item; users with one interaction get
    no test item.
    """
    test_fraction = check_float(test_fraction, "test_fraction", 0.0, 1.0, False, False)
    rng = check_random_state(random_state)
    M = data.to_csr() if isinstance(data, Interactions) else check_interactions(data, "data")
    deg = np.diff(M.indptr)
    n_test = np.minimum(np.round(test_fraction * deg).astype(np.int64), deg - 1)
    n_test = np.maximum(n_test, 0)
    rows = np.repeat(np.arange(M.shape[0]), deg)
    order = np.lexsort((rng.random(M.nnz), rows))   # random order within each row
    rank = np.empty(M.nnz, dtype=np.int64)
    rank[order] = np.arange(M.nnz) - np.repeat(M.indptr[:-1], deg)
    return _split_by_mask(M, rank < n_test[rows])


def validation_split(train, protocol="loo", test_fraction=0.2, random_state=None):
    """Carve a validation set out of ``train`` (never touch the test set for tuning).

    ``protocol="loo"`` holds out one random interaction per user;
    ``"holdout"`` a ``test_fraction`` of each user's items. Returns
    ``(train_part, validation)``.
    """
    if protocol == "loo":
        return leave_one_out(train, random_state=random_state)
    if protocol == "holdout":
        return holdout_split(train, test_fraction=test_fraction, random_state=random_state)
    raise ValueError(f"protocol must be 'loo' or 'holdout', got {protocol!r}")


def merge(*mats):
    """Union of binary interaction matrices of one shape (e.g. train + test)."""
    if not mats:
        raise ValueError("merge needs at least one matrix")
    M = check_interactions(mats[0], "matrix 0")
    for k, X in enumerate(mats[1:], 1):
        M = M + check_interactions(X, f"matrix {k}", shape=M.shape)
    return check_interactions(sp.csr_matrix(M), "merged")
