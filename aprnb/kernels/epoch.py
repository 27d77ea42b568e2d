"""Epoch loops over the training positives: serial and Hogwild ``prange``.

One epoch visits every stored ``(u, i)`` once, in the order given by ``order``
(reshuffled by the caller with :func:`aprnb.kernels._rng.shuffle`), and draws one
uniform negative per positive. The work is cut into ``n_chunks`` contiguous
slices of ``order``; slice ``t`` draws from RNG stream ``states[t * STRIDE]`` (streams one cache line
apart, so the threads never share a written line).

The same Python function is compiled twice, under two names (see
``_renamed``): ``epoch_serial``
runs the slices one after another, so one chunk plus a seed is bitwise
reproducible; ``epoch_parallel`` runs them on Numba threads that update the
shared factors without locks (Hogwild, Niu et al. 2011), which is *not*
bitwise reproducible.

``mode``: 0 = BPR, 1 = APR with the closed-form adversarial perturbation,
2 = APR with random noise (Gaussian rows, L2-normalised, times ``eps``).
"""
import math
import types

import numpy as np
from numba import njit, prange

from ._math import FASTMATH
from ._intrinsics import prefetch
from ._rng import STRIDE, uniform
from .apr import _apr_given, _apr_update
from .bpr import _bpr_update
from .sampling import sample_negative

MODE_BPR = 0
MODE_APR = 1
MODE_APR_RANDOM = 2


@njit(cache=True, inline="always", fastmath=FASTMATH, error_model="numpy")
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


#: Triples per pipeline stage (see ``run_chunk``).
LOOKAHEAD = 16


@njit(cache=True, inline="always", fastmath=FASTMATH, error_model="numpy")
def _prefetch_rows(A, r, step):
    for f in range(0, A.shape[1], step):
        prefetch(A, r, f)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def run_chunk(P, Q, GP, GQ, indptr, indices, pos_users, pos_items, order, lo, hi, states, rs,
              lr, reg, eps, reg_adv, mode, adagrad, buf, trip):
    """Train on the positives ``order[lo:hi]`` drawing from RNG stream ``states[rs]``.

    The loop is bound by memory latency (a random CSR row and three random
    embedding rows per triple), so it is software-pipelined over groups of
    LOOKAHEAD triples. At step ``g``:

    1. read the pairs of group ``g`` and prefetch their users' CSR rows;
    2. sample the negatives of group ``g - 1`` (their CSR rows are now cached) and
       prefetch the embedding rows ``p_u, q_i, q_j`` it will update;
    3. run the in-place steps of group ``g - 2`` on rows prefetched a step ago.

    Prefetches never stall, so the memory traffic of two groups overlaps the
    arithmetic of a third. The updates happen in the same order as in a plain
    loop, and the negatives are drawn in the same order (in mode 2 the noise
    vectors are drawn later than in a plain loop). ``buf`` (6, d) and ``trip``
    (3 slots, 3, LOOKAHEAD) are this chunk's private scratch. Returns
    ``(summed loss, triples)``.
    """
    n_items = Q.shape[0]
    gbuf = buf[3:6]            # gradient rows for the Adagrad update
    step = max(1, 64 // P.itemsize)
    ex_step = max(1, 64 // indices.itemsize)
    n = hi - lo
    n_groups = (n + LOOKAHEAD - 1) // LOOKAHEAD
    acc = 0.0
    cnt = 0
    for g in range(n_groups + 2):
        if g < n_groups:                                    # stage 1: read, prefetch CSR
            t = trip[g % 3]
            base = lo + g * LOOKAHEAD
            m = min(LOOKAHEAD, hi - base)
            for q in range(m):
                idx = order[base + q]
                u = pos_users[idx]
                t[0, q] = u
                t[1, q] = pos_items[idx]
                prefetch(indices, indptr[u], 0)
                prefetch(indices, indptr[u], ex_step)
        if 1 <= g <= n_groups:                              # stage 2: sample, prefetch rows
            t = trip[(g - 1) % 3]
            base = lo + (g - 1) * LOOKAHEAD
            m = min(LOOKAHEAD, hi - base)
            for q in range(m):
                j = sample_negative(indptr, indices, t[0, q], n_items, states, rs)
                t[2, q] = j
                if j >= 0:
                    _prefetch_rows(P, t[0, q], step)
                    _prefetch_rows(Q, t[1, q], step)
                    _prefetch_rows(Q, j, step)
                    if adagrad:                             # and their accumulators
                        _prefetch_rows(GP, t[0, q], step)
                        _prefetch_rows(GQ, t[1, q], step)
                        _prefetch_rows(GQ, j, step)
        if g >= 2:                                          # stage 3: update
            t = trip[(g - 2) % 3]
            base = lo + (g - 2) * LOOKAHEAD
            m = min(LOOKAHEAD, hi - base)
            # loss = sum(m_k) + log(prod(1 + e_k)); each factor is in (1, 2], so a
            # product over LOOKAHEAD <= 64 triples cannot overflow a float64.
            prod = 1.0
            for q in range(m):
                u = t[0, q]
                i = t[1, q]
                j = t[2, q]
                if j < 0:
                    continue
                cnt += 1
                if mode == MODE_BPR:
                    mm, e = _bpr_update(P, Q, GP, GQ, gbuf, u, i, j, lr, reg, adagrad)
                elif mode == MODE_APR:
                    mm, e = _apr_update(P, Q, GP, GQ, gbuf, u, i, j, lr, reg, eps, reg_adv,
                                        adagrad)
                else:
                    fill_random_unit(buf[0], eps, states, rs)
                    fill_random_unit(buf[1], eps, states, rs)
                    fill_random_unit(buf[2], eps, states, rs)
                    mm, e = _apr_given(P, Q, GP, GQ, gbuf, u, i, j, buf[0], buf[1], buf[2], lr, reg,
                                       reg_adv, adagrad)
                acc += mm
                prod *= 1.0 + e
            acc += math.log(prod)
    return acc, cnt


def _epoch(P, Q, GP, GQ, indptr, indices, pos_users, pos_items, order, states,
           lr, reg, eps, reg_adv, mode, adagrad, n_chunks):
    n = order.shape[0]
    d = P.shape[1]
    losses = np.zeros(n_chunks)
    counts = np.zeros(n_chunks, dtype=np.int64)
    # Thread-private scratch, indexed by chunk: no two threads share a buffer.
    bufs = np.zeros((n_chunks, 6, d), dtype=P.dtype)
    trips = np.empty((n_chunks, 3, 3, LOOKAHEAD), dtype=np.int64)
    for t in prange(n_chunks):
        loss, cnt = run_chunk(P, Q, GP, GQ, indptr, indices, pos_users, pos_items, order,
                                    (t * n) // n_chunks, ((t + 1) * n) // n_chunks, states,
                                    t * STRIDE, lr, reg, eps, reg_adv, mode, adagrad,
                                    bufs[t], trips[t])
        losses[t] = loss
        counts[t] = cnt
    return losses.sum(), counts.sum()


def _renamed(fn, name):
    """A copy of the function ``fn`` under another name.

    Numba names a cached kernel's files after the Python function's
    ``__qualname__`` and keys the entries by signature only, not by compile
    options. Compiling one function twice with ``cache=True`` (serial and
    ``parallel=True``) therefore makes both dispatchers share one cache entry,
    and after a reload both run whichever version was saved last: the
    "parallel" epoch silently ran on one thread. Each variant gets its own name.
    """
    out = types.FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__, fn.__closure__)
    out.__qualname__ = name
    out.__doc__ = fn.__doc__
    return out


epoch_serial = njit(cache=True, fastmath=FASTMATH, error_model="numpy")(
    _renamed(_epoch, "epoch_serial"))
epoch_parallel = njit(cache=True, parallel=True, fastmath=FASTMATH, error_model="numpy")(
    _renamed(_epoch, "epoch_parallel"))


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def all_finite(A):
    """True when every element of the 2-D array ``A`` is finite."""
    for r in range(A.shape[0]):
        for c in range(A.shape[1]):
            if not np.isfinite(A[r, c]):
                return False
    return True
