"""Top-K selection and ranking metrics over a dense block of scores.

The caller computes ``S = P[users] @ Q.T`` for a block of users with one BLAS
matmul; these kernels then walk each row once, in parallel over rows (one output
row per user, so no two threads write the same memory), skipping the user's
training items, which are *excluded* from the candidate set rather than given a
finite "masked" score that a real score could undercut.

Tie rule (deterministic): a higher score ranks first; among equal scores the
lower item index ranks first. The leave-one-out rank instead counts ties
against the held-out item, as the APR paper's code does.
"""
import math

import numpy as np
from numba import njit, prange

from ._math import FASTMATH

@njit(cache=True, inline="always", fastmath=FASTMATH, error_model="numpy")
def _worse(s1, i1, s2, i2):
    """True when (s1, i1) ranks after (s2, i2) under the tie rule."""
    return s1 < s2 or (s1 == s2 and i1 > i2)


@njit(cache=True, inline="always", fastmath=FASTMATH, error_model="numpy")
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


@njit(cache=True, inline="always", fastmath=FASTMATH, error_model="numpy")
def _sift_up(hs, hi, pos):
    while pos > 0:
        parent = (pos - 1) >> 1
        if _worse(hs[pos], hi[pos], hs[parent], hi[parent]):
            hs[pos], hs[parent] = hs[parent], hs[pos]
            hi[pos], hi[parent] = hi[parent], hi[pos]
            pos = parent
        else:
            return


@njit(cache=True, inline="always", fastmath=FASTMATH, error_model="numpy")
def exclude_row(s, ex, ex_lo, ex_hi):
    """Set the scores of the excluded items ``ex[ex_lo:ex_hi]`` to -inf in place.

    ``s`` is the kernel's own score buffer. -inf is below every real score (the
    factors are checked finite), so an excluded item can never be selected or
    counted, unlike a finite "masked" value that real scores could undercut.
    """
    for p in range(ex_lo, ex_hi):
        s[ex[p]] = -np.inf


@njit(cache=True, inline="always", fastmath=FASTMATH, error_model="numpy")
def select_row(s, k, hs, hi):
    """Best ``k`` items of score row ``s`` (excluded items hold -inf), best first.

    Writes them into ``hi``/``hs`` and returns how many were found (fewer than
    ``k`` when the row has fewer candidates). Items are scanned in increasing
    index order, so a newcomer that ties the worst kept score ranks after it and
    only a strictly higher score enters: one comparison per item on the hot path.
    """
    n = s.shape[0]
    size = 0
    thr = -np.inf
    for item in range(n):
        v = s[item]
        if v > thr:
            if size < k:
                hs[size] = v
                hi[size] = item
                _sift_up(hs, hi, size)
                size += 1
                if size == k:
                    thr = hs[0]
            else:
                hs[0] = v
                hi[0] = item
                _sift_down(hs, hi, size, 0)
                thr = hs[0]
    # Heap sort: pop the worst to the back until the front holds the best.
    for end in range(size - 1, 0, -1):
        hs[0], hs[end] = hs[end], hs[0]
        hi[0], hi[end] = hi[end], hi[0]
        _sift_down(hs, hi, end, 0)
    return size


def _topk_block(S, users, ex_indptr, ex_indices, k, out_items, out_scores):
    for b in prange(S.shape[0]):
        u = users[b]
        exclude_row(S[b], ex_indices, ex_indptr[u], ex_indptr[u + 1])
        n = select_row(S[b], k, out_scores[b], out_items[b])
        for r in range(n, k):
            out_items[b, r] = -1
            out_scores[b, r] = -np.inf


topk_block = njit(cache=True, parallel=True, fastmath=FASTMATH, error_model="numpy")(_topk_block)


@njit(cache=True, inline="always", fastmath=FASTMATH, error_model="numpy")
def _in_sorted(a, lo, hi, x):
    """True when ``x`` occurs in the sorted slice ``a[lo:hi]``."""
    end = hi
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo < end and a[lo] == x


def _holdout_block(S, users, ex_indptr, ex_indices, te_indptr, te_indices, ks, out):
    """Fused top-K + holdout metrics. ``out[b, m, :] = recall, precision, ndcg, hr`` @ ks[m]."""
    kmax = ks[-1]
    for b in prange(S.shape[0]):
        u = users[b]
        hs = np.empty(kmax, dtype=S.dtype)
        hi = np.empty(kmax, dtype=np.int64)
        exclude_row(S[b], ex_indices, ex_indptr[u], ex_indptr[u + 1])
        n = select_row(S[b], kmax, hs, hi)
        t_lo = te_indptr[u]
        t_hi = te_indptr[u + 1]
        n_test = t_hi - t_lo
        hits = 0
        dcg = 0.0
        idcg = 0.0
        m = 0
        for r in range(kmax):
            if r < n and _in_sorted(te_indices, t_lo, t_hi, hi[r]):
                hits += 1
                dcg += 1.0 / math.log2(r + 2.0)
            if r < n_test:
                idcg += 1.0 / math.log2(r + 2.0)
            while m < ks.shape[0] and ks[m] == r + 1:
                out[b, m, 0] = hits / n_test
                out[b, m, 1] = hits / ks[m]
                out[b, m, 2] = dcg / idcg
                out[b, m, 3] = 1.0 if hits > 0 else 0.0
                m += 1


holdout_block = njit(cache=True, parallel=True, fastmath=FASTMATH, error_model="numpy")(_holdout_block)


@njit(cache=True, inline="always", fastmath=FASTMATH, error_model="numpy")
def _rank_metrics(rank, n_cand, ks, out_row):
    """HR@K, NDCG@K per K then AUC, from a 0-based rank (ties counted against)."""
    for m in range(ks.shape[0]):
        if rank < ks[m]:
            out_row[2 * m] = 1.0
            out_row[2 * m + 1] = 1.0 / math.log2(rank + 2.0)
        else:
            out_row[2 * m] = 0.0
            out_row[2 * m + 1] = 0.0
    out_row[2 * ks.shape[0]] = 1.0 - rank / n_cand if n_cand > 0 else 1.0


def _loo_block(S, users, ex_indptr, ex_indices, pos_items, ks, out):
    """Leave-one-out: rank of ``pos_items[b]`` among all non-training items of the user."""
    n_items = S.shape[1]
    for b in prange(S.shape[0]):
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


loo_block = njit(cache=True, parallel=True, fastmath=FASTMATH, error_model="numpy")(_loo_block)


def _sampled_block(P, Q, users, pos_items, negatives, ks, out):
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


sampled_block = njit(cache=True, parallel=True, fastmath=FASTMATH, error_model="numpy")(_sampled_block)
