"""Epoch loops over the training positives: serial and Hogwild ``prange``.

One epoch visits every stored ``(u, i)`` once, in the order given by ``order``
(reshuffled by the caller with :func:`aprnb.kernels._rng.shuffle`), and draws one
uniform negative per positive. The work is cut into ``n_chunks`` contiguous
slices of ``order``; slice ``t`` draws from RNG stream ``states[t * STRIDE]`` (streams one cache line
apart, so the threads never share a written line).

The same Python function is compiled twice (umap's pattern): ``epoch_serial``
runs the slices one after another, so one chunk plus a seed is bitwise
reproducible; ``epoch_parallel`` runs them on Numba threads that update the
shared factors without locks (Hogwild, Niu et al. 2011), which is *not*
bitwise reproducible.

``mode``: 0 = BPR, 1 = APR with the closed-form adversarial perturbation,
2 = APR with random noise (Gaussian rows, L2-normalised, times ``eps``).
"""
import math

import numpy as np
from numba import njit, prange

from ._math import FASTMATH
from ._rng import STRIDE, uniform
from .apr import _apr_given, _apr_update
from .bpr import _bpr_update
from .sampling import sample_negative

MODE_BPR = 0
MODE_APR = 1
MODE_APR_RANDOM = 2


@njit(cache=True, inline="always", fastmath=FASTMATH)
def fill_random_unit(buf, eps, state, t):
    """Fill ``buf`` with a Gaussian vector scaled to L2 norm ``eps`` (Box-Muller)."""
    n = buf.shape[0]
    sq = 0.0
    for f in range(n):
        u1 = 1.0 - uniform(state, t)          # (0, 1]
        u2 = uniform(state, t)
        z = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
        buf[f] = z
        sq += z * z
    scale = eps / math.sqrt(max(sq, 1e-12))
    for f in range(n):
        buf[f] = buf[f] * scale


#: Triples gathered before they are updated (see ``run_chunk``).
LOOKAHEAD = 32


@njit(cache=True, fastmath=FASTMATH)
def run_chunk(P, Q, GP, GQ, indptr, indices, pos_users, pos_items, order, lo, hi, states, rs,
              lr, reg, eps, reg_adv, mode, adagrad, buf, trip):
    """Train on the positives ``order[lo:hi]`` drawing from RNG stream ``states[rs]``.

    The loop is latency-bound (three random embedding rows and a random CSR row
    per triple), so it works in groups of LOOKAHEAD triples, in stages whose
    iterations are independent of each other and therefore overlap in the CPU:
    read the positives, sample the negatives, touch one word of every cache line
    of the rows to be updated; then run the dependent in-place steps on rows that
    are now in cache. The updates happen in the same order as in a plain loop
    (in mode 2 a group's negatives are drawn before its noise vectors). ``buf`` (3, d) and ``trip`` (3, LOOKAHEAD) are this chunk's
    private scratch. Returns ``(summed loss, triples, sink)``; the caller stores
    ``sink`` so that the touching loads are not optimised away.
    """
    n_items = Q.shape[0]
    d = P.shape[1]
    step = max(1, 64 // P.itemsize)
    bu = trip[0]
    bi = trip[1]
    bj = trip[2]
    acc = 0.0
    cnt = 0
    sink = 0.0
    for base in range(lo, hi, LOOKAHEAD):
        m = min(LOOKAHEAD, hi - base)
        for q in range(m):
            idx = order[base + q]
            bu[q] = pos_users[idx]
            bi[q] = pos_items[idx]
        for q in range(m):
            bj[q] = sample_negative(indptr, indices, bu[q], n_items, states, rs)
        for q in range(m):
            if bj[q] >= 0:
                for f in range(0, d, step):
                    sink += P[bu[q], f] + Q[bi[q], f] + Q[bj[q], f]
        # loss = sum(m_k) + log(prod(1 + e_k)); each factor is in (1, 2], so a
        # product over LOOKAHEAD <= 64 triples cannot overflow a float64.
        prod = 1.0
        for q in range(m):
            u = bu[q]
            i = bi[q]
            j = bj[q]
            if j < 0:
                continue
            cnt += 1
            if mode == MODE_BPR:
                mm, e = _bpr_update(P, Q, GP, GQ, u, i, j, lr, reg, adagrad)
            elif mode == MODE_APR:
                mm, e = _apr_update(P, Q, GP, GQ, u, i, j, lr, reg, eps, reg_adv, adagrad)
            else:
                fill_random_unit(buf[0], eps, states, rs)
                fill_random_unit(buf[1], eps, states, rs)
                fill_random_unit(buf[2], eps, states, rs)
                mm, e = _apr_given(P, Q, GP, GQ, u, i, j, buf[0], buf[1], buf[2], lr, reg,
                                   reg_adv, adagrad)
            acc += mm
            prod *= 1.0 + e
        acc += math.log(prod)
    return acc, cnt, sink


def _epoch(P, Q, GP, GQ, indptr, indices, pos_users, pos_items, order, states,
           lr, reg, eps, reg_adv, mode, adagrad, n_chunks):
    n = order.shape[0]
    d = P.shape[1]
    losses = np.zeros(n_chunks)
    counts = np.zeros(n_chunks, dtype=np.int64)
    sinks = np.zeros(n_chunks * 8)
    # Thread-private scratch, indexed by chunk: no two threads share a buffer.
    bufs = np.zeros((n_chunks, 3, d), dtype=P.dtype)
    trips = np.empty((n_chunks, 3, LOOKAHEAD), dtype=np.int64)
    for t in prange(n_chunks):
        loss, cnt, sink = run_chunk(P, Q, GP, GQ, indptr, indices, pos_users, pos_items, order,
                                    (t * n) // n_chunks, ((t + 1) * n) // n_chunks, states,
                                    t * STRIDE, lr, reg, eps, reg_adv, mode, adagrad,
                                    bufs[t], trips[t])
        losses[t] = loss
        counts[t] = cnt
        sinks[8 * t] = sink
    return losses.sum(), counts.sum()


epoch_serial = njit(cache=True, fastmath=FASTMATH)(_epoch)
epoch_parallel = njit(cache=True, parallel=True, fastmath=FASTMATH)(_epoch)


@njit(cache=True, fastmath=FASTMATH)
def all_finite(A):
    """True when every element of the 2-D array ``A`` is finite."""
    for r in range(A.shape[0]):
        for c in range(A.shape[1]):
            if not np.isfinite(A[r, c]):
                return False
    return True
