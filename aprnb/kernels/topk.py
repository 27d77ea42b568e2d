"""Top-K selection and ranking metrics over dense blocks of scores.

The caller computes scores with BLAS (``P[users] @ Q[items].T``): for top-K and
the holdout metrics one cache-sized tile of items at a time (``push_tile`` keeps
each user's heap across the tiles, ``topk_finish``/``holdout_finish`` sort it and
compute the metrics); for leave-one-out one block of users against all items.
These kernels are serial and release the GIL: ``aprnb.evaluation`` runs whole
blocks of users (BLAS call and kernel) on its own worker threads, with BLAS on
one thread, so that two thread pools never fight over the cores. Each row is
walked once, skipping the user's training items,
which are *excluded* from the candidate set rather than given a finite "masked"
score that a real score could undercut.

Tie rule (deterministic): a higher score ranks first; among equal scores the
lower item index ranks first. The leave-one-out rank instead counts ties
against the held-out item, as the APR paper's code does.
"""
import numpy as np
from numba import prange

from ._jit import inline, kernel
from ._math import in_sorted


@inline
def _worse(s1, i1, s2, i2):
    """True when (s1, i1) ranks after (s2, i2) under the tie rule."""
    return s1 < s2 or (s1 == s2 and i1 > i2)


@inline
def _sift_down(hs, hi, size, pos):
    # Min-heap on rank: the root is the worst kept candidate.
    while True:
        c = 2 * pos + 1
        if c >= size:
            return
        if c + 1 < size and _worse(hs[c + 1], hi[c + 1], hs[c], hi[c]):
            c += 1
        if _worse(hs[c], hi[c], hs[pos], hi[pos]):
            hs[c], hs[pos] = hs[pos], hs[c]
            hi[c], hi[pos] = hi[pos], hi[c]
            pos = c
        else:
            return


@inline
def _sift_up(hs, hi, pos):
    while pos > 0:
        parent = (pos - 1) >> 1
        if _worse(hs[pos], hi[pos], hs[parent], hi[parent]):
            hs[pos], hs[parent] = hs[parent], hs[pos]
            hi[pos], hi[parent] = hi[parent], hi[pos]
            pos = parent
        else:
            return


@inline
def exclude_row(s, ex, ex_lo, ex_hi):
    """Set the scores of the excluded items ``ex[ex_lo:ex_hi]`` to -inf in place.

    ``s`` is the kernel's own score buffer. -inf is below every real score (the
    factors are checked finite), so an excluded item can never be selected or
    counted, unlike a finite "masked" value that real scores could undercut.
    """
    for p in range(ex_lo, ex_hi):
        s[ex[p]] = -np.inf


@inline
def push_row(s, item_lo, k, hs, hi, size):
    """Offer the scores ``s[c]`` of the items ``item_lo + c`` to a top-``k`` heap.

    ``hs``/``hi`` hold a min-heap (on rank) of ``size`` kept candidates; returns
    the new size. Calls must come in increasing item order (a row in one call,
    or a row's consecutive item tiles in several), so that a newcomer that ties
    the worst kept score ranks after it and only a strictly higher score enters:
    one comparison per item on the hot path. Excluded items hold -inf and never
    enter.
    """
    inf = s.dtype.type(np.inf)
    thr = hs[0] if size == k else -inf       # in the scores' dtype: no widening per score
    for c in range(s.shape[0]):
        v = s[c]
        if v > thr:
            if size < k:
                hs[size] = v
                hi[size] = item_lo + c
                _sift_up(hs, hi, size)
                size += 1
                if size == k:
                    thr = hs[0]
            else:
                hs[0] = v
                hi[0] = item_lo + c
                _sift_down(hs, hi, size, 0)
                thr = hs[0]
    return size


@inline
def finish_heap(hs, hi, size):
    """Heap sort in place: pop the worst to the back until the front holds the best."""
    for end in range(size - 1, 0, -1):
        hs[0], hs[end] = hs[end], hs[0]
        hi[0], hi[end] = hi[end], hi[0]
        _sift_down(hs, hi, end, 0)


# -- tiled top-K: scores of a block of users for one tile of items at a time ----------------
# The scores of a block of users for *all* items (tens of MB) would go out to main
# memory and come back for the selection; a tile of a few MB stays in cache. The
# heap of each user lives across the tiles of its block (``hs``, ``hi``, ``sizes``)
# and ``ex_pos`` remembers how far each user's sorted exclusion list has been applied.
# These kernels run on several Python threads at once and are compiled serially (``range``,
# not ``prange``), GIL-free and without reference counting (``_jit.NO_REFCOUNT``).

@kernel(refcount=False, nogil=True)
def push_tile(S, users, item_lo, ex_indptr, ex_indices, ex_pos, k, hs, hi, sizes):
    """Offer the tile ``S`` (scores of ``users`` for items ``item_lo:item_lo + C``)."""
    item_hi = item_lo + S.shape[1]
    for b in range(S.shape[0]):
        s = S[b]
        p = ex_pos[b]
        end = ex_indptr[users[b] + 1]
        while p < end and ex_indices[p] < item_hi:
            s[ex_indices[p] - item_lo] = -np.inf
            p += 1
        ex_pos[b] = p
        sizes[b] = push_row(s, item_lo, k, hs[b], hi[b], sizes[b])


@kernel(refcount=False, nogil=True)
def topk_finish(hs, hi, sizes, out_items, out_scores):
    k = out_items.shape[1]
    for b in range(hs.shape[0]):
        n = sizes[b]
        finish_heap(hs[b], hi[b], n)
        for r in range(k):
            if r < n:
                out_items[b, r] = hi[b, r]
                out_scores[b, r] = hs[b, r]
            else:
                out_items[b, r] = -1
                out_scores[b, r] = -np.inf


@kernel(refcount=False, nogil=True)
def holdout_finish(users, hs, hi, sizes, te_indptr, te_indices, ks, out):
    """Holdout metrics from the users' finished heaps.

    ``out[b, m, :] = recall, precision, ndcg, hr`` at ``ks[m]``.
    """
    kmax = ks[-1]
    for b in range(hs.shape[0]):
        u = users[b]
        n = sizes[b]
        finish_heap(hs[b], hi[b], n)
        t_lo = te_indptr[u]
        t_hi = te_indptr[u + 1]
        n_test = t_hi - t_lo
        hits = 0
        dcg = 0.0
        idcg = 0.0
        m = 0
        for r in range(kmax):
            if r < n and in_sorted(te_indices, t_lo, t_hi, hi[b, r]):
                hits += 1
                dcg += 1.0 / np.log2(r + 2.0)    # np.log2: math.log2 needs numba >= 0.60
            if r < n_test:
                idcg += 1.0 / np.log2(r + 2.0)
            while m < ks.shape[0] and ks[m] == r + 1:
                out[b, m, 0] = hits / n_test
                out[b, m, 1] = hits / ks[m]
                out[b, m, 2] = dcg / idcg
                out[b, m, 3] = 1.0 if hits > 0 else 0.0
                m += 1


@inline
def _rank_metrics(rank, n_cand, ks, out_row):
    """HR@K, NDCG@K per K then AUC, from a 0-based rank (ties counted against)."""
    for m in range(ks.shape[0]):
        if rank < ks[m]:
            out_row[2 * m] = 1.0
            out_row[2 * m + 1] = 1.0 / np.log2(rank + 2.0)
        else:
            out_row[2 * m] = 0.0
            out_row[2 * m + 1] = 0.0
    out_row[2 * ks.shape[0]] = 1.0 - rank / n_cand if n_cand > 0 else 1.0


@kernel(refcount=False, nogil=True)
def loo_block(S, users, ex_indptr, ex_indices, pos_items, ks, out):
    """Leave-one-out: rank of ``pos_items[b]`` among all non-training items of the user."""
    n_items = S.shape[1]
    for b in range(S.shape[0]):
        u = users[b]
        s = S[b]
        target = pos_items[b]
        sp = s[target]
        lo = ex_indptr[u]
        hi = ex_indptr[u + 1]
        exclude_row(s, ex_indices, lo, hi)
        target_is_candidate = s[target] != -np.inf
        rank = 0
        for item in range(n_items):
            rank += s[item] >= sp
        n_cand = n_items - (hi - lo)
        if target_is_candidate:
            rank -= 1          # the positive itself
            n_cand -= 1
        _rank_metrics(rank, n_cand, ks, out[b])


@kernel(parallel=True)
def sampled_block(P, Q, users, pos_items, negatives, ks, out):
    """Sampled protocol: rank the positive among the user's listed negatives."""
    d = P.shape[1]
    for b in prange(users.shape[0]):
        u = users[b]
        sp = 0.0
        for f in range(d):
            sp += P[u, f] * Q[pos_items[b], f]
        rank = 0
        n_cand = 0
        for c in range(negatives.shape[1]):
            j = negatives[u, c]
            if j < 0:
                continue
            n_cand += 1
            sj = 0.0
            for f in range(d):
                sj += P[u, f] * Q[j, f]
            if sj >= sp:
                rank += 1
        _rank_metrics(rank, n_cand, ks, out[b])


@kernel(refcount=False, nogil=True)
def sampled_scores(pos, neg, valid, ks, out):
    """Sampled protocol from scores computed by the caller (models that are not MF).

    ``pos[b]`` is the score of user b's positive, ``neg[b, c]`` that of the user's
    c-th listed negative where ``valid[b, c]``; ranked as :func:`sampled_block` does.
    """
    for b in range(pos.shape[0]):
        rank = 0
        n_cand = 0
        for c in range(neg.shape[1]):
            if valid[b, c]:
                n_cand += 1
                if neg[b, c] >= pos[b]:
                    rank += 1
        _rank_metrics(rank, n_cand, ks, out[b])
