r"""IRGAN (item recommendation): the discriminator step and the generator's policy gradient.

Plain-NumPy float64 twins of :mod:`aprnb.kernels.irgan`; ``docs/derivations.md``
(the IRGAN section) derives every formula. Rows are in the ranking layout of
width ``w = d + 1``: a user row ``[p_u, 1]``, an item row ``[q_i, b_i]``, so that
``s(u, i) = P[u] @ Q[i]`` includes the item bias. The user's last element is a
constant and never changes.
"""
import numpy as np

from ._math import _vec, sigmoid, softplus


# -- discriminator ---------------------------------------------------------------------------

def irgan_d_loss(pu, qi, qj):
    r"""D's log loss on a real item ``i`` (label 1) and a generated item ``j`` (label 0).

    .. math::

        L_D = -\ln\sigma(x_i) - \ln(1 - \sigma(x_j)) = \mathrm{softplus}(-x_i) +
        \mathrm{softplus}(x_j), \qquad x_i = p_u\cdot q_i + b_i,\ x_j = p_u\cdot q_j + b_j
    """
    pu, qi, qj = _vec(pu), _vec(qi), _vec(qj)
    return float(softplus(-(pu @ qi)) + softplus(pu @ qj))


def irgan_d_grads(pu, qi, qj):
    r"""Gradients of :func:`irgan_d_loss` w.r.t. the three rows (no regulariser).

    :math:`a = -\sigma(-x_i)`, :math:`c = \sigma(x_j)`; then
    :math:`\partial L/\partial p_u = a\,q_i + c\,q_j` (only its first ``d``
    elements are parameters), :math:`\partial L/\partial [q_i, b_i] = a\,[p_u, 1]`,
    :math:`\partial L/\partial [q_j, b_j] = c\,[p_u, 1]`.
    """
    pu, qi, qj = _vec(pu), _vec(qi), _vec(qj)
    a = -sigmoid(-(pu @ qi))
    c = sigmoid(pu @ qj)
    return a * qi + c * qj, a * pu, c * pu


def _update(A, G, r, g, n, lr):
    """SGD (``G`` None) or Adagrad on the first ``n`` elements of row ``r``."""
    if G is None:
        A[r, :n] -= lr * g[:n]
    else:
        G[r, :n] += g[:n] ** 2
        A[r, :n] -= lr * g[:n] / np.sqrt(G[r, :n])


def irgan_d_step_ref(PD, QD, u, i, j, lr, reg, GP=None, GQ=None):
    """One D step on ``(u, i, j)``: the twin of :func:`aprnb.kernels.irgan.d_step`.

    The three gradients (plus ``reg * row``) are taken before the step; then the
    user row (its first ``d`` elements), item ``i`` and item ``j`` are updated in
    that order. Works in place on float64 copies; returns
    ``(PD, QD, GP, GQ, loss)``.
    """
    PD, QD = np.array(PD, dtype=np.float64), np.array(QD, dtype=np.float64)
    if GP is not None:
        GP, GQ = np.array(GP, dtype=np.float64), np.array(GQ, dtype=np.float64)
    w = PD.shape[1]
    loss = irgan_d_loss(PD[u], QD[i], QD[j])
    gp, gi, gj = irgan_d_grads(PD[u], QD[i], QD[j])
    gp, gi, gj = gp + reg * PD[u], gi + reg * QD[i], gj + reg * QD[j]
    _update(PD, GP, u, gp, w - 1, lr)
    _update(QD, GQ, i, gi, w, lr)
    _update(QD, GQ, j, gj, w, lr)
    return PD, QD, GP, GQ, loss


# -- generator ---------------------------------------------------------------------------------

def softmax_ref(s, T):
    r""":math:`p_j = e^{s_j/T} / \sum_k e^{s_k/T}` (shifted by the maximum)."""
    z = np.asarray(s, dtype=np.float64) / T
    e = np.exp(z - z.max())
    return e / e.sum()


def proposal_ref(p, pos, lam):
    r"""The importance-sampling proposal.

    :math:`p_n = (1-\lambda)\,p + \lambda\,\mathbb 1[I_u]/|I_u|` (``pos``: the items ``I_u``).
    """
    pn = (1.0 - lam) * np.asarray(p, dtype=np.float64)
    pos = np.asarray(pos, dtype=np.int64)
    if len(pos):
        pn[pos] += lam / len(pos)
    return pn


def reward_ref(x, kind="sigmoid"):
    r"""D's reward of a score ``x``: ``2 (sigma(x) - 0.5)`` or ``log(1 + e^x)``."""
    x = np.asarray(x, dtype=np.float64)
    return 2.0 * (sigmoid(x) - 0.5) if kind == "sigmoid" else softplus(x)


def policy_weights_ref(p, pn, r, items):
    r""":math:`c_k = \frac{p(i_k)}{p_n(i_k)}\,r(i_k)` for the drawn items ``items``."""
    items = np.asarray(items, dtype=np.int64)
    return np.asarray(p)[items] / np.asarray(pn)[items] * np.asarray(r)[items]


def policy_loss_ref(PG, QG, u, items, c, T):
    r"""The surrogate loss :math:`L_u = -\frac1K \sum_k c_k \log p_\theta(i_k|u)` (``c`` fixed)."""
    s = np.asarray(QG, dtype=np.float64) @ np.asarray(PG, dtype=np.float64)[u]
    z = s / T
    logp = z - (z.max() + np.log(np.exp(z - z.max()).sum()))
    items = np.asarray(items, dtype=np.int64)
    return float(-(np.asarray(c) * logp[items]).sum() / len(items))


def policy_score_grad_ref(s, T, items, c):
    r"""Gradient of :func:`policy_loss_ref` w.r.t. the user's score row, one draw at a time.

    :math:`\partial(-c_k\log p_{i_k})/\partial s_j = -c_k(\delta_{i_k j} - p_j)/T`,
    averaged over the ``K`` draws.
    """
    p = softmax_ref(s, T)
    g = np.zeros_like(p)
    for i, ck in zip(np.asarray(items), np.asarray(c, dtype=np.float64)):
        e = np.zeros_like(p)
        e[i] = 1.0
        g -= ck * (e - p) / T
    return g / len(items)


def policy_grads_ref(PG, QG, u, items, c, T):
    r"""Gradients of :func:`policy_loss_ref` w.r.t. ``p_u`` (first ``d``) and every item row.

    Per draw :math:`i`: :math:`\nabla_{p_u}\log p(i) = (q_i - \sum_j p_j q_j)/T`,
    :math:`\nabla_{[q_j, b_j]}\log p(i) = (\delta_{ij} - p_j)\,[p_u, 1]/T`.

    Returns ``(dp (w,) with a zero last element, dQ (n_items, w))``.
    """
    PG, QG = np.asarray(PG, dtype=np.float64), np.asarray(QG, dtype=np.float64)
    p = softmax_ref(QG @ PG[u], T)
    w = PG.shape[1]
    dp, dQ = np.zeros(w), np.zeros_like(QG)
    mean_q = p @ QG
    for i, ck in zip(np.asarray(items), np.asarray(c, dtype=np.float64)):
        dp -= ck * (QG[i] - mean_q) / T
        delta = -p.copy()
        delta[i] += 1.0
        dQ -= ck * np.outer(delta, PG[u]) / T
    dp[w - 1] = 0.0
    return dp / len(items), dQ / len(items)


def expected_reward_ref(PG, QG, u, r, T):
    r""":math:`J_u = \sum_i p_\theta(i|u)\,r(u, i)`, exactly (``r``: one reward per item)."""
    return float(softmax_ref(np.asarray(QG) @ np.asarray(PG)[u], T) @ np.asarray(r))


def expected_reward_grads_ref(PG, QG, u, r, T):
    r"""Exact gradient of :func:`expected_reward_ref`: :math:`\partial J/\partial s_j =
    p_j (r_j - J)/T`, then the chain rule through :math:`s_j = [p_u,1]\cdot[q_j,b_j]`.

    Returns ``(dp (w,) with a zero last element, dQ (n_items, w))``.
    """
    PG, QG = np.asarray(PG, dtype=np.float64), np.asarray(QG, dtype=np.float64)
    p = softmax_ref(QG @ PG[u], T)
    r = np.asarray(r, dtype=np.float64)
    gs = p * (r - p @ r) / T
    dp = gs @ QG
    dp[-1] = 0.0
    return dp, np.outer(gs, PG[u])


def g_block_step_ref(PG, QG, users, Gs, lr, reg, GP=None, GQ=None):
    r"""G's step for a block of users from their score-gradient rows ``Gs`` (nb, n_items).

    The block objective is :math:`\sum_{r} L_{u_r} + \tfrac{\lambda_G}{2}
    (\sum_r \|p_{u_r}\|^2 + \|[Q, b]\|^2)`; its gradients are
    :math:`\nabla_{p_{u_r}} = \sum_j Gs_{rj}\,q_j + \lambda_G p_{u_r}` and
    :math:`\nabla_{[q_j, b_j]} = \sum_r Gs_{rj}\,[p_{u_r}, 1] + \lambda_G [q_j, b_j]`,
    all taken before the step. SGD, or Adagrad with ``GP``/``GQ``. Float64 copies;
    returns ``(PG, QG, GP, GQ)``.
    """
    PG, QG = np.array(PG, dtype=np.float64), np.array(QG, dtype=np.float64)
    if GP is not None:
        GP, GQ = np.array(GP, dtype=np.float64), np.array(GQ, dtype=np.float64)
    w = PG.shape[1]
    gP = np.zeros((len(users), w))
    gQ = reg * QG.copy()
    for r, u in enumerate(users):
        for j in range(QG.shape[0]):
            gP[r] += Gs[r][j] * QG[j]
            gQ[j] += Gs[r][j] * PG[u]
        gP[r] += reg * PG[u]
    for r, u in enumerate(users):
        _update(PG, GP, u, gP[r], w - 1, lr)
    for j in range(QG.shape[0]):
        _update(QG, GQ, j, gQ[j], w, lr)
    return PG, QG, GP, GQ
