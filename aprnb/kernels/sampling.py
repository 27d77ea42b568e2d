"""Uniform negative sampling against a user's sorted CSR row.

The row ``indices[indptr[u]:indptr[u+1]]`` must be sorted and free of
duplicates (``aprnb.data.as_interactions`` guarantees it). Instead of rejection
sampling we draw the *rank* ``r`` of the negative among the ``n_items - deg``
items the user has not interacted with and map it to an item id with one binary
search: the answer is ``r + k`` where ``k`` is the number of row entries ``s``
with ``row[s] - s <= r``. That is exactly uniform, costs the same binary search a
rejection test would, and terminates for every row that is not full.
"""
from numba import njit

from ._math import FASTMATH
from ._rng import randint


@njit(cache=True, inline="always", fastmath=FASTMATH, error_model="numpy")
def rank_to_negative(indices, start, deg, r):
    """Map rank ``r`` in ``[0, n_items - deg)`` to the r-th item missing from the row."""
    lo = 0
    hi = deg
    while lo < hi:
        mid = (lo + hi) >> 1
        if indices[start + mid] - mid <= r:
            lo = mid + 1
        else:
            hi = mid
    return r + lo


@njit(cache=True, inline="always", fastmath=FASTMATH, error_model="numpy")
def sample_negative(indptr, indices, u, n_items, state, t):
    """Draw an item that user ``u`` has not interacted with; -1 if the row is full."""
    start = indptr[u]
    deg = indptr[u + 1] - start
    free = n_items - deg
    if free <= 0:
        return -1
    return rank_to_negative(indices, start, deg, randint(state, t, free))


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def sample_negatives(indptr, indices, users, n_items, state):
    """Vectorised helper (tests, perturbation): one negative per entry of ``users``."""
    out = users.copy()
    for k in range(users.shape[0]):
        out[k] = sample_negative(indptr, indices, users[k], n_items, state, 0)
    return out
