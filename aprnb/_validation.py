"""Input checks shared by every public entry point.

Each check raises ``TypeError`` (wrong kind of object) or ``ValueError`` (right
kind, wrong content) with a message that says how to fix the input. None of them
modifies its argument: conversions return new objects.
"""
import numbers

import numpy as np
import scipy.sparse as sp

_INTERACTIONS_HINT = ("pass a scipy.sparse matrix (CSR preferred) or a dense 2-D array of shape "
                      "(n_users, n_items) whose nonzero entries mark interactions")


def check_interactions(X, name="train", shape=None, allow_empty=False):
    """Return ``X`` as a canonical binary CSR matrix (sorted, deduplicated, float32 ones).

    Accepts any scipy.sparse format or a dense 2-D array. Negative, NaN or
    infinite values are rejected; explicit zeros are dropped; duplicates are
    merged. ``shape`` (optional) is the expected ``(n_users, n_items)``.
    """
    if isinstance(X, (list, tuple)) or X is None or isinstance(X, (str, bytes)):
        raise TypeError(f"{name}: got {type(X).__name__}; {_INTERACTIONS_HINT}")
    if sp.issparse(X):
        M = X.tocsr()             # no copy when X is CSR already: copied below if needed
        if M is X and not _canonical(M):
            M = M.copy()          # the fixes below work in place; X stays as it was
    elif isinstance(X, np.ndarray) or hasattr(X, "__array__"):
        A = np.asarray(X)
        if A.ndim != 2:
            raise ValueError(f"{name}: expected a 2-D array, got {A.ndim} dimension(s); "
                             f"{_INTERACTIONS_HINT}")
        if A.dtype.kind not in "biuf":
            raise TypeError(f"{name}: dtype {A.dtype} is not numeric "
                            f"(need bool, integer or float); {_INTERACTIONS_HINT}")
        M = sp.csr_matrix(A.astype(np.float64, copy=False))
    else:
        raise TypeError(f"{name}: got {type(X).__name__}; {_INTERACTIONS_HINT}")
    if M.ndim != 2:
        raise ValueError(f"{name}: expected 2 dimensions; {_INTERACTIONS_HINT}")
    if M.dtype.kind not in "biuf":
        raise TypeError(f"{name}: dtype {M.dtype} is not real-valued numeric; "
                        f"{_INTERACTIONS_HINT}")
    if M.shape[0] == 0 or M.shape[1] == 0:
        raise ValueError(f"{name}: shape {M.shape} has no users or no items; "
                         f"{_INTERACTIONS_HINT}")
    if shape is not None and tuple(M.shape) != tuple(shape):
        raise ValueError(f"{name}: shape {M.shape} does not match the expected "
                         f"(n_users, n_items) = {tuple(shape)}; pass matrices built over the "
                         f"same user and item index (e.g. from one loader call)")
    data = M.data
    if data.size:
        # checked in their own dtype: no float64 copy of nnz values
        if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
            raise ValueError(f"{name}: contains NaN or infinite values; drop or fill them "
                             f"before fitting (interactions are read as present/absent)")
        if np.any(data < 0):
            raise ValueError(f"{name}: contains negative values; interactions must be "
                             f"non-negative (nonzero = interacted). Drop negative feedback or "
                             f"threshold it first")
    M.sum_duplicates()
    M.eliminate_zeros()
    M.sort_indices()
    if M.nnz == 0 and not allow_empty:
        raise ValueError(f"{name}: has no interactions (all entries are zero); "
                         f"{_INTERACTIONS_HINT}")
    idx_dtype = np.int32 if max(M.shape) < 2**31 - 1 and M.nnz < 2**31 - 1 else np.int64
    out = sp.csr_matrix((np.ones(M.nnz, dtype=np.float32), M.indices.astype(idx_dtype),
                         M.indptr.astype(idx_dtype)), shape=M.shape)
    out.has_sorted_indices = True
    return out


def _canonical(M):
    """True when the CSR matrix ``M`` needs none of the in-place fixes (duplicates,
    explicit zeros, unsorted rows) of :func:`check_interactions`."""
    return bool(M.has_canonical_format) and not (M.data.size and np.any(M.data == 0))


def check_positive_int(value, name, minimum=1):
    """``value`` must be an integer >= ``minimum`` (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r} "
                        f"({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def check_float(value, name, low=None, high=None, low_inclusive=True, high_inclusive=True):
    """``value`` must be a finite real number within the given bounds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (v < low or (v == low and not low_inclusive)):
        op = ">=" if low_inclusive else ">"
        raise ValueError(f"{name} must be {op} {low}, got {value!r}")
    if high is not None and (v > high or (v == high and not high_inclusive)):
        op = "<=" if high_inclusive else "<"
        raise ValueError(f"{name} must be {op} {high}, got {value!r}")
    return v


def check_choice(value, name, choices):
    """``value`` must be one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def check_bool(value, name):
    """``value`` must be True or False (numpy bools accepted)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_dtype(dtype):
    """Return ``np.float32`` or ``np.float64``; anything else is a TypeError."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be numpy.float32 or numpy.float64, got {dtype!r}") from None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype must be numpy.float32 or numpy.float64, got {dtype!r}")
    return dt.type


def check_random_state(random_state):
    """Return a ``numpy.random.Generator`` from None, an int seed or a Generator."""
    if random_state is None or isinstance(random_state, np.random.Generator):
        return np.random.default_rng(random_state)
    if isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral):
        raise TypeError(f"random_state must be None, a non-negative int or a "
                        f"numpy.random.Generator, got {random_state!r}")
    if random_state < 0:
        raise ValueError(f"random_state must be a non-negative int, got {random_state}")
    return np.random.default_rng(int(random_state))


def check_ks(k, name="k"):
    """Return a sorted tuple of distinct positive ints from an int or a sequence."""
    ks = [k] if isinstance(k, numbers.Integral) and not isinstance(k, bool) else k
    try:
        ks = list(ks)
    except TypeError:
        raise TypeError(f"{name} must be a positive int or a list of positive ints, "
                        f"got {k!r}") from None
    if not ks:
        raise ValueError(f"{name} must not be empty; pass e.g. k=[20] or k=[10, 20, 100]")
    return tuple(sorted({check_positive_int(v, name) for v in ks}))


def check_k_bound(k, n_items, name="k"):
    """Refuse a cut-off far above the number of items (at most ``max(n_items, 1000)``):
    results are sized by ``k``, so an absurd ``k`` would only allocate padding."""
    if k > max(n_items, 1000):
        raise ValueError(f"{name}={k} is far larger than the number of items ({n_items}); "
                         f"pass {name} <= {n_items}")
    return k


def check_factors(P, Q, name="model factors"):
    """Check a ``(user_factors, item_factors)`` pair; return C-contiguous float arrays."""
    for label, A in (("user_factors", P), ("item_factors", Q)):
        if not isinstance(A, np.ndarray):
            raise TypeError(f"{name}: {label} must be a numpy array, got {type(A).__name__}")
        if A.ndim != 2:
            raise ValueError(f"{name}: {label} must be 2-D (n, factors), got shape {A.shape}")
        if A.dtype not in (np.float32, np.float64):
            raise TypeError(f"{name}: {label} dtype must be float32 or float64, got {A.dtype}")
        if A.shape[0] == 0 or A.shape[1] == 0:
            raise ValueError(f"{name}: {label} has an empty dimension {A.shape}")
        if not np.all(np.isfinite(A)):
            raise ValueError(f"{name}: {label} contains NaN or inf; refit the model with a "
                             f"smaller learning rate")
    if P.shape[1] != Q.shape[1]:
        raise ValueError(f"{name}: user and item factors have different widths "
                         f"({P.shape[1]} vs {Q.shape[1]})")
    dt = np.result_type(P.dtype, Q.dtype)
    return np.ascontiguousarray(P, dtype=dt), np.ascontiguousarray(Q, dtype=dt)
