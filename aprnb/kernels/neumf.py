r"""NeuMF (He et al., WWW 2017): forward, backward and the mini-batch epoch; its scorer.

Notation (the NeuMF section of ``docs/derivations.md``; the NumPy twin is
:mod:`aprnb.reference.neumf`). A user row ``P[u] = [p^G | p^M]`` and an item
row ``Q[i] = [q^G | q^M]`` have width ``W = F + H`` (``F = factors``,
``H = layers[0] // 2``); the dense parameters live in one flat vector
``theta`` (``W_l`` row-major and ``b_l`` for ``l = 1..n``, then ``h`` and
``b_0``; the offsets ``offs`` come from :func:`aprnb.reference.neumf.layout`).
Forward pass of one sample with label ``t``:

.. math::

    \phi^G = p^G\odot q^G,\quad a_0 = [p^M; q^M],\quad
    a_l = \mathrm{relu}(W_l a_{l-1} + b_l),\quad
    y = h^G\cdot\phi^G + h^M\cdot a_n + b_0,\quad
    \ell = \mathrm{softplus}((1 - 2t)\,y).

Backward pass with :math:`\delta = \sigma(y) - t`:
:math:`\partial h = \delta[\phi^G; a_n]`, :math:`\partial b_0 = \delta`,
:math:`\partial p^G = \delta h^G\odot q^G`, :math:`\partial q^G = \delta h^G\odot p^G`,
:math:`e_n = \delta h^M\odot[a_n > 0]`, and for ``l = n..1``:
:math:`\partial W_l = e_l a_{l-1}^T`, :math:`\partial b_l = e_l`,
:math:`e_{l-1} = (W_l^T e_l)\odot[a_{l-1} > 0]` (no mask at ``l = 1``), and
:math:`[\partial p^M; \partial q^M] = W_1^T e_1`: the first layer splits as
:math:`W_1 a_0 = W_{1u} p^M + W_{1i} q^M`.

Mini-batches and threads (race-free)
------------------------------------
Every gradient of a batch is taken at the parameters at its start. The
batch's samples are cut into ``n_chunks`` contiguous parts, run on Numba
threads (``prange``); part ``t`` writes each sample's two row gradients into
its own rows of ``EG`` and adds its dense gradient into its own row
``DG[t]``. Nothing is shared and written, so there are no races. Then,
serially: the dense rows ``DG[0..T-1]`` are summed in order (plus the L2 term)
and ``theta`` takes one optimizer step; the row gradients are summed per
distinct row (a slot table) and each touched row takes one step. With one
chunk and a seed everything is bitwise reproducible; with ``T`` chunks the
result equals the serial one up to the rounding of the dense sum.

Loop structure
--------------
Every loop of a sample runs on contiguous 1-D views (the part's scratch row
``s = S[t]``, its dense-gradient row ``dg = DG[t]``, the sample's row-gradient
row ``eg = EG[r]``, rows of ``theta``), indexed from zero, which LLVM
vectorises. The forward pass takes each unit as a dot product of a row of
``W_l`` with :math:`a_{l-1}` (a reduction: vectorised under the re-association
of the project's flag set, :mod:`aprnb.kernels._jit`; measured faster here than
the multiply-add form over transposed weights, with or without skipping zero
inputs). The backward pass runs over the rows ``o`` of ``W_l`` with two
contiguous multiply-adds, :math:`\partial W_l[o, :] \mathrel{+}= e_o a_{l-1}` and
:math:`g \mathrel{+}= e_o W_l[o, :]` (:math:`g = W_l^T e_l`), skipping the rows of
switched-off units (:math:`e_o = 0`, which would add exact zeros). The scorer
kernels run the tower on blocks of pairs instead (:data:`PAIR_BLOCK`).
"""
import math

import numpy as np
from numba import prange

from ._intrinsics import prefetch, sqrt
from ._jit import inline, kernel, twin
from ._math import guarded_inv_norm, sigmoid, softplus


@inline
def _forward(s, theta, dims, offs, aoff, F, H):
    r"""Logit of the rows in ``s[0:W]`` (user) and ``s[W:2W]`` (item); activations into
    ``s[aoff[l] : aoff[l] + dims[l]]``.

    ``s`` is one part's 1-D scratch row (``aoff[0] = 2W``; :math:`a_0 = [p^M; q^M]`).
    Unit ``o`` of layer ``l`` is :math:`\max(b_l[o] + W_l[o, :]\cdot a_{l-1}, 0)`,
    one contiguous dot product of a row of ``W_l`` (row-major in ``theta``) with
    :math:`a_{l-1}` on 1-D views; then
    :math:`y = b_0 + h^G\cdot(p^G\odot q^G) + h^M\cdot a_n`.
    """
    dt = theta.dtype.type
    n = dims.shape[0] - 1
    W = F + H
    a0 = s[aoff[0]:aoff[0] + 2 * H]
    pm = s[F:W]
    qm = s[W + F:2 * W]
    for k in range(H):
        a0[k] = pm[k]
        a0[H + k] = qm[k]
    for ly in range(1, n + 1):
        w = offs[2 * (ly - 1)]
        b = offs[2 * (ly - 1) + 1]
        nin = dims[ly - 1]
        x = s[aoff[ly - 1]:aoff[ly - 1] + nin]
        z = s[aoff[ly]:aoff[ly] + dims[ly]]
        for o in range(dims[ly]):
            row = theta[w + o * nin:w + (o + 1) * nin]
            acc = dt(0.0)
            for k in range(nin):
                acc += row[k] * x[k]
            z[o] = max(theta[b + o] + acc, dt(0.0))
    ho = offs[2 * n]
    Ln = dims[n]
    hG = theta[ho:ho + F]
    hM = theta[ho + F:ho + F + Ln]
    p = s[0:F]
    q = s[W:W + F]
    an = s[aoff[n]:aoff[n] + Ln]
    yg = dt(0.0)
    for f in range(F):
        yg += hG[f] * (p[f] * q[f])
    ym = dt(0.0)
    for k in range(Ln):
        ym += hM[k] * an[k]
    return theta[offs[2 * n + 1]] + yg + ym


@inline
def _backward(s, theta, dims, offs, aoff, F, H, e1, e2, delta, eg, dg):
    r"""Add the gradients of a sample whose :math:`\partial\ell/\partial y` is ``delta``.

    Row gradients go to ``eg[0:W]`` (user) and ``eg[W:2W]`` (item), the dense
    gradient to ``dg`` (1-D views; ``delta`` already carries any weight, e.g.
    ``reg_adv``); :func:`_forward` must have filled ``s``. ``e1``, ``e2``:
    offsets in ``s`` of two scratch vectors (the back-propagated errors).
    Layer ``l`` runs over the rows ``o`` of ``W_l``: ``dW_l[o, :] += e_o a_{l-1}``
    and ``g[:] += e_o W_l[o, :]`` (so :math:`g = W_l^T e_l`), both contiguous
    multiply-adds; a row whose ``e_o`` is zero (a unit ReLU switched off) adds
    nothing and is skipped.
    """
    dt = theta.dtype.type
    n = dims.shape[0] - 1
    W = F + H
    ho = offs[2 * n]
    Ln = dims[n]
    dg[offs[2 * n + 1]] += delta
    hG = theta[ho:ho + F]
    dhG = dg[ho:ho + F]
    p = s[0:F]
    q = s[W:W + F]
    gu = eg[0:F]
    gi = eg[W:W + F]
    for f in range(F):
        hf = delta * hG[f]
        dhG[f] += delta * (p[f] * q[f])
        gu[f] += hf * q[f]
        gi[f] += hf * p[f]
    an = s[aoff[n]:aoff[n] + Ln]
    hM = theta[ho + F:ho + F + Ln]
    dhM = dg[ho + F:ho + F + Ln]
    en = s[e1:e1 + Ln]
    for k in range(Ln):
        dhM[k] += delta * an[k]
        en[k] = delta * hM[k] if an[k] > 0 else dt(0.0)
    for ly in range(n, 0, -1):
        w = offs[2 * (ly - 1)]
        b = offs[2 * (ly - 1) + 1]
        nin = dims[ly - 1]
        x = s[aoff[ly - 1]:aoff[ly - 1] + nin]
        e = s[e1:e1 + dims[ly]]
        g = s[e2:e2 + nin]
        for k in range(nin):
            g[k] = dt(0.0)
        for o in range(dims[ly]):
            eo = e[o]
            if eo != 0:
                dg[b + o] += eo
                drow = dg[w + o * nin:w + (o + 1) * nin]
                row = theta[w + o * nin:w + (o + 1) * nin]
                for k in range(nin):
                    drow[k] += eo * x[k]
                    g[k] += row[k] * eo
        if ly > 1:
            e = s[e1:e1 + nin]
            for k in range(nin):
                e[k] = g[k] if x[k] > 0 else dt(0.0)
    g = s[e2:e2 + 2 * H]
    gu = eg[F:W]
    gi = eg[W + F:2 * W]
    for k in range(H):
        gu[k] += g[k]
        gi[k] += g[H + k]


@inline
def _perturb(x, g, eps):
    r"""Add ``eps * g / sqrt(max(|g|^2, 1e-12))`` to ``x`` (1-D views of equal length: one
    embedding row's part and its gradient; the official guard)."""
    dt = x.dtype.type
    sq = dt(0.0)
    for k in range(g.shape[0]):
        sq += g[k] * g[k]
    scale = dt(eps * guarded_inv_norm(sq))
    for k in range(g.shape[0]):
        x[k] += scale * g[k]


#: Samples ahead whose embedding rows :func:`run_part` prefetches.
AHEAD = 4


@inline
def _prefetch_row(A, r):
    """Ask for every cache line (16 floats) of the row ``A[r]`` (no effect on results)."""
    for f in range(0, A.shape[1], 16):
        prefetch(A, r, f)


@kernel(refcount=False)
def run_part(P, Q, theta, users, items, labels, lo, hi, b0, dims, offs, aoff, F, H, S, t,
             EG, DG, reg, eps, reg_adv, adversarial):
    r"""Forward and backward passes of the samples ``lo:hi`` (of a batch starting at ``b0``).

    Part ``t`` of a batch: scratch row ``S[t]``, dense gradient row ``DG[t]``,
    row gradients ``EG[k - b0]``. With ``adversarial`` each sample also gets
    the fast-gradient perturbation of its four embedding parts (the clean row
    gradient, normalised per part, times ``eps``) and adds ``reg_adv`` times the
    gradient of the loss at the perturbed rows, the perturbation held constant.
    Finally the L2 term ``reg * row`` is added to both row gradients.
    Returns the summed clean loss. Allocates nothing (no reference counting);
    the loops run on 1-D views (``s = S[t]``, ``dg = DG[t]``, ``eg = EG[r]``).
    """
    dt = theta.dtype.type
    W = F + H
    e1 = aoff[aoff.shape[0] - 1]
    e2 = e1 + dims.max()
    s = S[t]
    dg = DG[t]
    su = s[0:W]
    si = s[W:2 * W]
    acc = 0.0
    for k in range(lo, hi):
        if k + AHEAD < hi:
            _prefetch_row(P, users[k + AHEAD])
            _prefetch_row(Q, items[k + AHEAD])
        pu = P[users[k]]
        qi = Q[items[k]]
        eg = EG[k - b0]
        gu = eg[0:W]
        gi = eg[W:2 * W]
        for f in range(W):
            su[f] = pu[f]
            si[f] = qi[f]
            gu[f] = dt(0.0)
            gi[f] = dt(0.0)
        y = _forward(s, theta, dims, offs, aoff, F, H)
        lab = labels[k]
        acc += softplus((1.0 - 2.0 * lab) * y)
        delta = dt(sigmoid(y) - lab)
        _backward(s, theta, dims, offs, aoff, F, H, e1, e2, delta, eg, dg)
        if adversarial:
            _perturb(s[0:F], eg[0:F], eps)
            _perturb(s[F:W], eg[F:W], eps)
            _perturb(s[W:W + F], eg[W:W + F], eps)
            _perturb(s[W + F:2 * W], eg[W + F:2 * W], eps)
            ya = _forward(s, theta, dims, offs, aoff, F, H)
            da = dt(reg_adv * (sigmoid(ya) - lab))
            _backward(s, theta, dims, offs, aoff, F, H, e1, e2, da, eg, dg)
        for f in range(W):
            gu[f] += reg * pu[f]
            gi[f] += reg * qi[f]
    return acc


@inline
def _step(A, G, r, f, g, lr, adagrad):
    """One SGD or Adagrad update of ``A[r, f]`` with gradient ``g``."""
    if adagrad:
        G[r, f] += g * g
        A[r, f] -= lr * g / sqrt(G[r, f])
    else:
        A[r, f] -= lr * g


@kernel
def apply_rows(A, G, rows, EG, col, lo, hi, slot, R, lst, lr, adagrad):
    r"""Sum the row gradients ``EG[k - lo, col:col+W]`` per distinct row ``rows[k]``
    (``k = lo..hi-1``), then one optimizer step per touched row of ``A``.

    ``slot`` (one entry per row of ``A``, all -1 between calls), ``R`` and ``lst``
    are scratch: the first occurrence of a row takes the next slot, later ones
    add into it; the slots are cleared again at the end.
    """
    W = A.shape[1]
    m = 0
    for k in range(lo, hi):
        a = rows[k]
        s = slot[a]
        if s < 0:
            s = m
            slot[a] = s
            lst[s] = a
            m += 1
            _prefetch_row(A, a)                # for the steps below
            if adagrad:
                _prefetch_row(G, a)
            for f in range(W):
                R[s, f] = EG[k - lo, col + f]
        else:
            for f in range(W):
                R[s, f] += EG[k - lo, col + f]
    for s in range(m):
        a = lst[s]
        for f in range(W):
            _step(A, G, a, f, R[s, f], lr, adagrad)
        slot[a] = -1


@kernel
def apply_dense(theta, Gth, DG, n_parts, wmask, gmask, reg, lr, adagrad):
    r"""Sum the parts' dense gradients in order, add ``reg * wmask * theta``, one step.

    ``gmask`` multiplies the gradient: an entry with ``gmask == 0`` is frozen
    (neither it nor its accumulator changes; how a GMF-only or MLP-only
    pre-training holds the other branch's output weights at zero).
    """
    dt = theta.dtype.type
    for f in range(theta.shape[0]):
        g = dt(reg) * wmask[f] * theta[f]
        for t in range(n_parts):
            g += DG[t, f]
        g *= gmask[f]
        if adagrad:
            Gth[0, f] += g * g
            theta[f] -= lr * g / sqrt(Gth[0, f])
        else:
            theta[f] -= lr * g


def _epoch(P, Q, theta, GP, GQ, Gth, users, items, labels, batch_size, n_parts, dims, offs,
           aoff, F, H, wmask, gmask, lr, reg, adagrad, eps, reg_adv, adversarial):
    dt = P.dtype.type
    W = F + H
    n = users.shape[0]
    dmax = dims.max()
    S = np.zeros((n_parts, aoff[aoff.shape[0] - 1] + 2 * dmax + 16), dtype=P.dtype)
    EG = np.zeros((batch_size, 2 * W), dtype=P.dtype)
    DG = np.zeros((n_parts, theta.shape[0] + 16), dtype=P.dtype)   # + padding
    slot_u = -np.ones(P.shape[0], dtype=np.int64)
    slot_i = -np.ones(Q.shape[0], dtype=np.int64)
    R = np.empty((batch_size, W), dtype=P.dtype)
    lst = np.empty(batch_size, dtype=np.int64)
    losses = np.zeros(n_parts)
    total = 0.0
    lr_ = dt(lr)
    reg_ = dt(reg)
    eps_ = dt(eps)
    ra_ = dt(reg_adv)
    for b0 in range(0, n, batch_size):
        b1 = min(b0 + batch_size, n)
        B = b1 - b0
        DG[:] = 0
        for t in prange(n_parts):
            lo = b0 + (t * B) // n_parts
            hi = b0 + ((t + 1) * B) // n_parts
            losses[t] = run_part(P, Q, theta, users, items, labels, lo, hi, b0, dims, offs, aoff,
                                 F, H, S, t, EG, DG, reg_, eps_, ra_, adversarial)
        for t in range(n_parts):
            total += losses[t]
        apply_dense(theta, Gth, DG, n_parts, wmask, gmask, reg_, lr_, adagrad)
        apply_rows(P, GP, users, EG, 0, b0, b1, slot_u, R, lst, lr_, adagrad)
        apply_rows(Q, GQ, items, EG, W, b0, b1, slot_i, R, lst, lr_, adagrad)
    return total


epoch_serial, epoch_parallel = twin(_epoch, "neumf_epoch_serial", "neumf_epoch_parallel")


# -- scoring -------------------------------------------------------------------------------

#: Pairs per block of the scorer kernels (the second dimension of their scratch
#: ``buf``). A block's activations are stored unit-major (``X[k, j]``: unit
#: ``k`` of pair ``j``), so that every multiply-add runs across the block's pairs
#: in SIMD lanes. The kernels read the width from ``buf.shape[1]``: as a run-time
#: trip count, the lane loops go to LLVM's loop vectoriser (which checks once per
#: loop that the input and output rows do not overlap); a compile-time width got
#: them fully unrolled into scalar code instead, since the SLP vectoriser cannot
#: prove that two rows of one scratch array are disjoint. 32 measured about 3x
#: faster than 16 (``bench/neumf_kernel.py``), 64 no faster.
PAIR_BLOCK = 32


@inline
def _mlp_block(buf, WT, dims, offs_t, hM, b0):
    r"""The MLP part of the logits of one block of ``JB = buf.shape[1]`` pairs, from
    :math:`a_1` on.

    ``buf`` is the ``(3 * max(dims) + 1, JB)`` scratch of the scorer
    kernels (``JB = PAIR_BLOCK``); ``buf[0:dims[1]]`` holds :math:`a_1` unit-major (``buf[k, j]``:
    unit ``k`` of pair ``j``). Layer ``l >= 2`` starts every unit ``o`` at its
    bias and adds, for ``k = 0..`` in order, :math:`W_l[o, k]\,a_{l-1}[k]`, read
    from the transposed weights ``WT`` (``W_l^T`` row-major from
    ``offs_t[2(l-2)]``, then ``b_l``), each across all pairs of the block at
    once; then the ReLU. Returns the row ``buf[3 max(dims)]`` holding
    :math:`b_0 + h^M\cdot a_n` of each pair (the sums in the same order as a
    per-pair loop, so no re-association is needed).
    """
    dt = buf.dtype.type
    JB = buf.shape[1]
    n = dims.shape[0] - 1
    dmax = (buf.shape[0] - 1) // 3
    cur = buf[0:dmax]
    nxt = buf[dmax:2 * dmax]
    for ly in range(2, n + 1):
        w = offs_t[2 * (ly - 2)]
        b = offs_t[2 * (ly - 2) + 1]
        nin = dims[ly - 1]
        nout = dims[ly]
        for o in range(nout):
            bo = WT[b + o]
            for j in range(JB):
                nxt[o, j] = bo
        for k in range(nin):
            wk = WT[w + k * nout:w + (k + 1) * nout]
            for o in range(nout):
                wo = wk[o]
                for j in range(JB):
                    nxt[o, j] += wo * cur[k, j]
        for o in range(nout):
            for j in range(JB):
                nxt[o, j] = max(nxt[o, j], dt(0.0))
        cur, nxt = nxt, cur
    y = buf[3 * dmax]
    for j in range(JB):
        y[j] = b0
    for k in range(dims[n]):
        hk = hM[k]
        for j in range(JB):
            y[j] += hk * cur[k, j]
    return y


@kernel(refcount=False, nogil=True)
def mlp_tile(A, C, items, WT, dims, offs_t, hM, b0, buf, out):
    r"""Add the MLP part of the logits to ``out`` (users x items of the tile), in place.

    ``A[r]`` holds the user side :math:`W_{1u} p^M_u` of row ``r`` and ``C[i]``
    the item side :math:`W_{1i} q^M_i + b_1` (precomputed once per scorer), so
    :math:`a_1 = \mathrm{relu}(A_r + C_i)`; the later layers run in
    :func:`_mlp_block` on blocks of ``PAIR_BLOCK`` items of one user (the
    block's ``C`` rows transposed once into ``buf``, then reused for every user
    of the tile). ``out[r, c] += h^M . a_n + b_0``. ``buf``: scratch of shape
    ``(3 * max(dims) + 1, PAIR_BLOCK)``.
    """
    dt = out.dtype.type
    JB = buf.shape[1]
    L1 = dims[1]
    dmax = (buf.shape[0] - 1) // 3
    X = buf[0:L1]
    CT = buf[2 * dmax:2 * dmax + L1]
    ncols = out.shape[1]
    for c0 in range(0, ncols, JB):
        m = min(JB, ncols - c0)
        for j in range(JB):
            ci = C[items[c0 + min(j, m - 1)]]        # a short block repeats its last item
            for k in range(L1):
                CT[k, j] = ci[k]
        for r in range(out.shape[0]):
            ar = A[r]
            for k in range(L1):
                a = ar[k]
                for j in range(JB):
                    X[k, j] = max(a + CT[k, j], dt(0.0))
            y = _mlp_block(buf, WT, dims, offs_t, hM, b0)
            orow = out[r]
            for j in range(m):
                orow[c0 + j] += y[j]


@kernel(refcount=False, nogil=True)
def mlp_pairs(A, C, items, WT, dims, offs_t, hM, b0, buf, out):
    """As :func:`mlp_tile` for the pairs ``(r, items[r])``: ``out[r] += MLP logit``, in
    blocks of ``PAIR_BLOCK`` consecutive pairs."""
    dt = out.dtype.type
    JB = buf.shape[1]
    L1 = dims[1]
    X = buf[0:L1]
    npairs = out.shape[0]
    for r0 in range(0, npairs, JB):
        m = min(JB, npairs - r0)
        for j in range(JB):
            r = r0 + min(j, m - 1)
            ar = A[r]
            ci = C[items[r]]
            for k in range(L1):
                X[k, j] = max(ar[k] + ci[k], dt(0.0))
        y = _mlp_block(buf, WT, dims, offs_t, hM, b0)
        for j in range(m):
            out[r0 + j] += y[j]


@kernel
def sample_losses(P, Q, theta, users, items, labels, dims, offs, aoff, F, H):
    """Clean log loss of every sample (float64), one forward pass each (for tests and
    the robustness hook)."""
    W = F + H
    S = np.zeros((1, 2 * W + aoff[aoff.shape[0] - 1] + 2 * dims.max() + 16), dtype=P.dtype)
    out = np.empty(users.shape[0])
    for k in range(users.shape[0]):
        for f in range(W):
            S[0, f] = P[users[k], f]
            S[0, W + f] = Q[items[k], f]
        y = _forward(S[0], theta, dims, offs, aoff, F, H)
        out[k] = softplus((1.0 - 2.0 * labels[k]) * y)
    return out


@kernel
def all_finite_1d(a):
    """True when every element of the 1-D array ``a`` is finite."""
    for k in range(a.shape[0]):
        if not math.isfinite(a[k]):
            return False
    return True


@kernel
def dataset_row_gradients(P, Q, theta, users, items, labels, dims, offs, aoff, F, H, GP, GQ):
    r"""Add the gradient of the summed clean loss of all samples to ``GP``, ``GQ`` (rows).

    ``GP[u] += sum_k dl_k/dP[u]`` over the samples ``k`` of user ``u`` (and
    likewise ``GQ``), every term at the current parameters: the gradient the
    robustness adversary normalises. Serial. Returns the summed loss (float64).
    """
    dt = P.dtype.type
    W = F + H
    S = np.zeros((1, aoff[aoff.shape[0] - 1] + 2 * dims.max() + 16), dtype=P.dtype)
    EG = np.zeros((1, 2 * W), dtype=P.dtype)
    DG = np.zeros((1, theta.shape[0]), dtype=P.dtype)
    e1 = aoff[aoff.shape[0] - 1]
    e2 = e1 + dims.max()
    acc = 0.0
    for k in range(users.shape[0]):
        u = users[k]
        i = items[k]
        for f in range(W):
            S[0, f] = P[u, f]
            S[0, W + f] = Q[i, f]
            EG[0, f] = dt(0.0)
            EG[0, W + f] = dt(0.0)
        y = _forward(S[0], theta, dims, offs, aoff, F, H)
        lab = labels[k]
        acc += softplus((1.0 - 2.0 * lab) * y)
        _backward(S[0], theta, dims, offs, aoff, F, H, e1, e2, dt(sigmoid(y) - lab), EG[0],
                  DG[0])
        for f in range(W):
            GP[u, f] += EG[0, f]
            GQ[i, f] += EG[0, W + f]
    return acc
