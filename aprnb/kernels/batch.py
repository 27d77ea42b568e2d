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
(up to floating-point rounding of the normalisation).

Threads. As in :mod:`aprnb.kernels.epoch`, the pairs are cut into ``n_chunks``
contiguous slices, each with its own RNG streams (block ``states[t * STRIDE:]``)
and its own scratch, and each slice is cut into mini-batches. ``batch_serial``
runs the slices one after another: with one chunk this is the serial mini-batch
epoch, batch after batch over all pairs, bitwise reproducible with a seed.
``batch_parallel`` runs the slices on Numba threads at once, updating the
shared factors without locks: Hogwild over mini-batches. Inside a batch the
semantics above hold exactly (the summed gradients, the perturbation, one
de-duplicated update per row), but a batch may read rows that the other
threads' batches are updating, so a multi-thread epoch is not bitwise
reproducible. On one thread ``batch_parallel`` runs the slices in order and
equals ``batch_serial`` bit for bit (``tests/test_kernels.py``).

Speed. Every batch makes two passes over its triples: the gather pass (draw
the negatives, claim and zero the slots, the clean pass) and the descent
pass, which also normalises each slot's perturbation just before its first
use and updates each row right after its last use (while the row is still in
cache; no later triple of the batch reads it, so this is the update the
official code makes after the batch). They are pipelined like the per-triple
kernel's: every first negative draw of a batch is made and its filter word
prefetched before the negatives are resolved; each resolved triple's
embedding rows are prefetched while the clean pass trails ``LAG`` triples
behind; the descent pass prefetches the rows (and the Adagrad accumulators)
of the triple ``AHEAD`` places on. The inner loop is compiled without
reference counting.
"""

import numpy as np
from numba import prange

from ._grads import add_bpr_loss_grad, apr_grad, margin, perturbed
from ._intrinsics import prefetch, sqrt
from ._jit import inline, kernel, twin
from ._math import guarded_inv_norm, sigmoid, softplus
from .epoch import MODE_APR, MODE_APR_RANDOM, fill_random_unit
from ._rng import NOISE, STRIDE, shuffle_range
from .sampling import filter_slot, first_draw, resolve_negative

#: Triples ahead whose rows the descent pass prefetches.
AHEAD = 8
#: Triples by which the clean pass trails the negative draws (``_gather_clean``).
LAG = 8


@inline
def _claim(slot, rows, last, n, r, t, G):
    """Slot of row ``r`` in the batch buffers, allocating (and zeroing) a new one if
    ``r`` has none; returns the new slot count. Records triple ``t`` as the slot's
    last use so far.

    Only the clean gradient ``G`` is zeroed here; the descent gradient ``G2`` of
    a slot is zeroed by :func:`_apply_row` once applied (it is all zeros
    between batches).
    """
    s = slot[r]
    if s < 0:
        s = n
        slot[r] = s
        rows[s] = r
        G[s, :] = 0.0
        n += 1
    last[s] = t
    return n


@inline
def _apply_row(W, GW, r, G2, s, lr, adagrad):
    """Step 3's update of row ``r`` of ``W`` with its summed gradient ``G2[s]``,
    which it leaves zero."""
    if adagrad:         # the test outside the loops: each one vectorises on its own
        for f in range(W.shape[1]):
            g = G2[s, f]
            G2[s, f] = 0.0
            GW[r, f] += g * g
            W[r, f] -= lr * g / sqrt(GW[r, f])
    else:
        for f in range(W.shape[1]):
            W[r, f] -= lr * G2[s, f]
            G2[s, f] = 0.0


@inline
def _normalize_row(G, s, eps):
    """Step 2 for slot ``s``, in place: ``G[s] <- eps * G[s] / max(|G[s]|, 1e-6)``."""
    sq = 0.0
    for f in range(G.shape[1]):
        sq += G[s, f] * G[s, f]
    c = G.dtype.type(eps * guarded_inv_norm(sq))
    for f in range(G.shape[1]):
        G[s, f] = c * G[s, f]


@inline
def _random_rows(G, n, eps, state, rs):
    """Step 2 of random-noise APR: a fresh Gaussian row of norm ``eps`` per slot."""
    for s in range(n):
        fill_random_unit(G, s, eps, state, rs + NOISE)


@inline
def _prefetch_row(A, r, step):
    for f in range(0, A.shape[1], step):
        prefetch(A, r, f)


@inline
def _first_draws(filt, pos_users, pos_items, lo, hi, states, rs, n_items, T, slot_u, slot_i):
    """Every triple's first negative draw (stream DRAW, in triple order) into
    ``T[2, :hi - lo]``, prefetching its filter word."""
    for k in range(lo, hi):
        u = pos_users[k]
        j0 = first_draw(n_items, states, rs)
        T[2, k - lo] = j0
        word, _ = filter_slot(filt, u, j0, n_items)
        prefetch(filt, word, 0)
        prefetch(slot_u, u, 0)                  # the slots the claims will read
        prefetch(slot_i, pos_items[k], 0)
        prefetch(slot_i, j0, 0)


@inline
def _clean_one(P, Q, T, t, ts, slot_u, slot_i, GU, GI, mode):
    """Step 1 for triple ``t``: ``sigma(-x)`` into ``ts[t]`` and (APR) its BPR gradient
    added to its rows' slots. Returns its clean loss."""
    dt = P.dtype.type
    u, i, j = T[0, t], T[1, t], T[2, t]
    x = margin(P, Q, u, i, j, dt(0.0))
    s = dt(sigmoid(-x))
    ts[t] = s
    if mode == MODE_APR:
        add_bpr_loss_grad(P, Q, u, i, j, s, GU, slot_u[u], GI, slot_i[i], slot_i[j])
    return softplus(-x)


@inline
def _gather_clean(P, Q, filt, indptr, indices, pos_users, pos_items, lo, hi, states, rs, slots,
                  rows, bufs, T, ts, mode, total, step):
    """Draw the negatives of the pairs ``lo:hi``, claim a slot for each row, and run
    step 1 (the clean pass) on the batch's triples.

    Fills the batch's triples ``T[0:3, :nb]`` (users, positives, negatives) and
    returns ``(nb, nu, ni, total)``: triples, touched user rows, touched item
    rows, and ``total`` plus the clean losses, added in triple order. Pipelined
    so that memory latency overlaps: :func:`_first_draws` first; then each
    negative is resolved (stream REDRAW, in triple order: the same draws as a
    plain loop) and the triple's three embedding rows are prefetched, while
    the clean pass runs LAG triples behind.
    """
    slot_u, slot_i = slots
    rows_u, rows_i, last_u, last_i = rows
    GU, GI = bufs
    n_items = slot_i.shape[0]
    _first_draws(filt, pos_users, pos_items, lo, hi, states, rs, n_items, T, slot_u, slot_i)
    nb = 0
    nu = 0
    ni = 0
    for k in range(lo, hi):
        u = pos_users[k]
        i = pos_items[k]
        j = resolve_negative(filt, indptr, indices, u, T[2, k - lo], n_items, states, rs)
        if j < 0:
            continue
        _prefetch_row(P, u, step)
        _prefetch_row(Q, i, step)
        _prefetch_row(Q, j, step)
        nu = _claim(slot_u, rows_u, last_u, nu, u, nb, GU)
        ni = _claim(slot_i, rows_i, last_i, ni, i, nb, GI)
        ni = _claim(slot_i, rows_i, last_i, ni, j, nb, GI)
        T[0, nb] = u
        T[1, nb] = i
        T[2, nb] = j
        nb += 1
        if nb > LAG:
            total += _clean_one(P, Q, T, nb - 1 - LAG, ts, slot_u, slot_i, GU, GI, mode)
    for t in range(max(0, nb - LAG), nb):
        total += _clean_one(P, Q, T, t, ts, slot_u, slot_i, GU, GI, mode)
    return nb, nu, ni, total


@inline
def _prefetch_triple(P, Q, GP, GQ, T, t, slot_u, slot_i, DU, DI, G2U, G2I, adagrad, step):
    """Prefetch the rows the descent pass reads and writes for triple ``t``."""
    u, i, j = T[0, t], T[1, t], T[2, t]
    su, si, sj = slot_u[u], slot_i[i], slot_i[j]
    _prefetch_row(P, u, step)
    _prefetch_row(Q, i, step)
    _prefetch_row(Q, j, step)
    _prefetch_row(DU, su, step)
    _prefetch_row(DI, si, step)
    _prefetch_row(DI, sj, step)
    _prefetch_row(G2U, su, step)
    _prefetch_row(G2I, si, step)
    _prefetch_row(G2I, sj, step)
    if adagrad:
        _prefetch_row(GP, u, step)
        _prefetch_row(GQ, i, step)
        _prefetch_row(GQ, j, step)


@inline
def _descent_pass(P, Q, GP, GQ, T, nb, ts, slot_u, slot_i, last_u, last_i, DU, DI, G2U, G2I,
                  lr, reg, reg_adv, adagrad, adversarial, mode, eps, step):
    """Step 3: the APR (or, with ``adversarial=False``, BPR) gradients summed per row,
    and the update of each row right after the last triple of the batch that uses it.

    Applying a row's update at its last use gives what a separate update pass
    after the batch would give: no later triple of the batch reads the row, and
    each row's update reads only its own summed gradient (and Adagrad
    accumulator). The row is then still in cache.

    With ``mode == MODE_APR`` it also runs step 2 on each slot just before its
    first use: slots were claimed in triple order, so the next slot still to
    normalise is the next new one met here (``nu_done``, ``ni_done``).
    """
    dt = P.dtype.type
    reg_ = dt(reg)
    nu_done = 0
    ni_done = 0
    for t in range(nb):
        if t + AHEAD < nb:
            _prefetch_triple(P, Q, GP, GQ, T, t + AHEAD, slot_u, slot_i, DU, DI, G2U, G2I,
                             adagrad, step)
        u, i, j = T[0, t], T[1, t], T[2, t]
        su, si, sj = slot_u[u], slot_i[i], slot_i[j]
        if mode == MODE_APR:
            if su == nu_done:
                _normalize_row(DU, su, eps)
                nu_done += 1
            if si == ni_done:
                _normalize_row(DI, si, eps)
                ni_done += 1
            if sj == ni_done:
                _normalize_row(DI, sj, eps)
                ni_done += 1
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
        if last_u[su] == t:
            _apply_row(P, GP, u, G2U, su, lr, adagrad)
        if last_i[si] == t:
            _apply_row(Q, GQ, i, G2I, si, lr, adagrad)
        if last_i[sj] == t:
            _apply_row(Q, GQ, j, G2I, sj, lr, adagrad)


@kernel(refcount=False)
def run_batches(P, Q, GP, GQ, filt, indptr, indices, pos_users, pos_items, lo, hi, states, rs,
                lr, reg, eps, reg_adv, mode, adagrad, B, slots, rows, ubuf, ibuf, T, ts):
    """Train on the pairs ``lo:hi`` in mini-batches of ``B``, with the streams ``states[rs:]``.

    The batches are ``lo:lo+B``, ``lo+B:lo+2B``, ...; each is one step of the
    module docstring. Scratch, private to the caller's chunk: ``slots``
    (n_users + n_items, all -1 on entry and on return) maps a row to its buffer
    slot; ``rows`` (6B,): the touched user rows, then the item rows, then for
    each of these slots the last triple of the batch that uses it;
    ``ubuf`` (2, B, d) and ``ibuf`` (2, 2B, d) hold the per-slot clean gradient
    ``G`` (turned into the perturbation ``D`` in place) and the descent gradient
    ``G2`` of users and items (``G2`` all zeros on entry, and on return);
    ``T`` (3, B) the batch's triples and ``ts`` (B,) their ``sigma(-x)``.
    Compiled without reference counting (``_jit.NO_REFCOUNT``): it allocates
    nothing. Returns ``(summed clean loss, triples)``.
    """
    n_users = P.shape[0]
    slot_u, slot_i = slots[:n_users], slots[n_users:]
    rows_u, rows_i = rows[:B], rows[B:3 * B]
    last_u, last_i = rows[3 * B:4 * B], rows[4 * B:]
    GU, G2U = ubuf[0], ubuf[1]         # G becomes the perturbation D in step 2
    GI, G2I = ibuf[0], ibuf[1]
    step = max(1, 64 // P.itemsize)
    lr_ = P.dtype.type(lr)
    adversarial = mode == MODE_APR or mode == MODE_APR_RANDOM
    total = 0.0
    count = 0
    for start in range(lo, hi, B):
        nb, nu, ni, total = _gather_clean(P, Q, filt, indptr, indices, pos_users, pos_items,
                                          start, min(hi, start + B), states, rs,
                                          (slot_u, slot_i), (rows_u, rows_i, last_u, last_i),
                                          (GU, GI), T, ts, mode, total, step)
        if mode == MODE_APR_RANDOM:         # step 2 (MODE_APR: inside the descent pass)
            _random_rows(GU, nu, eps, states, rs)
            _random_rows(GI, ni, eps, states, rs)
        _descent_pass(P, Q, GP, GQ, T, nb, ts, slot_u, slot_i, last_u, last_i, GU, GI, G2U,
                      G2I, lr_, reg, reg_adv, adagrad, adversarial, mode, eps, step)
        for s in range(nu):
            slot_u[rows_u[s]] = -1
        for s in range(ni):
            slot_i[rows_i[s]] = -1
        count += nb
    return total, count


def _batch_epoch(P, Q, GP, GQ, filt, indptr, indices, pos_users, pos_items, states,
                 lr, reg, eps, reg_adv, mode, adagrad, n_chunks, batch_size, shuffle=False):
    n = pos_users.shape[0]
    d = P.shape[1]
    B = batch_size
    losses = np.zeros(n_chunks)
    counts = np.zeros(n_chunks, dtype=np.int64)
    # Chunk-private scratch (see run_batches).
    slots = np.full((n_chunks, P.shape[0] + Q.shape[0]), -1, dtype=np.int32)
    rows = np.empty((n_chunks, 6 * B), dtype=np.int64)
    ubuf = np.zeros((n_chunks, 2, B, d), dtype=P.dtype)
    ibuf = np.zeros((n_chunks, 2, 2 * B, d), dtype=P.dtype)
    T = np.empty((n_chunks, 3, B), dtype=np.int64)
    ts = np.empty((n_chunks, B), dtype=P.dtype)
    for t in prange(n_chunks):
        lo = (t * n) // n_chunks
        hi = ((t + 1) * n) // n_chunks
        if shuffle:           # each chunk reshuffles its own slice (stream DRAW)
            shuffle_range(pos_users, pos_items, lo, hi, states, t * STRIDE)
        loss, cnt = run_batches(P, Q, GP, GQ, filt, indptr, indices, pos_users, pos_items,
                                lo, hi, states, t * STRIDE, lr, reg, eps, reg_adv, mode,
                                adagrad, B, slots[t], rows[t], ubuf[t], ibuf[t], T[t], ts[t])
        losses[t] = loss
        counts[t] = cnt
    return losses.sum(), counts.sum()


batch_serial, batch_parallel = twin(_batch_epoch, "batch_serial", "batch_parallel")
#: The serial twin under its former name.
batch_epoch = batch_serial
