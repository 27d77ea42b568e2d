"""APR on one triple: the fast-gradient perturbation, loss, gradients and one step."""
from ._math import _vec, l2_normalize
from .bpr import bpr_grads, bpr_loss
from ._step import _copies, _triple_step


def apr_perturbation(p, qi, qj, eps, official=True):
    r"""Fast-gradient perturbation of one triple, as the official ``AMF.py`` computes it.

    The fast gradient method takes :math:`\Delta = \epsilon\, g / \|g\|` per
    embedding row, with :math:`g` the BPR gradient of :func:`bpr_grads` and the
    guarded norm of TensorFlow's ``l2_normalize`` (:func:`l2_normalize`):

    .. math::

        \Delta_u = -\epsilon\,\frac{s\,(q_i - q_j)}{\sqrt{\max(s^2\|q_i - q_j\|^2, 10^{-12})}},
        \qquad
        \Delta_i = -\epsilon\,\frac{s\,p}{\sqrt{\max(s^2\|p\|^2, 10^{-12})}} = -\Delta_j,

    with :math:`s = \sigma(-x)`. Where :math:`s\,\|v\| \ge 10^{-6}` the
    factor ``s`` cancels and each row has length ``eps``; on a triple with a
    huge margin ``s`` underflows the guard and the rows shrink towards zero.

    Parameters
    ----------
    p, qi, qj : array_like, shape (d,)
    eps : float
        Radius of the perturbation (L2 norm of each row where the guard is idle).
    official : bool
        False normalises the directions ``q_i - q_j`` and ``p`` instead of the
        gradient (``s`` cancelled before the guard): full length ``eps`` on every
        non-zero row. The kernels of aprnb 0.1.0 did this; kept here only so that
        the tests can show where the two forms part.

    Returns
    -------
    Du, Di, Dj : ndarray, shape (d,)
    """
    p, qi, qj = _vec(p), _vec(qi), _vec(qj)
    if official:
        gu, gi, _ = bpr_grads(p, qi, qj)
    else:
        gu, gi = -(qi - qj), -p
    Du = eps * l2_normalize(gu)
    Di = eps * l2_normalize(gi)
    return Du, Di, -Di


def apr_loss(p, qi, qj, Du, Di, Dj, reg_adv):
    r"""APR loss of one triple for a given perturbation (no L2 regulariser).

    .. math::

        \ell(x) + \lambda_{adv}\,\ell(x_{adv}), \qquad
        x_{adv} = (p + \Delta_u) \cdot \big((q_i + \Delta_i) - (q_j + \Delta_j)\big)

    Parameters
    ----------
    p, qi, qj : array_like, shape (d,)
    Du, Di, Dj : array_like, shape (d,)
        Perturbation of ``p``, ``qi`` and ``qj``.
    reg_adv : float
        Weight :math:`\lambda_{adv}` of the adversarial term.

    Returns
    -------
    float
    """
    p, qi, qj = _vec(p), _vec(qi), _vec(qj)
    Du, Di, Dj = _vec(Du), _vec(Di), _vec(Dj)
    return bpr_loss(p, qi, qj) + reg_adv * bpr_loss(p + Du, qi + Di, qj + Dj)


def apr_grads(p, qi, qj, Du, Di, Dj, reg_adv):
    r"""Gradients of :func:`apr_loss` with the perturbation held constant, (A3).

    With :math:`\tilde p = p + \Delta_u`, :math:`\tilde q_i = q_i + \Delta_i`,
    :math:`\tilde q_j = q_j + \Delta_j`, :math:`s = \sigma(-x)` and
    :math:`a = \lambda_{adv}\,\sigma(-x_{adv})`:

    .. math::

        \frac{\partial}{\partial p} = -s\,(q_i - q_j) - a\,(\tilde q_i - \tilde q_j), \quad
        \frac{\partial}{\partial q_i} = -s\,p - a\,\tilde p, \quad
        \frac{\partial}{\partial q_j} = +s\,p + a\,\tilde p.

    The adversarial term is the BPR loss evaluated at the shifted point, and
    :math:`\partial(\theta + \Delta)/\partial\theta = I` when :math:`\Delta`
    is a constant, so its gradient is :func:`bpr_grads` at the shifted point.

    Parameters
    ----------
    p, qi, qj, Du, Di, Dj : array_like, shape (d,)
    reg_adv : float

    Returns
    -------
    dp, dqi, dqj : ndarray, shape (d,)
    """
    p, qi, qj = _vec(p), _vec(qi), _vec(qj)
    Du, Di, Dj = _vec(Du), _vec(Di), _vec(Dj)
    cp, ci, cj = bpr_grads(p, qi, qj)
    ap, ai, aj = bpr_grads(p + Du, qi + Di, qj + Dj)
    return cp + reg_adv * ap, ci + reg_adv * ai, cj + reg_adv * aj


def apr_step_ref(P, Q, u, i, j, lr, reg, eps, reg_adv, GP=None, GQ=None, delta=None):
    r"""One APR step on the triple ``(u, i, j)``, SGD or Adagrad.

    Reference for :func:`aprnb.kernels.apr_step`,
    :func:`aprnb.kernels.apr_step_adagrad` and (with ``delta``)
    :func:`aprnb.kernels.apr_step_given`:

    1. the perturbation is :func:`apr_perturbation` at the current parameters,
       or ``delta`` when given (``eps`` is then unused);
    2. the parameters take one step on
       :math:`\ell(x) + \lambda_{adv}\ell(x_{adv}) + \tfrac{\lambda}{2}(\|p_u\|^2
       + \|q_i\|^2 + \|q_j\|^2)` with the perturbation held constant, using the
       gradients of :func:`apr_grads` plus :math:`\lambda\theta`.

    Parameters
    ----------
    P, Q : array_like
    u, i, j : int
        ``i != j``.
    lr, reg, eps, reg_adv : float
    GP, GQ : array_like or None
        Adagrad accumulators, or ``None`` for SGD.
    delta : tuple of three array_like of shape (d,), optional
        Explicit ``(Du, Di, Dj)``.

    Returns
    -------
    P, Q, GP, GQ, loss
        As :func:`bpr_step_ref`; ``loss`` is the *clean* BPR loss before the step.
    """
    P, Q, GP, GQ = _copies(P, Q, GP, GQ)
    p, qi, qj = P[u], Q[i], Q[j]
    if delta is None:
        Du, Di, Dj = apr_perturbation(p, qi, qj, eps)
    else:
        Du, Di, Dj = (_vec(v) for v in delta)
    loss = bpr_loss(p, qi, qj)
    dp, dqi, dqj = apr_grads(p, qi, qj, Du, Di, Dj, reg_adv)
    _triple_step(P, Q, GP, GQ, u, i, j, lr, reg, dp, dqi, dqj)
    return P, Q, GP, GQ, loss
