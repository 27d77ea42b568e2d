r"""Paper-faithful mini-batch epochs (the official TensorFlow AMF code's semantics).

For each mini-batch of ``batch_size`` triples:

1. the clean margins ``x_t`` and the gradient of the **summed** batch BPR loss
   w.r.t. every embedding row are computed; a row that appears in several
   triples gets the sum of their gradients (``np.add.at`` semantics);
2. the perturbation of each touched row is that gradient, L2-normalised per row
   (guarded norm), times ``eps``; untouched rows get zero;
3. the gradient of ``sum_t softplus(-x_t) + reg_adv * softplus(-x_adv_t)``, with
   the perturbation held constant, plus ``reg * theta`` per occurrence, is summed
   per row and applied once per touched row (SGD or Adagrad).

All gradients of a batch are taken at the parameters from before the batch, as
an autodiff framework does. With ``batch_size=1`` this is the per-triple kernel
(up to floating-point rounding of the normalisation). Serial only: the streams of chunk 0.
"""

import numpy as np
from numba import njit

from ._intrinsics import sqrt
from ._math import FASTMATH, guarded_inv_norm, sigmoid, softplus
from .epoch import MODE_APR, MODE_APR_RANDOM, fill_random_unit
from ._rng import NOISE, shuffle_pairs
from .sampling import sample_negative


@njit(cache=True, inline="always", fastmath=FASTMATH, error_model="numpy")
def _claim(slot, rows, n, r, G, D, G2):
    """Slot of row ``r`` in the batch buffers, allocating (and zeroing) a new one."""
    s = slot[r]
    if s < 0:
        s = n
        slot[r] = s
        rows[s] = r
        G[s, :] = 0.0
        D[s, :] = 0.0
        G2[s, :] = 0.0
    return s


@njit(cache=True, inline="always", fastmath=FASTMATH, error_model="numpy")
def _apply_rows(W, GW, rows, n, G2, lr, adagrad):
    for s in range(n):
        r = rows[s]
        for f in range(W.shape[1]):
            g = G2[s, f]
            if adagrad:
                GW[r, f] += g * g
                W[r, f] -= lr * g / sqrt(GW[r, f])
            else:
                W[r, f] -= lr * g


@njit(cache=True, inline="always", fastmath=FASTMATH, error_model="numpy")
def _perturb_rows(D, G, n, eps, mode, state):
    dt = D.dtype.type
    for s in range(n):
        if mode == MODE_APR:
            sq = 0.0
            for f in range(D.shape[1]):
                sq += G[s, f] * G[s, f]
            c = dt(eps * guarded_inv_norm(sq))
            for f in range(D.shape[1]):
                D[s, f] = c * G[s, f]
        elif mode == MODE_APR_RANDOM:
            fill_random_unit(D, s, eps, state, NOISE)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def batch_epoch(P, Q, GP, GQ, filt, indptr, indices, pos_users, pos_items, states,
                lr, reg, eps, reg_adv, mode, adagrad, n_chunks, batch_size, shuffle=False):
    """One epoch in mini-batches; same arguments as ``epoch_serial`` plus ``batch_size``.

    ``n_chunks`` is ignored (serial: one chunk; ``shuffle`` shuffles all pairs).
    Returns ``(summed clean loss, triples)``.
    """
    if shuffle:
        shuffle_pairs(pos_users, pos_items, states, 0)
    dt = P.dtype.type
    d = P.shape[1]
    n = pos_users.shape[0]
    n_items = Q.shape[0]
    B = batch_size
    slot_u = np.full(P.shape[0], -1, dtype=np.int64)
    slot_i = np.full(n_items, -1, dtype=np.int64)
    rows_u = np.empty(B, dtype=np.int64)
    rows_i = np.empty(2 * B, dtype=np.int64)
    GU = np.zeros((B, d), dtype=P.dtype)
    DU = np.zeros((B, d), dtype=P.dtype)
    G2U = np.zeros((B, d), dtype=P.dtype)
    GI = np.zeros((2 * B, d), dtype=P.dtype)
    DI = np.zeros((2 * B, d), dtype=P.dtype)
    G2I = np.zeros((2 * B, d), dtype=P.dtype)
    tu = np.empty(B, dtype=np.int64)
    ti = np.empty(B, dtype=np.int64)
    tj = np.empty(B, dtype=np.int64)
    ts = np.empty(B, dtype=P.dtype)
    lr_ = dt(lr)
    reg_ = dt(reg)
    adversarial = mode == MODE_APR or mode == MODE_APR_RANDOM
    total = 0.0
    count = 0
    for start in range(0, n, B):
        nb = 0
        nu = 0
        ni = 0
        for k in range(start, min(n, start + B)):
            u = pos_users[k]
            i = pos_items[k]
            j = sample_negative(filt, indptr, indices, u, n_items, states, 0)
            if j < 0:
                continue
            if slot_u[u] < 0:
                _claim(slot_u, rows_u, nu, u, GU, DU, G2U)
                nu += 1
            if slot_i[i] < 0:
                _claim(slot_i, rows_i, ni, i, GI, DI, G2I)
                ni += 1
            if slot_i[j] < 0:
                _claim(slot_i, rows_i, ni, j, GI, DI, G2I)
                ni += 1
            tu[nb] = u
            ti[nb] = i
            tj[nb] = j
            nb += 1
        # 1. clean margins and the summed BPR gradient per row
        for t in range(nb):
            u, i, j = tu[t], ti[t], tj[t]
            x = dt(0.0)
            for f in range(d):
                x += P[u, f] * (Q[i, f] - Q[j, f])
            total += softplus(-x)
            s = dt(sigmoid(-x))
            ts[t] = s
            if mode == MODE_APR:
                su, si, sj = slot_u[u], slot_i[i], slot_i[j]
                for f in range(d):
                    pu = P[u, f]
                    GU[su, f] -= s * (Q[i, f] - Q[j, f])
                    GI[si, f] -= s * pu
                    GI[sj, f] += s * pu
        # 2. perturbation per touched row
        if adversarial:
            _perturb_rows(DU, GU, nu, eps, mode, states)
            _perturb_rows(DI, GI, ni, eps, mode, states)
        # 3. gradients with the perturbation held constant, summed per row
        for t in range(nb):
            u, i, j = tu[t], ti[t], tj[t]
            su, si, sj = slot_u[u], slot_i[i], slot_i[j]
            s = ts[t]
            a = dt(0.0)
            if adversarial:
                xa = dt(0.0)
                for f in range(d):
                    xa += (P[u, f] + DU[su, f]) * ((Q[i, f] - Q[j, f])
                                                  + (DI[si, f] - DI[sj, f]))
                a = dt(reg_adv * sigmoid(-xa))
            for f in range(d):
                pu = P[u, f]
                qi = Q[i, f]
                qj = Q[j, f]
                dd = (qi - qj) + (DI[si, f] - DI[sj, f])
                pt = pu + DU[su, f]
                G2U[su, f] += reg_ * pu - s * (qi - qj) - a * dd
                G2I[si, f] += reg_ * qi - s * pu - a * pt
                G2I[sj, f] += reg_ * qj + s * pu + a * pt
        _apply_rows(P, GP, rows_u, nu, G2U, lr_, adagrad)
        _apply_rows(Q, GQ, rows_i, ni, G2I, lr_, adagrad)
        for s in range(nu):
            slot_u[rows_u[s]] = -1
        for s in range(ni):
            slot_i[rows_i[s]] = -1
        count += nb
    return total, count
