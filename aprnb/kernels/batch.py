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
an autodiff framework does. A triple none of whose rows another triple of its
batch uses ("lone") gets exactly that: its gradients are its own, its rows hold
their values from before the batch when it comes, and nothing else reads them
afterwards, so its step is the per-triple APR step
(:func:`aprnb.kernels.apr._apr_update`, the guarded closed-form perturbation),
applied at once (in APR mode; BPR and random-noise mini-batches keep the slot
path for every triple). With ``batch_size=1`` every triple is lone, and an APR
mini-batch epoch leaves the factors and Adagrad accumulators bit for bit as the
per-triple epoch does; only the reported loss differs in rounding
(``tests/test_kernels.py``).

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

Speed. Every batch makes three passes over its triples: the gather pass
(draw the negatives, claim a slot per row and note each slot's first and last
use), the clean pass (step 1, only for the rows that several triples of the
batch share) and the descent pass (the clean margins and losses, steps 2 and
3, and each row's update right after its last use, while the row is still in
cache; no later triple of the batch reads it, so this is the update the
official code makes after the batch). In APR mode, lone triples (88% of the
triples of a batch of 512 on Gowalla) take the per-triple step in the descent pass. The
other triples' rows that only they use go through spare slots that stay in
the L1 cache, with the same arithmetic as through a slot of their own (a sum
of one gradient is that gradient; only the sign of an exact zero could
differ), which spares the batch buffers most of their traffic. The passes
are pipelined like the per-triple kernel: every first negative draw of a batch
is made and its filter word prefetched before the negatives are resolved;
each resolved triple's embedding rows are prefetched; the clean and descent
passes prefetch the rows (and the Adagrad accumulators) of the triple
``AHEAD`` places on. The inner loop is compiled without reference counting.
"""

import math

import numpy as np
from numba import prange

from .apr import _apr_update
from ._grads import add_bpr_loss_grad, apr_grad, bpr_loss_grad, margin, perturbed
from ._intrinsics import prefetch, sqrt
from ._jit import inline, kernel, twin
from ._math import guarded_inv_norm, sigmoid, softplus
from .epoch import MODE_APR, MODE_APR_RANDOM, fill_random_unit, prefetch_triple
from ._rng import NOISE, STRIDE, shuffle_range
from .sampling import filter_slot, first_draw, resolve_negative

#: Triples ahead whose rows the descent pass prefetches.
AHEAD = 8


@inline
def _claim(slot, rows, first, last, n, r, t):
    """Slot of row ``r`` in the batch buffers, allocating a new one if ``r`` has none;
    returns the new slot count. Records triple ``t`` as the slot's first use (for a
    new slot) and as its last use so far."""
    s = slot[r]
    if s < 0:
        s = n
        slot[r] = s
        rows[s] = r
        first[s] = t
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
def _gather(P, Q, filt, indptr, indices, pos_users, pos_items, lo, hi, states, rs, slots, rows,
            T, step):
    """Draw the negatives of the pairs ``lo:hi`` and claim a slot for each row.

    Fills the batch's triples ``T[0:3, :nb]`` (users, positives, negatives) and
    returns ``(nb, nu, ni)``: triples, touched user rows, touched item rows.
    Pipelined so that memory latency overlaps: :func:`_first_draws` first; then
    each negative is resolved (stream REDRAW, in triple order: the same draws
    as a plain loop) and the triple's three embedding rows are prefetched for
    the passes that follow.
    """
    slot_u, slot_i = slots
    rows_u, rows_i, first_u, first_i, last_u, last_i = rows
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
        nu = _claim(slot_u, rows_u, first_u, last_u, nu, u, nb)
        ni = _claim(slot_i, rows_i, first_i, last_i, ni, i, nb)
        ni = _claim(slot_i, rows_i, first_i, last_i, ni, j, nb)
        T[0, nb] = u
        T[1, nb] = i
        T[2, nb] = j
        nb += 1
    return nb, nu, ni


@inline
def _shared(first, last, s):
    """True when slot ``s`` is used by more than one triple of the batch."""
    return first[s] != last[s]


@inline
def _clean_pass(P, Q, T, nb, slot_u, slot_i, first_u, first_i, last_u, last_i, GU, GI, step):
    """Step 1 for the rows that several triples of the batch share: their BPR
    gradients summed into their slots of ``GU``/``GI``, in triple order (each slot
    zeroed at its first use). A row used by one triple only gets its gradient in
    the descent pass instead; here it adds into a spare slot (``GU[-1]``,
    ``GI[-2]``, ``GI[-1]``) that the descent pass overwrites."""
    dt = P.dtype.type
    lu, li, lj = GU.shape[0] - 1, GI.shape[0] - 2, GI.shape[0] - 1
    for t in range(nb):
        if t + AHEAD < nb:          # its rows only (no accumulators: adagrad=False)
            prefetch_triple(P, Q, P, Q, T[0, t + AHEAD], T[1, t + AHEAD], T[2, t + AHEAD],
                            False, step)
        u, i, j = T[0, t], T[1, t], T[2, t]
        su, si, sj = slot_u[u], slot_i[i], slot_i[j]
        mu = _shared(first_u, last_u, su)
        mi = _shared(first_i, last_i, si)
        mj = _shared(first_i, last_i, sj)
        if not (mu or mi or mj):
            continue
        if mu and first_u[su] == t:
            GU[su, :] = 0.0
        if mi and first_i[si] == t:
            GI[si, :] = 0.0
        if mj and first_i[sj] == t:
            GI[sj, :] = 0.0
        x = margin(P, Q, u, i, j, dt(0.0))
        add_bpr_loss_grad(P, Q, u, i, j, dt(sigmoid(-x)), GU, su if mu else lu, GI,
                          si if mi else li, sj if mj else lj)


@inline
def _prefetch_descent(P, Q, GP, GQ, T, t, slot_u, slot_i, first_u, first_i, last_u, last_i,
                      DU, DI, G2U, G2I, adagrad, step):
    """Prefetch the rows the descent pass reads and writes for triple ``t`` (the
    slots of shared rows only: the others use the spare slots)."""
    u, i, j = T[0, t], T[1, t], T[2, t]
    su, si, sj = slot_u[u], slot_i[i], slot_i[j]
    prefetch_triple(P, Q, GP, GQ, u, i, j, adagrad, step)
    if _shared(first_u, last_u, su):
        _prefetch_row(DU, su, step)
        _prefetch_row(G2U, su, step)
    if _shared(first_i, last_i, si):
        _prefetch_row(DI, si, step)
        _prefetch_row(G2I, si, step)
    if _shared(first_i, last_i, sj):
        _prefetch_row(DI, sj, step)
        _prefetch_row(G2I, sj, step)


@inline
def _descent_pass(P, Q, GP, GQ, T, nb, slot_u, slot_i, first_u, first_i, last_u, last_i,
                  DU, DI, G2U, G2I, lr, reg, reg_adv, adagrad, adversarial, mode, eps, total,
                  step):
    """The clean loss, step 2 and step 3 of every triple, in triple order; returns
    ``total`` plus the clean losses.

    A row's gradients are summed in its slot and its update is applied right
    after the last triple of the batch that uses it. That is what a separate
    update pass after the batch would give: no later triple of the batch reads
    the row, and each row's update reads only its own summed gradient (and
    Adagrad accumulator). For the same reason every row of triple ``t`` still
    holds its value from before the batch when ``t`` comes, so the clean margin,
    loss and gradient of ``t`` are computed here.

    A lone triple (no row shared with another triple of the batch) takes the
    per-triple APR step, with its three gradient rows in the scratch rows
    ``DI[-3:]``. In the other triples, a row used by this triple only needs no
    slot: its perturbation is its own gradient, normalised (step 2), computed
    here into a spare slot, and its step-3 gradient is summed in a spare slot and
    applied at once. The arithmetic is the same as through a slot of its own.
    Rows shared by several triples use their slots: step 1 summed their gradients
    (:func:`_clean_pass`), and step 2 runs on each just before its first use.
    Random-noise APR keeps every row in its slot (the noise is drawn per slot);
    neither it nor BPR takes the per-triple step.
    """
    dt = P.dtype.type
    reg_ = dt(reg)
    lu, li, lj = DU.shape[0] - 1, DI.shape[0] - 2, DI.shape[0] - 1
    lone = DI[DI.shape[0] - 3:]
    spare = mode != MODE_APR_RANDOM
    nu_done = 0
    ni_done = 0
    for t in range(nb):
        if t + AHEAD < nb:
            _prefetch_descent(P, Q, GP, GQ, T, t + AHEAD, slot_u, slot_i, first_u, first_i,
                              last_u, last_i, DU, DI, G2U, G2I, adagrad, step)
        u, i, j = T[0, t], T[1, t], T[2, t]
        su, si, sj = slot_u[u], slot_i[i], slot_i[j]
        mu = _shared(first_u, last_u, su) or not spare
        mi = _shared(first_i, last_i, si) or not spare
        mj = _shared(first_i, last_i, sj) or not spare
        eu = su if mu else lu
        ei = si if mi else li
        ej = sj if mj else lj
        if mode == MODE_APR and not (mu or mi or mj):
            # no other triple of the batch touches these rows: a per-triple step.
            # Its three slots are the next new ones (j != i: a negative is never a
            # positive of u, see sampling.resolve_negative)
            nu_done += 1
            ni_done += 2
            m, e = _apr_update(P, Q, GP, GQ, lone, u, i, j, lr, reg, eps, reg_adv, adagrad)
            total += m + math.log1p(e)
            continue
        x = margin(P, Q, u, i, j, dt(0.0))
        s = dt(sigmoid(-x))
        total += softplus(-x)
        if mode == MODE_APR:
            if su == nu_done:
                if mu:
                    _normalize_row(DU, su, eps)
                nu_done += 1
            if si == ni_done:
                if mi:
                    _normalize_row(DI, si, eps)
                ni_done += 1
            if sj == ni_done:
                if mj:
                    _normalize_row(DI, sj, eps)
                ni_done += 1
            if not (mu and mi and mj):
                for f in range(P.shape[1]):
                    gp, gi, gj = bpr_loss_grad(P[u, f], Q[i, f], Q[j, f], s)
                    DU[lu, f] = gp
                    DI[li, f] = gi
                    DI[lj, f] = gj
                if not mu:
                    _normalize_row(DU, lu, eps)
                if not mi:
                    _normalize_row(DI, li, eps)
                if not mj:
                    _normalize_row(DI, lj, eps)
        a = dt(0.0)
        if adversarial:
            xa = dt(0.0)
            for f in range(P.shape[1]):
                pt, dd = perturbed(P[u, f], Q[i, f], Q[j, f], DU[eu, f], DI[ei, f], DI[ej, f])
                xa += pt * dd
            a = dt(reg_adv * sigmoid(-xa))
        for f in range(P.shape[1]):
            pu = P[u, f]
            qi = Q[i, f]
            qj = Q[j, f]
            pt, dd = perturbed(pu, qi, qj, DU[eu, f], DI[ei, f], DI[ej, f])
            gp, gi, gj = apr_grad(pu, qi, qj, pt, dd, s, a, reg_)
            G2U[eu, f] += gp
            G2I[ei, f] += gi
            G2I[ej, f] += gj
        if last_u[su] == t:
            _apply_row(P, GP, u, G2U, eu, lr, adagrad)
        if last_i[si] == t:
            _apply_row(Q, GQ, i, G2I, ei, lr, adagrad)
        if last_i[sj] == t:
            _apply_row(Q, GQ, j, G2I, ej, lr, adagrad)
    return total


@kernel(refcount=False)
def run_batches(P, Q, GP, GQ, filt, indptr, indices, pos_users, pos_items, lo, hi, states, rs,
                lr, reg, eps, reg_adv, mode, adagrad, B, slots, rows, ubuf, ibuf, T):
    """Train on the pairs ``lo:hi`` in mini-batches of ``B``, with the streams ``states[rs:]``.

    The batches are ``lo:lo+B``, ``lo+B:lo+2B``, ...; each is one step of the
    module docstring. Scratch, private to the caller's chunk: ``slots``
    (n_users + n_items, all -1 on entry and on return) maps a row to its buffer
    slot; ``rows`` (9B,): the touched user rows, then the item rows, then for
    each of these slots the first and then the last triple of the batch that
    uses it; ``ubuf`` (2, B + 1, d) and ``ibuf`` (2, 2B + 3, d) hold the per-slot
    clean gradient ``G`` (turned into the perturbation ``D`` in place) and the
    descent gradient ``G2`` of users and items: B user and 2B item slots, then
    one spare user row and three spare item rows (``G2`` all zeros on entry, and
    on return). The spare rows of ``D`` hold the perturbations of unshared rows
    (the last two item rows), and the last three item rows are the per-triple
    step's Adagrad gradient rows; nothing in them outlives a triple. ``T`` (3, B)
    the batch's triples. Compiled without reference counting
    (``_jit.NO_REFCOUNT``): it allocates nothing. Returns ``(summed clean loss,
    triples)``.
    """
    n_users = P.shape[0]
    slot_u, slot_i = slots[:n_users], slots[n_users:]
    rows_u, rows_i = rows[:B], rows[B:3 * B]
    first_u, first_i = rows[3 * B:4 * B], rows[4 * B:6 * B]
    last_u, last_i = rows[6 * B:7 * B], rows[7 * B:]
    GU, G2U = ubuf[0], ubuf[1]         # G becomes the perturbation D in step 2
    GI, G2I = ibuf[0], ibuf[1]
    step = max(1, 64 // P.itemsize)
    lr_ = P.dtype.type(lr)
    adversarial = mode == MODE_APR or mode == MODE_APR_RANDOM
    total = 0.0
    count = 0
    for start in range(lo, hi, B):
        nb, nu, ni = _gather(P, Q, filt, indptr, indices, pos_users, pos_items, start,
                             min(hi, start + B), states, rs, (slot_u, slot_i),
                             (rows_u, rows_i, first_u, first_i, last_u, last_i), T, step)
        if mode == MODE_APR:
            _clean_pass(P, Q, T, nb, slot_u, slot_i, first_u, first_i, last_u, last_i, GU, GI,
                        step)
        elif mode == MODE_APR_RANDOM:       # step 2: the noise of every slot
            _random_rows(GU, nu, eps, states, rs)
            _random_rows(GI, ni, eps, states, rs)
        total = _descent_pass(P, Q, GP, GQ, T, nb, slot_u, slot_i, first_u, first_i, last_u,
                              last_i, GU, GI, G2U, G2I, lr_, reg, reg_adv, adagrad,
                              adversarial, mode, eps, total, step)
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
    rows = np.empty((n_chunks, 9 * B), dtype=np.int64)
    ubuf = np.zeros((n_chunks, 2, B + 1, d), dtype=P.dtype)
    ibuf = np.zeros((n_chunks, 2, 2 * B + 3, d), dtype=P.dtype)
    T = np.empty((n_chunks, 3, B), dtype=np.int64)
    for t in prange(n_chunks):
        lo = (t * n) // n_chunks
        hi = ((t + 1) * n) // n_chunks
        if shuffle:           # each chunk reshuffles its own slice (stream DRAW)
            shuffle_range(pos_users, pos_items, lo, hi, states, t * STRIDE)
        loss, cnt = run_batches(P, Q, GP, GQ, filt, indptr, indices, pos_users, pos_items,
                                lo, hi, states, t * STRIDE, lr, reg, eps, reg_adv, mode,
                                adagrad, B, slots[t], rows[t], ubuf[t], ibuf[t], T[t])
        losses[t] = loss
        counts[t] = cnt
    return losses.sum(), counts.sum()


batch_serial, batch_parallel = twin(_batch_epoch, "batch_serial", "batch_parallel")
