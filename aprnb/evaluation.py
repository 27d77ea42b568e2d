"""Full-ranking top-K evaluation: one engine for every protocol and for ``recommend``.

Users are processed in blocks. For top-K and the holdout metrics the scores of a
block are computed one cache-sized tile of items at a time (``P[block] @
Q[tile].T``, one BLAS call) and a Numba kernel excludes the training items and
feeds each user's top-K heap while the tile is still in cache; after the last
tile the heaps are sorted and the metrics computed. Leave-one-out needs every
score of a user to rank the held-out item, so it scores a block against all
items (about 64 MB) at once. The full ``n_users x n_items`` score matrix is never
built.

Threads: blocks are shared out among ``n_threads`` Python threads, each running
its own BLAS calls (BLAS limited to one thread) and GIL-free kernels. Letting
BLAS and Numba each start their own threads instead made the two pools fight
over the cores, and two threads were slower than one.
"""
import warnings

import numpy as np
import scipy.sparse as sp

from ._provenance import check_split as _check_split
from ._provenance import overlap
from ._threads import check_n_threads, numba_threads, run_tasks, single_threaded_blas
from ._validation import (check_bool, check_choice, check_factors, check_interactions,
                          check_k_bound, check_ks)
from .kernels.topk import holdout_finish, loo_block, push_tile, sampled_block, topk_finish

DEFAULT_BLOCK_BYTES = 64 * 2**20
#: Users per block for the tiled top-K (holdout metrics and ``recommend``).
TILE_ROWS = 1024
#: Bytes of one tile of scores in the tiled top-K: small enough to stay in cache.
TILE_BYTES = 8 * 2**20
PROTOCOLS = ("holdout", "loo", "sampled")


def factors_of(model):
    """``(P, Q)`` from a fitted model or a ``(user_factors, item_factors)`` pair."""
    if isinstance(model, tuple) and len(model) == 2:
        return check_factors(*model)
    if hasattr(model, "user_factors_") and hasattr(model, "item_factors_"):
        return check_factors(model.user_factors_, model.item_factors_, type(model).__name__)
    if hasattr(model, "fit") and hasattr(model, "get_params"):
        raise ValueError(f"{type(model).__name__} is not fitted yet; call fit(train) first")
    raise TypeError(f"model must be a fitted aprnb model or a (user_factors, item_factors) "
                    f"tuple of arrays, got {type(model).__name__}")


def _no_overflow(P, Q):
    """Return ``(P, Q)`` in a dtype in which no score ``p_u . q_i`` can overflow.

    By Cauchy-Schwarz ``|p . q| <= max|p| max|q|``. Excluded items are marked
    with -inf in the score blocks, so a real score must never reach +-inf: when
    the bound exceeds the float32 range the scores are computed in float64.
    """
    bound = float(np.sqrt(np.max(np.einsum("ij,ij->i", P, P, dtype=np.float64)))
                  * np.sqrt(np.max(np.einsum("ij,ij->i", Q, Q, dtype=np.float64))))
    if bound < np.finfo(P.dtype).max / 4:
        return P, Q
    if bound < np.finfo(np.float64).max / 4:
        return P.astype(np.float64), Q.astype(np.float64)
    raise ValueError(f"factors are so large (|p|*|q| up to {bound:.3g}) that scores overflow "
                     f"float64; the model has diverged, refit it with a smaller learning rate")


def _block_rows(n_items, itemsize, block_size, n_rows, n_threads=1, default=None):
    """Users per block: ``block_size`` (validated), or the default (``default`` users,
    else about DEFAULT_BLOCK_BYTES of scores) cut so that every worker gets a block."""
    if block_size is None:
        block_size = default or max(16, DEFAULT_BLOCK_BYTES // max(1, n_items * itemsize))
        block_size = min(block_size, -(-n_rows // n_threads))
    elif isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) \
            or block_size < 1:
        raise ValueError(f"block_size must be a positive int (users per block) or None, "
                         f"got {block_size!r}")
    return int(max(1, min(block_size, n_rows)))


def _n_workers(n_threads, n_rows, rows):
    """Workers that get at least one of the ``ceil(n_rows / rows)`` blocks."""
    return max(1, min(n_threads, -(-n_rows // rows)))


def _tile_buffers(n_items, dtype, block_size, n_rows, n_threads):
    """``(users per block, one score buffer per worker)`` for ``_tiled_heaps``."""
    itemsize = np.dtype(dtype).itemsize
    rows = _block_rows(n_items, itemsize, block_size, n_rows, n_threads, default=TILE_ROWS)
    cols = int(min(n_items, max(1, TILE_BYTES // (rows * itemsize))))
    return rows, [np.empty(rows * cols, dtype=dtype)
                  for _ in range(_n_workers(n_threads, n_rows, rows))]


def _check_users(users, n_users, name="users", unique=False):
    """Indices as an int64 array (None = all); ``name`` labels the error messages.
    With ``unique``, a repeated index is an error (it would be counted twice)."""
    if users is None:
        return np.arange(n_users, dtype=np.int64)
    arr = np.asarray(users)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1 or arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer)
                                                  or arr.size == 0):
        raise TypeError(f"{name} must be an int or a 1-D array of int indices, got "
                        f"{arr.dtype} array of shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= n_users):
        raise ValueError(f"{name} contains indices outside [0, {n_users}); there are "
                         f"{n_users} {name}")
    if unique and arr.size:
        vals, counts = np.unique(arr, return_counts=True)
        if counts.max() > 1:
            raise ValueError(f"{name} repeats {vals[counts > 1][:5].tolist()}; each would be "
                             f"counted more than once in the means: pass each once "
                             f"(np.unique({name}))")
    return arr.astype(np.int64)


def metric_names(protocol, ks):
    """Names of the metrics :func:`evaluate` returns for ``protocol`` and cut-offs ``ks``."""
    if protocol == "holdout":
        return [f"{m}@{k}" for k in ks for m in ("recall", "precision", "ndcg", "hr")]
    return [f"{m}@{k}" for k in ks for m in ("hr", "ndcg")] + ["auc"]


def _scores(P, Q, rows, buf):
    """``P[rows] @ Q.T`` (one BLAS call) written into the worker's buffer ``buf``."""
    out = buf[:len(rows)]
    np.matmul(P[rows], Q.T, out=out)
    return out


def _tiled_heaps(P, Q, users, ex_indptr, ex_indices, k, buf):
    """Top-``k`` heaps of ``users`` (training items excluded), one item tile at a time.

    Each tile ``P[users] @ Q[lo:hi].T`` is sized (``buf``) to stay in the CPU
    cache while ``push_tile`` excludes and selects from it, instead of a row of
    scores for every item going out to memory and back. Returns the unsorted heaps
    ``(scores, items, sizes)`` for ``topk_finish``/``holdout_finish``.
    """
    n = len(users)
    Pb = P[users]
    hs = np.full((n, max(k, 1)), -np.inf, dtype=P.dtype)
    hi = np.full((n, max(k, 1)), -1, dtype=np.int64)
    sizes = np.zeros(n, dtype=np.int64)
    ex_pos = ex_indptr[users].copy()
    cols = max(1, buf.size // max(1, n))
    for lo in range(0, Q.shape[0], cols):
        hi_ = min(Q.shape[0], lo + cols)
        S = buf.reshape(-1)[:n * (hi_ - lo)].reshape(n, hi_ - lo)
        np.matmul(Pb, Q[lo:hi_].T, out=S)
        push_tile(S, users, lo, ex_indptr, ex_indices, ex_pos, k, hs, hi, sizes)
    return hs, hi, sizes


def check_protocol(protocol, negatives, shape=None, name="protocol", neg_name="negatives",
                   default="holdout"):
    """The protocol to use: ``protocol``, or when None "sampled" if ``negatives`` are
    given, else ``default``. Negatives with a protocol that ignores them, or the
    sampled protocol without them, raise ``ValueError``."""
    if protocol is None:
        return "sampled" if negatives is not None else default
    check_choice(protocol, name, PROTOCOLS)
    if protocol != "sampled" and negatives is not None:
        raise ValueError(f"{neg_name} were given with {name}={protocol!r}, which ranks "
                         f"against all items and would ignore them; pass {name}='sampled' "
                         f"(or leave it None) to use them, or drop {neg_name}")
    if protocol == "sampled" and shape is not None:
        _check_negatives(negatives, shape, neg_name)
    return protocol


def unpack_data(train, test, negatives, protocol=None):
    """``(train, test, negatives)`` from a Dataset in place of ``train``, or as given.

    A Dataset's own negatives are used unless ``protocol`` asks for a full-ranking
    protocol ("holdout" or "loo") explicitly.
    """
    from .data.dataset import Dataset
    if isinstance(train, Dataset):
        if test is not None:
            raise TypeError("pass either a Dataset or (train, test) matrices, not both")
        if train.test is None:
            raise ValueError(f"{train!r} has no test set; open it with split='loo' or "
                             f"'holdout'")
        if negatives is None and protocol in (None, "sampled"):
            negatives = train.negatives
        return train.train, train.test, negatives
    if test is None:
        raise TypeError("test is missing: pass (train, test) matrices, or a Dataset")
    return train, test, negatives


def evaluate(model, train, test=None, k=(20,), protocol=None, users=None, negatives=None,
             n_threads=None, block_size=None, exclude_train=True, check_split=True,
             raw_ids=False):
    """Evaluate a model under full ranking (or the sampled protocol).

    Parameters
    ----------
    model : fitted aprnb model or (user_factors, item_factors)
    train : sparse matrix (n_users, n_items), or a Dataset
        Training interactions; excluded from the candidates when ``exclude_train``.
        A :class:`~aprnb.data.Dataset` brings ``train``, ``test`` and ``negatives``.
    test : sparse matrix (n_users, n_items)
        Held-out interactions. Users without test items are skipped.
    k : int or list of int
        Cut-offs; all are computed in one pass.
    protocol : {"holdout", "loo", "sampled"}
        * ``"holdout"`` (LightGCN/NGCF): ``recall@K = hits/|test_u|``,
          ``precision@K = hits/K``, ``ndcg@K`` with the ideal DCG over
          ``min(|test_u|, K)`` items, ``hr@K = [hits > 0]``.
        * ``"loo"`` (APR paper): each user's single test item is ranked against
          every item the user has not trained on, ``rank = #{candidates with score
          >= its score}``; ``hr@K = [rank < K]``, ``ndcg@K = 1/log2(rank+2)``,
          ``auc = 1 - rank/#candidates``.
        * ``"sampled"``: as ``"loo"`` but against the listed ``negatives`` only.

        None (default) means "sampled" when ``negatives`` are given, else
        "holdout". Negatives with "holdout" or "loo" raise ``ValueError``.
    users : array of int, optional
        Evaluate only these users (raw user ids with ``raw_ids=True``).
    negatives : int array (n_users, n_neg), required for ``"sampled"`` (-1 = padding).
    n_threads : int, optional
        Worker threads (default: all of Numba's threads). Each worker scores
        whole blocks of users with a one-thread BLAS call and a serial kernel.
    block_size : int, optional
        Users per block (default: 1024 users scored in cache-sized tiles of items
        for ``"holdout"``; about 64 MB of scores per block for ``"loo"``).
    exclude_train : bool
        Exclude training items from the candidates (the standard full-ranking setup).
    check_split : bool
        For a fitted model that knows its training data (``provenance_``): refuse
        with ``ValueError`` when ``train`` is not the matrix it was trained on, or
        when a test interaction is one it trained on. False skips the check, for
        deliberate use only.
    raw_ids : bool
        ``users`` are raw user ids, mapped through the model's ``user_ids_``.

    Returns
    -------
    dict
        Lower-case metric names (``"recall@20"``, ``"ndcg@20"``, ``"hr@100"``,
        ``"auc"``, ...) to means over the evaluated users, plus ``"n_users"``.
    """
    P, Q = _no_overflow(*factors_of(model))
    train, test, negatives = unpack_data(train, test, negatives, protocol)
    protocol = check_protocol(protocol, negatives)
    shape = (P.shape[0], Q.shape[0])
    ks = np.asarray([check_k_bound(kk, shape[1]) for kk in check_ks(k)], dtype=np.int64)
    exclude_train = check_bool(exclude_train, "exclude_train")
    check_bool(check_split, "check_split")
    train = check_interactions(train, "train", shape=shape, allow_empty=True)
    test = check_interactions(test, "test", shape=shape, allow_empty=True)
    shared = overlap(train, test)
    if check_split:
        _check_split(model, train, test, "evaluate", shared)
    if exclude_train and protocol != "sampled":     # sampled ranks against its negatives
        _check_overlap(shared, test.nnz)
    n_threads = check_n_threads(n_threads)
    if check_bool(raw_ids, "raw_ids") and users is not None:
        users = model.user_index(users)
    sel = _check_users(users, shape[0], unique=True)
    n_test = np.diff(test.indptr)[sel]
    sel = sel[n_test > 0]
    ex = train if exclude_train else sp.csr_matrix(shape, dtype=np.float32)
    ex_indptr, ex_indices = ex.indptr.astype(np.int64), ex.indices.astype(np.int64)
    if protocol in ("loo", "sampled"):
        if np.any(np.diff(test.indptr)[sel] > 1):
            raise ValueError(f"protocol={protocol!r} needs at most one test item per user; "
                             f"use protocol='holdout' for several, or leave_one_out() to split")
        pos_items = test.indices[test.indptr[sel]].astype(np.int64)
    if protocol == "sampled":
        negatives = _check_negatives(negatives, shape)
        has = np.any(negatives[sel] >= 0, axis=1)
        sel, pos_items = sel[has], pos_items[has]

    width = 4 * len(ks) if protocol == "holdout" else 2 * len(ks) + 1
    out = np.zeros((len(sel), width))
    _block_rows(shape[1], P.dtype.itemsize, block_size, 1)      # validate for every protocol
    if protocol == "sampled":
        with numba_threads(n_threads):
            o = np.zeros((len(sel), width))
            sampled_block(P, Q, sel, pos_items, negatives, ks, o)
            out[:] = o
        return _summarise(out, ks, protocol, len(sel))

    te_indptr, te_indices = test.indptr.astype(np.int64), test.indices.astype(np.int64)
    if protocol == "holdout":
        rows, bufs = _tile_buffers(shape[1], P.dtype, block_size, max(1, len(sel)), n_threads)
    else:
        rows = _block_rows(shape[1], P.dtype.itemsize, block_size, max(1, len(sel)), n_threads)
        bufs = [np.empty((rows, shape[1]), dtype=P.dtype)
                for _ in range(_n_workers(n_threads, len(sel), rows))]

    def block(t, w):
        lo = t * rows
        b = sel[lo:lo + rows]
        if protocol == "holdout":
            hs, hi, sizes = _tiled_heaps(P, Q, b, ex_indptr, ex_indices, int(ks[-1]), bufs[w])
            o = np.zeros((len(b), len(ks), 4))
            holdout_finish(b, hs, hi, sizes, te_indptr, te_indices, ks, o)
            out[lo:lo + len(b)] = o.reshape(len(b), -1)
        else:
            S = _scores(P, Q, b, bufs[w])
            loo_block(S, b, ex_indptr, ex_indices, pos_items[lo:lo + rows], ks,
                      out[lo:lo + len(b)])

    with single_threaded_blas():
        run_tasks(n_threads, -(-len(sel) // rows), block)
    return _summarise(out, ks, protocol, len(sel))


def _check_overlap(shared, n_test):
    """``shared`` test interactions (of ``n_test``) that are also training interactions
    can never be hit once the training items are excluded: an error when that is all
    of them (every metric would be 0, e.g. test passed as train), a warning when it is
    some."""
    if shared and shared == n_test:
        raise ValueError(f"all {n_test} test interactions are also training interactions, "
                         f"and training items are excluded from the ranking, so every metric "
                         f"would be 0; pass the held-out interactions as test (or "
                         f"exclude_train=False)")
    if shared:
        warnings.warn(f"{shared} of the {n_test} test interactions are also training "
                      f"interactions; with exclude_train=True they can never be hit",
                      RuntimeWarning, stacklevel=3)


def _check_negatives(negatives, shape, name="negatives"):
    if negatives is None:
        raise ValueError(f"protocol='sampled' needs {name}=: an int array (n_users, n_neg), "
                         f"e.g. Dataset.negatives from aprnb.data.open_dataset()")
    neg = np.asarray(negatives)
    if neg.ndim != 2 or neg.shape[0] != shape[0] or not np.issubdtype(neg.dtype, np.integer):
        raise ValueError(f"{name} must be an int array of shape (n_users={shape[0]}, n_neg),"
                         f" got {neg.dtype} {neg.shape}")
    if neg.size and (neg.max() >= shape[1] or neg.min() < -1):
        raise ValueError(f"{name} holds item ids outside [0, {shape[1]}) (use -1 as "
                         f"padding)")
    return neg.astype(np.int64)


def _summarise(out, ks, protocol, n):
    res = {}
    mean = out.mean(axis=0) if n else np.full(out.shape[1], np.nan)
    if protocol == "holdout":
        for m, kk in enumerate(ks):
            for c, name in enumerate(("recall", "precision", "ndcg", "hr")):
                res[f"{name}@{kk}"] = float(mean[4 * m + c])
    else:
        for m, kk in enumerate(ks):
            res[f"hr@{kk}"] = float(mean[2 * m])
            res[f"ndcg@{kk}"] = float(mean[2 * m + 1])
        res["auc"] = float(mean[-1])
    res["n_users"] = int(n)
    return res


def top_k(P, Q, users, k, exclude=None, n_threads=None, block_size=None):
    """Top ``k`` items per user (best first) with training items excluded.

    Returns ``(items, scores)`` arrays of shape ``(len(users), k)``; rows with
    fewer than ``k`` candidates are padded with item -1 and score -inf.
    """
    shape = (P.shape[0], Q.shape[0])
    users = _check_users(users, shape[0])
    out_dtype = P.dtype
    P, Q = _no_overflow(P, Q)
    ex = (check_interactions(exclude, "exclude", shape=shape, allow_empty=True)
          if exclude is not None else sp.csr_matrix(shape, dtype=np.float32))
    ex_indptr, ex_indices = ex.indptr.astype(np.int64), ex.indices.astype(np.int64)
    items = np.empty((len(users), k), dtype=np.int64)
    scores = np.empty((len(users), k), dtype=P.dtype)   # after the overflow guard
    n_threads = check_n_threads(n_threads)
    rows, bufs = _tile_buffers(shape[1], P.dtype, block_size, max(1, len(users)), n_threads)

    def block(t, w):
        lo = t * rows
        b = users[lo:lo + rows]
        hs, hi, sizes = _tiled_heaps(P, Q, b, ex_indptr, ex_indices, k, bufs[w])
        topk_finish(hs, hi, sizes, items[lo:lo + rows], scores[lo:lo + rows])

    with single_threaded_blas():
        run_tasks(n_threads, -(-len(users) // rows), block)
    return items, scores.astype(out_dtype, copy=False)
