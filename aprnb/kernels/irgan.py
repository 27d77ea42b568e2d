r"""IRGAN for item recommendation (Wang et al., SIGIR 2017): the Numba parts.

Both players are MF with item biases, stored in the *ranking layout* of width
``w = d + 1``: a user row is ``[p_u, 1]`` and an item row ``[q_i, b_i]``, so
that one dot product gives :math:`s(u, i) = p_u \cdot q_i + b_i`. The user
column ``d`` is the constant 1 and is never updated; the item column ``d`` is
the bias and is updated like any other element (its gradient is the score
gradient times that constant 1).

Discriminator D (:func:`d_step`, :func:`d_epoch_serial`)
--------------------------------------------------------
For a real pair ``(u, i)`` and a generated item ``j`` (drawn from G's softmax,
:func:`sample_rows`), with :math:`x_i = s_D(u, i)`, :math:`x_j = s_D(u, j)`:

.. math::

    L_D = -\ln\sigma(x_i) - \ln(1 - \sigma(x_j))
        = \mathrm{softplus}(-x_i) + \mathrm{softplus}(x_j)

    a = \partial L_D/\partial x_i = -\sigma(-x_i), \qquad
    c = \partial L_D/\partial x_j = \sigma(x_j)

    g_{p_u} = a\,q_i + c\,q_j + \lambda_D p_u, \quad
    g_{[q_i,b_i]} = a\,[p_u, 1] + \lambda_D [q_i, b_i], \quad
    g_{[q_j,b_j]} = c\,[p_u, 1] + \lambda_D [q_j, b_j]

(only the first ``d`` elements of the user row are updated). All three
gradients are taken at the parameters before the step; the rows are then
updated in the order ``p_u``, item ``i``, item ``j`` (so ``i == j`` applies both
item gradients, one after the other).

Generator G, REINFORCE (:func:`policy_row`, :func:`policy_rows_serial`)
-----------------------------------------------------------------------
G's policy for user ``u`` is the softmax with temperature ``T``,
:math:`p_\theta(i|u) = e^{z_i} / \sum_j e^{z_j}` with :math:`z_j = s_G(u, j)/T`.
G maximises :math:`J_u = \sum_i p_\theta(i|u)\,r(u, i)` with D's reward
:math:`r` held fixed. The log-derivative trick gives
:math:`\nabla_\theta J_u = E_{i\sim p_\theta}[r(u,i)\,\nabla_\theta\log p_\theta(i|u)]`,
and the gradient of the log-softmax w.r.t. the scores is

.. math::

    \frac{\partial \log p_\theta(i|u)}{\partial s_G(u, j)} = \frac{\delta_{ij} - p_\theta(j|u)}{T}.

The ``- p_j`` part (the "baseline" of the log-softmax) touches every item. By
the chain rule through :math:`s_G(u, j) = p_u\cdot q_j + b_j`:

.. math::

    \nabla_{p_u}\log p(i|u) = \tfrac{1}{T}\big(q_i - \textstyle\sum_j p_j q_j\big), \quad
    \nabla_{q_j}\log p(i|u) = \tfrac{1}{T}(\delta_{ij} - p_j)\,p_u, \quad
    \nabla_{b_j}\log p(i|u) = \tfrac{1}{T}(\delta_{ij} - p_j).

Importance sampling (the official item-recommendation code): the ``K``
samples :math:`i_1..i_K` are drawn from the mixture
:math:`p_n(i) = (1-\lambda_s)\,p_\theta(i|u) + \lambda_s\,\mathbb{1}[i \in I_u]/|I_u|`
(``I_u`` the user's training items), each weighted by :math:`w_k = p_\theta(i_k)/p_n(i_k)`,
so that the estimate stays unbiased:
:math:`E_{i\sim p_n}[w\,r\,\nabla\log p_\theta] = \sum_i p_\theta(i)\,r(i)\,\nabla\log p_\theta(i)`.
With :math:`c_k = w_k\,r(u, i_k)` and :math:`C = \sum_k c_k`,
G descends on the surrogate loss :math:`L_u = -\frac1K\sum_k c_k\log p_\theta(i_k|u)`
(the :math:`c_k` held constant), whose gradient w.r.t. the user's score row is

.. math::

    g_j = \frac{\partial L_u}{\partial s_G(u, j)}
        = \frac{1}{K\,T}\Big(C\,p_\theta(j|u) - \sum_{k:\,i_k = j} c_k\Big),

an unbiased estimate of :math:`-\partial J_u/\partial s_G(u, j)`.
:func:`policy_row` computes this row; the model turns a block of rows ``Gs``
into parameter gradients with three matrix products:
:math:`\nabla_{p_u} = Gs\,Q_{:, :d}`, :math:`\nabla_{[Q, b]} = Gs^\top [P, 1]`.

Rewards: ``REWARD_SIGMOID`` is the official code's :math:`r = 2(\sigma(x) - 0.5)`,
``REWARD_SOFTPLUS`` the paper's :math:`r = \log(1 + e^{x})`, with
:math:`x = s_D(u, i)`.

Sampling is by inverse CDF over the float64 cumulative sums of a row (binary
search per draw). The RNG streams are those of :mod:`aprnb.kernels._rng`: the
rows of a block are cut into ``n_chunks`` contiguous parts, part ``t`` drawing
from ``states[t * STRIDE]``; the draws depend on ``n_chunks``, not on the
threads. G's rows only read shared tables, so the parallel twin is exactly
the serial one; D's epoch is Hogwild over its chunks of triples.
"""
import math

import numpy as np
from numba import prange

from ._intrinsics import sqrt
from ._jit import inline, kernel, twin
from ._math import in_sorted, sigmoid, softplus
from ._rng import STRIDE, uniform

REWARD_SIGMOID = 0
REWARD_SOFTPLUS = 1


# -- discriminator -----------------------------------------------------------------------------

@inline
def _row_dot(A, a, B, b):
    x = 0.0
    for f in range(A.shape[1]):
        x += A[a, f] * B[b, f]
    return x


@inline
def _adagrad_row(A, GA, r, g, n, lr):
    """``GA[r] += g^2; A[r] -= lr * g / sqrt(GA[r])`` for the first ``n`` elements."""
    for f in range(n):
        GA[r, f] += g[f] * g[f]
        A[r, f] -= lr * g[f] / sqrt(GA[r, f])


@inline
def _sgd_row(A, r, g, n, lr):
    for f in range(n):
        A[r, f] -= lr * g[f]


@inline
def _d_update(PD, QD, GP, GQ, buf, u, i, j, lr, reg, adagrad):
    """One discriminator step on ``(u, i, j)``; returns its loss before the step."""
    dt = PD.dtype.type
    w = PD.shape[1]
    xi = _row_dot(PD, u, QD, i)
    xj = _row_dot(PD, u, QD, j)
    loss = softplus(-xi) + softplus(xj)
    a = dt(-sigmoid(-xi))
    c = dt(sigmoid(xj))
    reg_ = dt(reg)
    lr_ = dt(lr)
    for f in range(w):
        pu = PD[u, f]
        qi = QD[i, f]
        qj = QD[j, f]
        buf[0, f] = a * qi + c * qj + reg_ * pu
        buf[1, f] = a * pu + reg_ * qi
        buf[2, f] = c * pu + reg_ * qj
    if adagrad:
        _adagrad_row(PD, GP, u, buf[0], w - 1, lr_)
        _adagrad_row(QD, GQ, i, buf[1], w, lr_)
        _adagrad_row(QD, GQ, j, buf[2], w, lr_)
    else:
        _sgd_row(PD, u, buf[0], w - 1, lr_)
        _sgd_row(QD, i, buf[1], w, lr_)
        _sgd_row(QD, j, buf[2], w, lr_)
    return loss


@kernel
def d_step(PD, QD, GP, GQ, u, i, j, lr, reg, adagrad):
    """One discriminator step on the real pair ``(u, i)`` and generated item ``j``, in place.

    Parameters
    ----------
    PD, QD : ndarray (n_users, d + 1), (n_items, d + 1)
        D's tables in the ranking layout (``PD[:, d] == 1``, ``QD[:, d]`` = biases).
    GP, GQ : ndarray
        Adagrad accumulators of the shapes of ``PD``/``QD`` (ignored for SGD:
        pass any arrays of the dtype).
    lr, reg : float
        ``theta <- theta - lr * (dL/dtheta + reg * theta)`` (or the Adagrad form).

    Returns
    -------
    float
        ``softplus(-x_i) + softplus(x_j)`` before the step.
    """
    buf = np.empty((3, PD.shape[1]), dtype=PD.dtype)
    return _d_update(PD, QD, GP, GQ, buf, u, i, j, lr, reg, adagrad)


def _d_epoch(PD, QD, GP, GQ, users, items, negs, order, lr, reg, adagrad, n_chunks):
    """One discriminator epoch: the triples ``(users[k], items[k], negs[k])``, ``k`` in
    ``order``, cut into ``n_chunks`` contiguous parts (Hogwild in the parallel twin).
    Returns the summed loss."""
    n = order.shape[0]
    losses = np.zeros(n_chunks)
    bufs = np.empty((n_chunks, 4, PD.shape[1]), dtype=PD.dtype)   # row 3: padding
    for t in prange(n_chunks):
        lo = (t * n) // n_chunks
        hi = ((t + 1) * n) // n_chunks
        acc = 0.0
        for m in range(lo, hi):
            k = order[m]
            acc += _d_update(PD, QD, GP, GQ, bufs[t], users[k], items[k], negs[k], lr, reg,
                             adagrad)
        losses[t] = acc
    return losses.sum()


d_epoch_serial, d_epoch_parallel = twin(_d_epoch, "d_epoch_serial", "d_epoch_parallel")


# -- generator: the softmax, sampling, the policy gradient --------------------------------------

@inline
def _softmax(s, T, p):
    """``p = softmax(s / T)`` in float64; returns ``log Z'`` with ``log p_j = s_j/T - log Z'``."""
    n = s.shape[0]
    m = -np.inf
    for j in range(n):
        z = s[j] / T
        p[j] = z
        m = max(m, z)
    tot = 0.0
    for j in range(n):
        e = math.exp(p[j] - m)
        p[j] = e
        tot += e
    inv = 1.0 / tot
    for j in range(n):
        p[j] *= inv
    return m + math.log(tot)


@inline
def _draw(cdf, state, t):
    """Index of the first ``cdf[j] > U * cdf[-1]`` (``U`` uniform in [0, 1)): inverse CDF."""
    n = cdf.shape[0]
    target = uniform(state, t) * cdf[n - 1]
    lo = 0
    hi = n - 1
    while lo < hi:
        mid = (lo + hi) >> 1
        if cdf[mid] > target:
            hi = mid
        else:
            lo = mid + 1
    return lo


@inline
def _reward(PD, QD, u, i, kind):
    x = _row_dot(PD, u, QD, i)
    if kind == REWARD_SIGMOID:
        return 2.0 * (sigmoid(x) - 0.5)
    return softplus(x)


@kernel
def policy_row(s, T, pos, n_per_pos, lam, PD, QD, u, kind, states, rs, p, cdf, out, drawn,
               weights):
    """The REINFORCE gradient row of one user (module docstring), with importance sampling.

    Parameters
    ----------
    s : ndarray (n_items,)
        G's scores ``s_G(u, .)`` (any float dtype).
    T : float
        Temperature.
    pos : int array
        The user's training items ``I_u`` (may be empty: then nothing is drawn).
    n_per_pos : int
        Samples per training item: ``K = n_per_pos * len(pos)`` (official: 2).
    lam : float
        Weight of the uniform-over-``I_u`` part of the proposal ``p_n`` (official: 0.2).
    PD, QD, u, kind
        D's tables, the user and the reward kind (``REWARD_SIGMOID``/``REWARD_SOFTPLUS``).
    states, rs
        RNG state array and the stream to draw from.
    p, cdf : float64 scratch (n_items,)
    out : ndarray (n_items,)
        Receives :math:`g_j = (C p_j - \\sum_{k: i_k = j} c_k) / (K T)`.
    drawn, weights : scratch of at least ``K`` (int64 / float64)
        Receive the drawn items ``i_k`` and ``c_k = w_k r(u, i_k)``.

    Returns
    -------
    K : int
    loss : float
        :math:`L_u = -\\frac1K\\sum_k c_k \\log p_\\theta(i_k|u)` (0 when ``K = 0``).
    mean_c : float
        ``C / K``, an unbiased estimate of :math:`J_u = E_{p_\\theta}[r]`.
    """
    n = s.shape[0]
    npos = pos.shape[0]
    K = n_per_pos * npos
    for j in range(n):
        out[j] = 0.0
    if K == 0:
        return 0, 0.0, 0.0
    logz = _softmax(s, T, p)
    # proposal p_n = (1 - lam) p + lam * 1[I_u] / |I_u|, as cumulative sums
    for j in range(n):
        cdf[j] = (1.0 - lam) * p[j]
    for k in range(npos):
        cdf[pos[k]] += lam / npos
    for j in range(1, n):
        cdf[j] += cdf[j - 1]
    C = 0.0
    loss = 0.0
    for k in range(K):
        i = _draw(cdf, states, rs)
        pn = (1.0 - lam) * p[i]
        if in_sorted(pos, 0, pos.shape[0], i):
            pn += lam / npos
        c = p[i] / pn * _reward(PD, QD, u, i, kind)
        drawn[k] = i
        weights[k] = c
        C += c
        loss -= c * (s[i] / T - logz)
    scale = 1.0 / (K * T)
    for j in range(n):
        out[j] = C * p[j] * scale                 # baseline: every item
    for k in range(K):
        out[drawn[k]] -= weights[k] * scale       # the drawn items
    return K, loss / K, C / K


def _policy_rows(S, T, users, indptr, indices, n_per_pos, lam, PD, QD, kind, states, n_chunks,
                 Gs):
    """:func:`policy_row` for every row of the block ``S`` (user ``users[r]``); the rows are
    cut into ``n_chunks`` parts, part ``t`` drawing from stream ``states[t * STRIDE]``.
    Returns ``(summed loss, summed C/K, users with K > 0)``."""
    nb = S.shape[0]
    n = S.shape[1]
    maxdeg = 0
    for r in range(nb):
        u = users[r]
        maxdeg = max(maxdeg, indptr[u + 1] - indptr[u])
    losses = np.zeros(n_chunks)
    rewards = np.zeros(n_chunks)
    counts = np.zeros(n_chunks, dtype=np.int64)
    for t in prange(n_chunks):
        p = np.empty(n)
        cdf = np.empty(n)
        drawn = np.empty(max(1, n_per_pos * maxdeg), dtype=np.int64)
        weights = np.empty(max(1, n_per_pos * maxdeg))
        lo = (t * nb) // n_chunks
        hi = ((t + 1) * nb) // n_chunks
        for r in range(lo, hi):
            u = users[r]
            K, loss, mc = policy_row(S[r], T, indices[indptr[u]:indptr[u + 1]], n_per_pos,
                                     lam, PD, QD, u, kind, states, t * STRIDE, p, cdf, Gs[r],
                                     drawn, weights)
            if K > 0:
                losses[t] += loss
                rewards[t] += mc
                counts[t] += 1
    return losses.sum(), rewards.sum(), counts.sum()


policy_rows_serial, policy_rows_parallel = twin(_policy_rows, "policy_rows_serial",
                                                "policy_rows_parallel")


def _sample_rows(S, T, users, counts, offsets, states, n_chunks, out):
    """Draw ``counts[r]`` items from ``softmax(S[r] / T)`` into ``out[offsets[r]:]``
    for every row ``r`` of the block (the generated items D trains on)."""
    nb = S.shape[0]
    n = S.shape[1]
    for t in prange(n_chunks):
        cdf = np.empty(n)
        lo = (t * nb) // n_chunks
        hi = ((t + 1) * nb) // n_chunks
        for r in range(lo, hi):
            if counts[r] == 0:
                continue
            _softmax(S[r], T, cdf)
            for j in range(1, n):
                cdf[j] += cdf[j - 1]
            for k in range(counts[r]):
                out[offsets[r] + k] = _draw(cdf, states, t * STRIDE)


sample_rows_serial, sample_rows_parallel = twin(_sample_rows, "sample_rows_serial",
                                                "sample_rows_parallel")


# -- generator: from score-gradient rows to a step ----------------------------------------------

def g_block_grads(PG, QG, users, Gs, reg):
    r"""Parameter gradients of a block of users from their score-gradient rows ``Gs``.

    With :math:`Gs_{rj} = \partial L_{u_r}/\partial s_G(u_r, j)` (:func:`policy_row`) and
    :math:`s_G(u, j) = [p_u, 1]\cdot[q_j, b_j]`, the chain rule gives two matrix
    products (BLAS), plus the weight decay :math:`\lambda_G` of the block objective
    :math:`\sum_r L_{u_r} + \frac{\lambda_G}{2}(\sum_r\|p_{u_r}\|^2 + \|[Q, b]\|^2)`:

    .. math::

        \nabla_{p_{u_r}} = (Gs\,Q)_r + \lambda_G p_{u_r}, \qquad
        \nabla_{[Q, b]} = Gs^\top [P_{users}, 1] + \lambda_G [Q, b].

    Returns ``(gP (nb, w), gQ (n_items, w))`` in the tables' dtype; ``gP[:, -1]``
    (the constant column) is zero.
    """
    dt = PG.dtype.type
    Pb = PG[users]
    gP = Gs @ QG
    gQ = Gs.T @ Pb
    if reg:
        gP += dt(reg) * Pb
        gQ += dt(reg) * QG
    gP[:, -1] = 0
    return gP, gQ


def _apply_rows(A, GA, rows, g, ncols, lr, adagrad):
    """``A[rows[r], :ncols] -= lr * g[r, :ncols]`` (SGD) or the Adagrad form with ``GA``.

    ``rows`` must be distinct (a block's users, or every item): the parallel twin
    splits them over threads without races.
    """
    lr_ = A.dtype.type(lr)
    for r in prange(rows.shape[0]):
        if adagrad:
            _adagrad_row(A, GA, rows[r], g[r], ncols, lr_)
        else:
            _sgd_row(A, rows[r], g[r], ncols, lr_)


apply_rows, apply_rows_parallel = twin(_apply_rows, "apply_rows", "apply_rows_parallel")
