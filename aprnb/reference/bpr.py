"""BPR on one triple: loss, gradients and one SGD/Adagrad step."""
from ._math import _vec, sigmoid, softplus
from ._step import _copies, _triple_step


# -- one triple --------------------------------------------------------------------------

def bpr_loss(p, qi, qj):
    r"""BPR loss of one triple.

    .. math::

        \ell = -\ln\sigma(x) = \mathrm{softplus}(-x), \qquad x = p \cdot (q_i - q_j)

    Parameters
    ----------
    p, qi, qj : array_like, shape (d,)
        User embedding, positive-item and negative-item embeddings.

    Returns
    -------
    float
    """
    x = _vec(p) @ (_vec(qi) - _vec(qj))
    return float(softplus(-x))


def bpr_grads(p, qi, qj):
    r"""Gradients of :func:`bpr_loss` (no regulariser).

    With :math:`s = \sigma(-x)`, since :math:`\ell'(x) = -\sigma(-x)` and
    :math:`\partial x/\partial p = q_i - q_j`, :math:`\partial x/\partial q_i = p`,
    :math:`\partial x/\partial q_j = -p`:

    .. math::

        \frac{\partial\ell}{\partial p} = -s\,(q_i - q_j), \qquad
        \frac{\partial\ell}{\partial q_i} = -s\,p, \qquad
        \frac{\partial\ell}{\partial q_j} = +s\,p.

    Parameters
    ----------
    p, qi, qj : array_like, shape (d,)

    Returns
    -------
    dp, dqi, dqj : ndarray, shape (d,)
    """
    p, qi, qj = _vec(p), _vec(qi), _vec(qj)
    s = sigmoid(-(p @ (qi - qj)))
    return -s * (qi - qj), -s * p, s * p


def bpr_step_ref(P, Q, u, i, j, lr, reg, GP=None, GQ=None):
    r"""One BPR step on the triple ``(u, i, j)``, SGD or (with ``GP``, ``GQ``) Adagrad.

    Reference for :func:`aprnb.kernels.bpr_step` and
    :func:`aprnb.kernels.bpr_step_adagrad`. The three gradients are taken at the
    parameters from before the step, then

    .. math::

        g = \frac{\partial\ell}{\partial\theta} + \lambda\theta, \qquad
        \text{SGD: } \theta \leftarrow \theta - \eta g, \qquad
        \text{Adagrad: } G \leftarrow G + g^2,\ \theta \leftarrow \theta - \eta\,\frac{g}{\sqrt G}.

    Parameters
    ----------
    P, Q : array_like, shape (n_users, d) and (n_items, d)
    u, i, j : int
        User, positive item, negative item; ``i != j``.
    lr, reg : float
        Learning rate :math:`\eta` and L2 coefficient :math:`\lambda`.
    GP, GQ : array_like or None
        Adagrad accumulators (positive) with the shapes of ``P`` and ``Q``;
        ``None`` for plain SGD.

    Returns
    -------
    P, Q : ndarray
        New float64 arrays (the inputs are not modified).
    GP, GQ : ndarray or None
        New accumulators, or ``None`` for SGD.
    loss : float
        :func:`bpr_loss` of the triple before the step.
    """
    P, Q, GP, GQ = _copies(P, Q, GP, GQ)
    loss = bpr_loss(P[u], Q[i], Q[j])
    dp, dqi, dqj = bpr_grads(P[u], Q[i], Q[j])
    _triple_step(P, Q, GP, GQ, u, i, j, lr, reg, dp, dqi, dqj)
    return P, Q, GP, GQ, loss
