"""Epoch loops over the training positives: serial and Hogwild ``prange``.

One epoch visits every stored pair ``(pos_users[k], pos_items[k])`` once, in
storage order, and draws one uniform negative per pair
(:mod:`aprnb.kernels.sampling`). The pairs are cut into ``n_chunks`` contiguous
slices; slice ``t`` draws from the streams of the block ``states[t * STRIDE:]``
(blocks one cache line apart, so threads never share a written line). The pairs
must be in random order: either the caller shuffles them all
(:func:`aprnb.kernels._rng.shuffle_pairs`), or, with ``shuffle=True``, each
chunk first reshuffles its own slice (in parallel; with one chunk that is the
same shuffle, drawn from the same stream). ``fit`` shuffles all pairs before the
first epoch and lets the chunks reshuffle their slices after that: with several
threads, each then always trains on the same random subset of the pairs, in a
new order every epoch, which Hogwild's interleaving makes no different from a
global shuffle, and the serial shuffle of every pair (5 ms of a 35 ms Gowalla
epoch on two threads) is gone.

The same Python function is compiled twice (:func:`aprnb.kernels._jit.twin`):
``epoch_serial`` runs the slices one after another, so one chunk plus a seed is
bitwise reproducible; ``epoch_parallel`` runs them on Numba
threads that update the shared factors without locks (Hogwild, Niu et al.
2011), which is *not* bitwise reproducible.

``mode``: 0 = BPR, 1 = APR with the closed-form adversarial perturbation,
2 = APR with random noise (Gaussian rows, L2-normalised, times ``eps``), 3 = VAT:
the closed-form perturbation of mode 1 with the radius ``eps * scale[u]`` of the
triple's user (``scale`` from :func:`aprnb.kernels.vat.vulnerability_scale`, in
the factors' dtype; the other modes never read it).
"""
import math

import numpy as np
from numba import prange

from ._intrinsics import prefetch
from ._jit import inline, kernel, twin
from ._rng import NOISE, STRIDE, shuffle_range, uniform
from .apr import _apr_given, _apr_update
from .bpr import _bpr_update
from .sampling import filter_slot, first_draw, resolve_negative

MODE_BPR = 0
MODE_APR = 1
MODE_APR_RANDOM = 2
MODE_VAT = 3


@inline
def fill_random_unit(buf, row, eps, state, t):
    """Fill ``buf[row]`` with a Gaussian vector scaled to L2 norm ``eps`` (Box-Muller)."""
    n = buf.shape[1]
    sq = 0.0
    for f in range(n):
        u1 = 1.0 - uniform(state, t)          # (0, 1]
        u2 = uniform(state, t)
        z = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
        buf[row, f] = z
        sq += z * z
    scale = eps / math.sqrt(max(sq, 1e-12))
    for f in range(n):
        buf[row, f] = buf[row, f] * scale


#: Pipeline distances, in triples (see ``run_chunk``). The first negative draw
#: of triple ``t + AHEAD_DRAW`` is made, and its filter word and CSR bounds
#: requested, while triple ``t`` is updated; the negative of triple
#: ``t + AHEAD_ROWS`` is resolved and its three embedding rows requested.
AHEAD_DRAW = 16
AHEAD_ROWS = 8
#: Ring buffer of the negatives in flight (a power of two > AHEAD_DRAW).
RING = 32
#: Triples per partial product of the loss (see ``run_chunk``).
LOSS_GROUP = 16


@inline
def _prefetch_rows(A, r, step):
    for f in range(0, A.shape[1], step):
        prefetch(A, r, f)


@inline
def prefetch_triple(P, Q, GP, GQ, u, i, j, adagrad, step):
    """Prefetch the embedding rows of the triple ``(u, i, j)``, and with ``adagrad``
    their accumulators (the epoch and mini-batch kernels)."""
    _prefetch_rows(P, u, step)
    _prefetch_rows(Q, i, step)
    _prefetch_rows(Q, j, step)
    if adagrad:
        _prefetch_rows(GP, u, step)
        _prefetch_rows(GQ, i, step)
        _prefetch_rows(GQ, j, step)


@kernel(refcount=False)
def run_chunk(P, Q, GP, GQ, filt, indptr, indices, pos_users, pos_items, lo, hi, states, rs,
              lr, reg, eps, reg_adv, mode, adagrad, buf, ring, scale):
    """Train on the pairs ``lo:hi`` with the RNG streams of block ``states[rs:]``.

    Every triple needs a random filter word, a random CSR row (rarely) and
    three random embedding rows, so a plain loop waits for memory most of the
    time. This loop is software-pipelined; while it updates triple ``t`` it

    1. makes the first negative draw of triple ``t + AHEAD_DRAW`` and prefetches
       that draw's filter word and the user's ``indptr`` entries;
    2. resolves the negative of triple ``t + AHEAD_ROWS`` (its filter word is
       cached by now; the row is searched only on a filter alarm, about 1.3%)
       and prefetches the rows ``p_u, q_i, q_j`` (and their Adagrad
       accumulators) that the update of that triple will touch.

    Prefetches never stall, so the memory traffic of the next triples overlaps
    the arithmetic of this one. The updates and the draws of each stream happen
    in triple order, exactly as in a plain loop. ``buf`` (>= 6, d) and ``ring``
    (RING,) are this chunk's private scratch. ``scale`` (n_users,) holds the
    per-user radius factors of ``MODE_VAT`` (length 0 in the other modes).
    Returns ``(summed loss, triples)``.

    The loss of a triple is ``m + log1p(e)`` (:func:`aprnb.kernels._math.bpr_terms`);
    we sum the ``m`` and multiply the factors ``1 + e``, each in (1, 2], over
    groups of LOSS_GROUP triples (no overflow), taking one ``log`` per group.

    Longer than the project's ~60-line limit on purpose: the three pipeline
    stages must sit in one loop body so that the prefetches of later triples
    overlap this triple's arithmetic; split into calls, the stages would only be
    inlined back. Compiled without reference counting (``_jit.NO_REFCOUNT``).
    """
    n_items = Q.shape[0]
    gbuf = buf[3:6]            # gradient rows for the Adagrad update
    step = max(1, 64 // P.itemsize)
    mask = RING - 1
    acc = 0.0
    cnt = 0
    prod = 1.0
    # prologue: first draws of the first AHEAD_DRAW triples
    for a in range(lo, min(lo + AHEAD_DRAW, hi)):
        ring[a & mask] = first_draw(n_items, states, rs)
    for b in range(lo, min(lo + AHEAD_ROWS, hi)):
        _resolve_and_prefetch(P, Q, GP, GQ, filt, indptr, indices, pos_users, pos_items, b,
                              n_items, states, rs, adagrad, ring, mask, step)
    for t in range(lo, hi):
        a = t + AHEAD_DRAW
        if a < hi:                                          # stage 1
            ua = pos_users[a]
            ja = first_draw(n_items, states, rs)
            ring[a & mask] = ja
            word, _ = filter_slot(filt, ua, ja, n_items)
            prefetch(filt, word, 0)
            prefetch(indptr, ua, 0)
        b = t + AHEAD_ROWS
        if b < hi:                                          # stage 2
            _resolve_and_prefetch(P, Q, GP, GQ, filt, indptr, indices, pos_users, pos_items, b,
                                  n_items, states, rs, adagrad, ring, mask, step)
        j = ring[t & mask]                                  # stage 3: update
        if j >= 0:
            u = pos_users[t]
            i = pos_items[t]
            cnt += 1
            if mode == MODE_BPR:
                mm, e = _bpr_update(P, Q, GP, GQ, gbuf, u, i, j, lr, reg, adagrad)
            elif mode == MODE_APR or mode == MODE_VAT:
                eu = eps                                    # VAT: radius eps * c_u
                if mode == MODE_VAT:
                    eu = eps * P.dtype.type(scale[u])
                mm, e = _apr_update(P, Q, GP, GQ, gbuf, u, i, j, lr, reg, eu, reg_adv,
                                    adagrad)
            else:
                for r in range(3):
                    fill_random_unit(buf, r, eps, states, rs + NOISE)
                mm, e = _apr_given(P, Q, GP, GQ, gbuf, buf, u, i, j, lr, reg, reg_adv, adagrad)
            acc += mm
            prod *= 1.0 + e
        if (t - lo) % LOSS_GROUP == LOSS_GROUP - 1 or t == hi - 1:
            acc += math.log(prod)
            prod = 1.0
    return acc, cnt


@inline
def _resolve_and_prefetch(P, Q, GP, GQ, filt, indptr, indices, pos_users, pos_items, b,
                          n_items, states, rs, adagrad, ring, mask, step):
    """Stage 2 of ``run_chunk`` for triple ``b``: final negative, then prefetch its rows."""
    u = pos_users[b]
    j = resolve_negative(filt, indptr, indices, u, ring[b & mask], n_items, states, rs)
    ring[b & mask] = j
    if j >= 0:
        i = pos_items[b]
        prefetch_triple(P, Q, GP, GQ, u, i, j, adagrad, step)


def _epoch(P, Q, GP, GQ, filt, indptr, indices, pos_users, pos_items, states,
           lr, reg, eps, reg_adv, mode, adagrad, n_chunks, shuffle=False, scale=None):
    n = pos_users.shape[0]
    if scale is None:         # pruned at compile time: BPR/APR calls pass no scale
        sc = np.zeros(0, dtype=P.dtype)
    else:
        sc = scale
    d = P.shape[1]
    losses = np.zeros(n_chunks)
    counts = np.zeros(n_chunks, dtype=np.int64)
    # Thread-private scratch, indexed by chunk: no two threads share a buffer.
    # The 7th row of a buffer and the second half of a ring are padding, so that
    # neighbouring chunks never write to one cache line.
    bufs = np.zeros((n_chunks, 7, d), dtype=P.dtype)
    rings = np.empty((n_chunks, 2 * RING), dtype=np.int64)
    for t in prange(n_chunks):
        lo = (t * n) // n_chunks
        hi = ((t + 1) * n) // n_chunks
        if shuffle:           # each chunk reshuffles its own slice (stream DRAW)
            shuffle_range(pos_users, pos_items, lo, hi, states, t * STRIDE)
        loss, cnt = run_chunk(P, Q, GP, GQ, filt, indptr, indices, pos_users, pos_items,
                              lo, hi, states, t * STRIDE, lr, reg, eps, reg_adv, mode, adagrad,
                              bufs[t], rings[t], sc)
        losses[t] = loss
        counts[t] = cnt
    return losses.sum(), counts.sum()


epoch_serial, epoch_parallel = twin(_epoch, "epoch_serial", "epoch_parallel")


@kernel
def all_finite(A):
    """True when every element of the 2-D array ``A`` is finite."""
    for r in range(A.shape[0]):
        for c in range(A.shape[1]):
            if not np.isfinite(A[r, c]):
                return False
    return True
