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

from ._grads import add_bpr_loss_grad, apr_grad, margin, perturbed
from ._intrinsics import sqrt
from ._jit import inline, kernel
from ._math import guarded_inv_norm, sigmoid, softplus
from .epoch import MODE_APR, MODE_APR_RANDOM, fill_random_unit
from ._rng import NOISE, shuffle_pairs
from .sampling import sample_negative


@inline
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


@inline
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


@inline
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


@inline
def _gather(filt, indptr, indices, pos_users, pos_items, lo, hi, states, slots, rows, bufs, T):
    """Draw the negatives of the pairs ``lo:hi`` and claim a buffer slot for each row.

    Fills the batch's triples ``T[0:3, :nb]`` (users, positives, negatives) and
    returns ``(nb, nu, ni)``: triples, touched user rows, touched item rows.
    """
    slot_u, slot_i = slots
    rows_u, rows_i = rows
    GU, DU, G2U, GI, DI, G2I = bufs
    n_items = slot_i.shape[0]
    nb = 0
    nu = 0
    ni = 0
    for k in range(lo, hi):
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
        T[0, nb] = u
        T[1, nb] = i
        T[2, nb] = j
        nb += 1
    return nb, nu, ni


@inline
def _clean_pass(P, Q, T, nb, ts, slot_u, slot_i, GU, GI, mode, total):
    """Step 1: clean margins, ``sigma(-x)`` per triple and (APR) the summed BPR gradient.

    Returns ``total`` plus the clean losses of the batch, added one by one.
    """
    dt = P.dtype.type
    for t in range(nb):
        u, i, j = T[0, t], T[1, t], T[2, t]
        x = margin(P, Q, u, i, j, dt(0.0))
        total += softplus(-x)
        s = dt(sigmoid(-x))
        ts[t] = s
        if mode == MODE_APR:
            add_bpr_loss_grad(P, Q, u, i, j, s, GU, slot_u[u], GI, slot_i[i], slot_i[j])
    return total


@inline
def _descent_pass(P, Q, T, nb, ts, slot_u, slot_i, DU, DI, G2U, G2I, reg, reg_adv,
                  adversarial):
    """Step 3: the APR (or, with ``adversarial=False``, BPR) gradients summed per row."""
    dt = P.dtype.type
    reg_ = dt(reg)
    for t in range(nb):
        u, i, j = T[0, t], T[1, t], T[2, t]
        su, si, sj = slot_u[u], slot_i[i], slot_i[j]
        s = ts[t]
        a = dt(0.0)
        if adversarial:
            xa = dt(0.0)
            for f in range(P.shape[1]):
                pt, dd = perturbed(P[u, f], Q[i, f], Q[j, f], DU[su, f], DI[si, f], DI[sj, f])
                xa += pt * dd
            a = dt(reg_adv * sigmoid(-xa))
        for f in range(P.shape[1]):
            pu = P[u, f]
            qi = Q[i, f]
            qj = Q[j, f]
            pt, dd = perturbed(pu, qi, qj, DU[su, f], DI[si, f], DI[sj, f])
            gp, gi, gj = apr_grad(pu, qi, qj, pt, dd, s, a, reg_)
            G2U[su, f] += gp
            G2I[si, f] += gi
            G2I[sj, f] += gj


@kernel
def batch_epoch(P, Q, GP, GQ, filt, indptr, indices, pos_users, pos_items, states,
                lr, reg, eps, reg_adv, mode, adagrad, n_chunks, batch_size, shuffle=False):
    """One epoch in mini-batches; same arguments as ``epoch_serial`` plus ``batch_size``.

    ``n_chunks`` is ignored (serial: one chunk; ``shuffle`` shuffles all pairs).
    Returns ``(summed clean loss, triples)``.
    """
    if shuffle:
        shuffle_pairs(pos_users, pos_items, states, 0)
    d = P.shape[1]
    n = pos_users.shape[0]
    B = batch_size
    slot_u = np.full(P.shape[0], -1, dtype=np.int64)
    slot_i = np.full(Q.shape[0], -1, dtype=np.int64)
    rows_u = np.empty(B, dtype=np.int64)
    rows_i = np.empty(2 * B, dtype=np.int64)
    GU, DU, G2U = np.zeros((B, d), P.dtype), np.zeros((B, d), P.dtype), np.zeros((B, d), P.dtype)
    GI, DI, G2I = (np.zeros((2 * B, d), P.dtype), np.zeros((2 * B, d), P.dtype),
                   np.zeros((2 * B, d), P.dtype))
    T = np.empty((3, B), dtype=np.int64)            # users, positives, negatives
    ts = np.empty(B, dtype=P.dtype)                 # sigma(-x) per triple
    lr_ = P.dtype.type(lr)
    adversarial = mode == MODE_APR or mode == MODE_APR_RANDOM
    total = 0.0
    count = 0
    for start in range(0, n, B):
        nb, nu, ni = _gather(filt, indptr, indices, pos_users, pos_items, start,
                             min(n, start + B), states, (slot_u, slot_i), (rows_u, rows_i),
                             (GU, DU, G2U, GI, DI, G2I), T)
        total = _clean_pass(P, Q, T, nb, ts, slot_u, slot_i, GU, GI, mode, total)
        if adversarial:                     # step 2: the perturbation per touched row
            _perturb_rows(DU, GU, nu, eps, mode, states)
            _perturb_rows(DI, GI, ni, eps, mode, states)
        _descent_pass(P, Q, T, nb, ts, slot_u, slot_i, DU, DI, G2U, G2I, reg, reg_adv,
                      adversarial)
        _apply_rows(P, GP, rows_u, nu, G2U, lr_, adagrad)
        _apply_rows(Q, GQ, rows_i, ni, G2I, lr_, adagrad)
        for s in range(nu):
            slot_u[rows_u[s]] = -1
        for s in range(ni):
            slot_i[rows_i[s]] = -1
        count += nb
    return total, count
