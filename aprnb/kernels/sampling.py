r"""Uniform negative sampling: a hashed filter of the positives, then exact rejection.

A negative for user ``u`` must be uniform over the items ``u`` has not
interacted with. Testing a random item against ``u``'s sorted CSR row takes a
binary search whose ``log2(deg)`` steps each wait for memory: the row is cold
because the training pairs come in random order, and on Gowalla those waits
cost more than the whole SGD update. So the test has two layers:

1. **Filter.** ``build_filter`` hashes every positive ``(u, i)`` to one 64-bit
   word of a table of about 16 bits per positive and sets two bits in it (a
   blocked Bloom filter); for a user with more than half of all items it
   inserts every pair ``(u, j)``, so that such users always reach step 2. Both
   bits clear means "certainly not a positive"; that is the answer for about
   98.7% of random items, after one memory access that the epoch kernel
   prefetches long before it needs it.
2. **Exact check.** Otherwise (a positive, or a false alarm of the filter) a
   binary search of the sorted row decides.

Draws (each chunk of an epoch owns a block of words of the state array, see
:mod:`aprnb.kernels._rng`):

* every triple takes exactly **one** first draw ``j0 = randint(n_items)`` from
  stream ``rs + DRAW``; the epoch kernel makes it far ahead of the update, so
  that the filter word can be prefetched;
* ``resolve_negative`` accepts ``j0`` if it is not a positive, and otherwise
  redraws from stream ``rs + REDRAW`` until it finds one that is not;
* a user with more than half of all items is served by rank selection instead
  (redraws could take long): draw the rank ``r`` of the negative among the
  ``n_items - deg`` free items from ``rs + REDRAW`` and map it to an item with
  one binary search (the answer is ``r + k``, ``k`` the number of row entries
  ``s`` with ``row[s] - s <= r``); ``j0`` is then unused;
* a user with every item gets ``-1`` (the triple is skipped).

Rejection sampling from a uniform proposal and rank selection both give an
exactly uniform negative, so the result is uniform over the free items whatever
the filter says; the filter only changes how fast the answer comes. Because the
first draws and the redraws use separate streams, the negatives depend only on
the order of the triples, not on how far ahead the kernel draws.

The rows ``indices[indptr[u]:indptr[u+1]]`` must be sorted and free of
duplicates (``aprnb.data.as_interactions`` guarantees it).
"""
import numba
import numpy as np
from numba import prange

from ._intrinsics import atomic_or, prefetch
from ._jit import inline, integer, kernel, twin
from ._rng import DRAW, REDRAW, mix64, randint

#: Positives per 64-bit filter word (about 16 bits each): 1.3% false alarms.
KEYS_PER_WORD = 4

_ODD = np.uint64(0x9E3779B97F4A7C15)
_S32 = np.uint64(32)
_S6 = np.uint64(6)
_M63 = np.uint64(63)
_ONE = np.uint64(1)


def filter_words(nnz):
    """Number of 64-bit words of the filter for ``nnz`` positives (a power of two)."""
    return 1 << max(0, int(np.ceil(np.log2(max(1, nnz) / KEYS_PER_WORD))))


@integer(inline=True)
def _hash(u, j, n_items):
    """64 mixed bits of the pair ``(u, j)``: SplitMix64's scramble of its cell number."""
    return mix64(np.uint64(np.int64(u) * np.int64(n_items) + np.int64(j)) * _ODD)


@integer(inline=True)
def filter_slot(filt, u, j, n_items):
    """``(word index, two-bit mask)`` of the pair ``(u, j)`` in the filter ``filt``."""
    h = _hash(u, j, n_items)
    word = np.int64((h >> _S32) & np.uint64(filt.shape[0] - 1))
    mask = (_ONE << (h & _M63)) | (_ONE << ((h >> _S6) & _M63))
    return word, mask


#: Filter writes in flight per thread: each word is prefetched this many pairs
#: before its bits are set, so that the cache misses overlap.
FILL_AHEAD = 32


@inline
def _queue(filt, u, j, n_items, ring_w, ring_m, n):
    """Queue the bits of ``(u, j)``; returns the new count.

    The word is prefetched now and its bits are set :data:`FILL_AHEAD` queued
    pairs later (the oldest entry of the ring ``ring_w``/``ring_m`` is written
    first), with an atomic OR: another thread may be setting other bits of the
    same word.
    """
    word, mask = filter_slot(filt, u, j, n_items)
    slot = n & (FILL_AHEAD - 1)
    if n >= FILL_AHEAD:
        atomic_or(filt, ring_w[slot], ring_m[slot])
    ring_w[slot] = word
    ring_m[slot] = mask
    prefetch(filt, word, 0)
    return n + 1


def _fill_filter(filt, indptr, indices, n_items, parts):
    """Set the bits of every positive; part ``p`` takes the ``p``-th share of the pairs.

    The users are cut into ``parts`` runs of about equal numbers of keys (a
    dense row counts ``n_items``). Bits of different users share words (the
    hash scatters them), so the parts set their bits with atomic ORs; OR does
    not depend on order, and the filter does not depend on ``parts``.
    """
    n_users = indptr.shape[0] - 1
    ends = np.empty(n_users, dtype=np.int64)        # keys of the users up to u, inclusive
    total = 0
    for u in range(n_users):
        deg = indptr[u + 1] - indptr[u]
        total += n_items if 2 * deg > n_items else deg
        ends[u] = total
    for p in prange(parts):
        first = np.searchsorted(ends, (np.int64(p) * total) // parts, side="right")
        last = np.searchsorted(ends, (np.int64(p + 1) * total) // parts, side="right")
        ring_w = np.zeros(FILL_AHEAD, dtype=np.int64)
        ring_m = np.zeros(FILL_AHEAD, dtype=np.uint64)
        n = 0
        for u in range(first, last):
            if 2 * (indptr[u + 1] - indptr[u]) > n_items:     # dense row: every pair
                for j in range(n_items):
                    n = _queue(filt, u, j, n_items, ring_w, ring_m, n)
            else:
                for k in range(indptr[u], indptr[u + 1]):
                    n = _queue(filt, u, indices[k], n_items, ring_w, ring_m, n)
        for t in range(max(0, n - FILL_AHEAD), n):           # the writes still queued
            atomic_or(filt, ring_w[t & (FILL_AHEAD - 1)], ring_m[t & (FILL_AHEAD - 1)])


_fill_serial, _fill_parallel = twin(_fill_filter, "_fill_filter_serial",
                                    "_fill_filter_parallel", nogil=True)

#: Fewer positives than this fill the filter on one thread (starting threads costs more).
PARALLEL_FILL = 1 << 16


def _filter_keys(indptr, n_items):
    deg = np.diff(np.asarray(indptr, dtype=np.int64))
    return int(np.where(2 * deg > n_items, n_items, deg).sum())


def build_filter(indptr, indices, n_items, zeros=np.zeros):
    """The filter of the positives of a CSR matrix (``uint64`` array, 16 bits per positive).

    Built on Numba's current threads (:func:`numba.get_num_threads`; one
    below :data:`PARALLEL_FILL` positives); the result is the same on any
    number of threads.

    Parameters
    ----------
    indptr, indices : ndarray of int
        The CSR structure (rows = users); any integer dtype.
    n_items : int
        Number of columns.
    zeros : callable, default numpy.zeros
        ``zeros(n_words, dtype)`` allocates the zero-filled table (training
        passes a huge-page-aligned allocator, so the table is not copied).

    Returns
    -------
    ndarray of uint64
        A power-of-two number of words; pass it to the epoch kernels and to
        :func:`sample_negatives` together with the same ``indptr``/``indices``.
    """
    filt = zeros(filter_words(_filter_keys(indptr, n_items)), np.uint64)
    parts = numba.get_num_threads() if len(indices) >= PARALLEL_FILL else 1
    if len(indices):
        (_fill_parallel if parts > 1 else _fill_serial)(filt, indptr, indices, n_items, parts)
    return filt


@integer(inline=True)
def maybe_positive(filt, u, j, n_items):
    """False when ``(u, j)`` is certainly not a positive; True means "check the row"."""
    word, mask = filter_slot(filt, u, j, n_items)
    return (filt[word] & mask) == mask


@inline
def _count_le(indices, start, deg, r, slope):
    """Number of ``s < deg`` with ``indices[start + s] - slope * s <= r`` (non-decreasing in s)."""
    lo = 0
    hi = deg
    while lo < hi:
        mid = (lo + hi) >> 1
        if indices[start + mid] - slope * mid <= r:
            lo = mid + 1
        else:
            hi = mid
    return lo


@inline
def in_row(indices, start, deg, j):
    """Exact test: is ``j`` in the sorted row ``indices[start:start + deg]``?"""
    k = _count_le(indices, start, deg, j - 1, 0)          # entries below j
    return k < deg and indices[start + k] == j


@inline
def rank_to_negative(indices, start, deg, r):
    """Map rank ``r`` in ``[0, n_items - deg)`` to the r-th item missing from the row.

    ``indices[start + s] - s`` free items lie below the row's ``s``-th entry, so
    the answer is ``r`` plus the number of entries with at most ``r`` free items
    below them.
    """
    return r + _count_le(indices, start, deg, r, 1)


@integer(inline=True)
def first_draw(n_items, state, rs):
    """The one proposal every triple takes, from stream ``rs + DRAW``."""
    return randint(state, rs + DRAW, n_items)


@inline
def resolve_negative(filt, indptr, indices, u, j0, n_items, state, rs):
    """The negative of user ``u`` given the proposal ``j0``; -1 if ``u`` has every item.

    The common case reads one (prefetched) filter word and nothing else: the
    filter holds every pair of a dense or full row, so those users always take
    the slow path, which applies the whole rule.
    """
    if not maybe_positive(filt, u, j0, n_items):
        return j0
    return _resolve_slow(filt, indptr, indices, u, j0, n_items, state, rs)


@kernel
def _resolve_slow(filt, indptr, indices, u, j0, n_items, state, rs):
    start = indptr[u]
    deg = indptr[u + 1] - start
    free = n_items - deg
    if free <= 0:
        return -1
    if 2 * deg > n_items:                       # dense row: rank selection
        return rank_to_negative(indices, start, deg, randint(state, rs + REDRAW, free))
    j = j0
    while maybe_positive(filt, u, j, n_items) and in_row(indices, start, deg, j):
        j = randint(state, rs + REDRAW, n_items)
    return j


@inline
def sample_negative(filt, indptr, indices, u, n_items, state, rs):
    """Draw one negative for user ``u`` (first draw, then resolve); -1 if the row is full."""
    j0 = first_draw(n_items, state, rs)
    return resolve_negative(filt, indptr, indices, u, j0, n_items, state, rs)


@kernel
def _sample_negatives(filt, indptr, indices, users, n_items, state):
    out = np.empty(users.shape[0], dtype=np.int64)
    for k in range(users.shape[0]):
        out[k] = sample_negative(filt, indptr, indices, users[k], n_items, state, 0)
    return out


def sample_negatives(indptr, indices, users, n_items, state, filt=None):
    """One negative per entry of ``users``, drawn as the epoch kernels draw them.

    Uses the streams of chunk 0 of ``state`` (see :func:`aprnb.kernels._rng.seed_states`)
    and advances them; with the same state, a serial epoch (``shuffle=False``) over
    triples whose users are ``users`` draws exactly these negatives. ``filt`` is the
    :func:`build_filter` of the matrix (built here when omitted). Returns an
    ``int64`` array; ``-1`` marks a user who has every item.
    """
    if filt is None:
        filt = build_filter(indptr, indices, n_items)
    elif not (isinstance(filt, np.ndarray) and filt.dtype == np.uint64 and filt.ndim == 1):
        raise TypeError(f"filt must be the uint64 array build_filter returns, got "
                        f"{type(filt).__name__}"
                        + (f" of {filt.dtype}, {filt.ndim}-D" if isinstance(filt, np.ndarray)
                           else ""))
    elif len(filt) == 0 or len(filt) & (len(filt) - 1):
        raise ValueError(f"filt must have a power-of-two length (from build_filter), got "
                         f"{len(filt)} words; pass filt=None to build it")
    return _sample_negatives(filt, indptr, indices, users, n_items, state)
