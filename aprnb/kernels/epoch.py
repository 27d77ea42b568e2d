"""Epoch loops over the training positives: serial and Hogwild ``prange``.

One epoch visits every stored ``(u, i)`` once, in the order given by ``order``
(reshuffled by the caller with :func:`aprnb.kernels._rng.shuffle`), and draws one
uniform negative per positive. The work is cut into ``n_chunks`` contiguous
slices of ``order``; slice ``t`` draws from RNG stream ``states[t]``.

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

from ._rng import uniform
from .apr import _apr_apply, closed_form_coefficients
from .bpr import _bpr_update
from .sampling import sample_negative

MODE_BPR = 0
MODE_APR = 1
MODE_APR_RANDOM = 2


@njit(cache=True, inline="always")
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


def _epoch(P, Q, GP, GQ, indptr, indices, pos_users, pos_items, order, states,
           lr, reg, eps, reg_adv, mode, adagrad, n_chunks):
    n = order.shape[0]
    n_items = Q.shape[0]
    d = P.shape[1]
    losses = np.zeros(n_chunks)
    counts = np.zeros(n_chunks, dtype=np.int64)
    for t in prange(n_chunks):
        lo = (t * n) // n_chunks
        hi = ((t + 1) * n) // n_chunks
        buf = np.zeros((3, d), dtype=P.dtype)
        acc = 0.0
        cnt = 0
        for k in range(lo, hi):
            idx = order[k]
            u = pos_users[idx]
            i = pos_items[idx]
            j = sample_negative(indptr, indices, u, n_items, states, t)
            if j < 0:
                continue
            cnt += 1
            if mode == MODE_BPR:
                acc += _bpr_update(P, Q, GP, GQ, u, i, j, lr, reg, adagrad)
            elif mode == MODE_APR:
                cu, cq = closed_form_coefficients(P, Q, u, i, j, eps)
                acc += _apr_apply(P, Q, GP, GQ, u, i, j, cu, cq, buf[0], buf[1], buf[2],
                                  False, lr, reg, reg_adv, adagrad)
            else:
                fill_random_unit(buf[0], eps, states, t)
                fill_random_unit(buf[1], eps, states, t)
                fill_random_unit(buf[2], eps, states, t)
                acc += _apr_apply(P, Q, GP, GQ, u, i, j, P.dtype.type(0.0), P.dtype.type(0.0),
                                  buf[0], buf[1], buf[2], True, lr, reg, reg_adv, adagrad)
        losses[t] = acc
        counts[t] = cnt
    return losses.sum(), counts.sum()


epoch_serial = njit(cache=True)(_epoch)
epoch_parallel = njit(cache=True, parallel=True)(_epoch)


@njit(cache=True)
def all_finite(A):
    """True when every element of the 2-D array ``A`` is finite."""
    for r in range(A.shape[0]):
        for c in range(A.shape[1]):
            if not np.isfinite(A[r, c]):
                return False
    return True
