r"""The per-triple APR step: closed-form fast-gradient perturbation, then SGD/Adagrad.

For one triple the gradient of the BPR loss w.r.t. ``p_u``, ``q_i``, ``q_j`` is a
positive scalar :math:`s = \sigma(-x)` times ``-(q_i - q_j)``, ``-p_u`` and
``+p_u``. Normalising each row cancels ``s`` (``docs/derivations.md`` section 3):

.. math::

    \Delta_u = -\epsilon\,\frac{q_i - q_j}{\|q_i - q_j\|},\quad
    \Delta_i = -\epsilon\,\frac{p_u}{\|p_u\|},\quad
    \Delta_j = +\epsilon\,\frac{p_u}{\|p_u\|}

with norms guarded as ``sqrt(max(||v||^2, 1e-12))`` so that zero vectors give a
zero perturbation. With :math:`\tilde p = p_u + \Delta_u` and
:math:`\tilde d = (q_i + \Delta_i) - (q_j + \Delta_j)`, the adversarial margin is
:math:`x_{adv} = \tilde p \cdot \tilde d` and the parameters descend on
:math:`\ell(x) + \lambda_{adv}\,\ell(x_{adv})` with :math:`\Delta` held constant:

.. math::

    g_{p_u} = -s\,d - a\,\tilde d + \lambda p_u,\quad
    g_{q_i} = -s\,p_u - a\,\tilde p + \lambda q_i,\quad
    g_{q_j} = +s\,p_u + a\,\tilde p + \lambda q_j

where :math:`d = q_i - q_j`, :math:`a = \lambda_{adv}\,\sigma(-x_{adv})`.
"""
import math

from numba import njit

from ._math import guarded_inv_norm, sigmoid, softplus


@njit(cache=True, inline="always")
def _apr_apply(P, Q, GP, GQ, u, i, j, cu, cq, Du, Di, Dj, use_buffers,
               lr, reg, reg_adv, adagrad):
    """Update ``p_u, q_i, q_j`` for a fixed perturbation; return the clean loss.

    The perturbation is either the closed form (``use_buffers=False``):
    ``Delta_u = cu * (q_i - q_j)``, ``Delta_i = -cq * p_u``, ``Delta_j = +cq * p_u``,
    or explicit rows ``Du, Di, Dj`` (``use_buffers=True``, random noise).
    """
    dt = P.dtype.type
    nd = P.shape[1]
    x = dt(0.0)
    xa = dt(0.0)
    for f in range(nd):
        pu = P[u, f]
        d = Q[i, f] - Q[j, f]
        if use_buffers:
            pt = pu + Du[f]
            dd = d + (Di[f] - Dj[f])
        else:
            pt = pu + cu * d
            dd = d - dt(2.0) * cq * pu
        x += pu * d
        xa += pt * dd
    loss = softplus(-x)
    s = dt(sigmoid(-x))
    a = dt(reg_adv * sigmoid(-xa))
    lr_ = dt(lr)
    reg_ = dt(reg)
    for f in range(nd):
        pu = P[u, f]
        qi = Q[i, f]
        qj = Q[j, f]
        d = qi - qj
        if use_buffers:
            pt = pu + Du[f]
            dd = d + (Di[f] - Dj[f])
        else:
            pt = pu + cu * d
            dd = d - dt(2.0) * cq * pu
        gp = reg_ * pu - s * d - a * dd
        gi = reg_ * qi - s * pu - a * pt
        gj = reg_ * qj + s * pu + a * pt
        if adagrad:
            GP[u, f] += gp * gp
            GQ[i, f] += gi * gi
            GQ[j, f] += gj * gj
            P[u, f] = pu - lr_ * gp / math.sqrt(GP[u, f])
            Q[i, f] = qi - lr_ * gi / math.sqrt(GQ[i, f])
            Q[j, f] = qj - lr_ * gj / math.sqrt(GQ[j, f])
        else:
            P[u, f] = pu - lr_ * gp
            Q[i, f] = qi - lr_ * gi
            Q[j, f] = qj - lr_ * gj
    return loss


@njit(cache=True, inline="always")
def closed_form_coefficients(P, Q, u, i, j, eps):
    """Return ``(cu, cq)`` with ``Delta_u = cu*(q_i-q_j)``, ``Delta_i = -cq*p_u = -Delta_j``."""
    dt = P.dtype.type
    nd2 = dt(0.0)
    np2 = dt(0.0)
    for f in range(P.shape[1]):
        pu = P[u, f]
        d = Q[i, f] - Q[j, f]
        nd2 += d * d
        np2 += pu * pu
    cu = dt(-eps * guarded_inv_norm(nd2))
    cq = dt(eps * guarded_inv_norm(np2))
    return cu, cq


@njit(cache=True, inline="always")
def _apr_update(P, Q, GP, GQ, u, i, j, lr, reg, eps, reg_adv, adagrad):
    cu, cq = closed_form_coefficients(P, Q, u, i, j, eps)
    e = P[u]  # unused placeholder rows for the closed-form branch
    return _apr_apply(P, Q, GP, GQ, u, i, j, cu, cq, e, e, e, False,
                      lr, reg, reg_adv, adagrad)


@njit(cache=True)
def apr_step(P, Q, u, i, j, lr, reg, eps, reg_adv):
    """One plain-SGD APR step for the triple ``(u, i, j)``, in place.

    Computes the closed-form fast-gradient perturbation of ``p_u, q_i, q_j``
    (per-row L2 normalised, times ``eps``, guarded norms), the adversarial margin,
    and descends on ``softplus(-x) + reg_adv * softplus(-x_adv)`` with the
    perturbation held constant, plus ``reg * theta`` as in :func:`bpr_step`.

    Returns
    -------
    float
        The clean BPR loss ``softplus(-x)`` before the update.
    """
    return _apr_update(P, Q, P, Q, u, i, j, lr, reg, eps, reg_adv, False)


@njit(cache=True)
def apr_step_adagrad(P, Q, GP, GQ, u, i, j, lr, reg, eps, reg_adv):
    """Per-triple Adagrad version of :func:`apr_step` (accumulators ``GP``, ``GQ``)."""
    return _apr_update(P, Q, GP, GQ, u, i, j, lr, reg, eps, reg_adv, True)


@njit(cache=True)
def apr_step_given(P, Q, u, i, j, Du, Di, Dj, lr, reg, reg_adv):
    """Plain-SGD APR step with an explicit perturbation (rows ``Du, Di, Dj``)."""
    return _apr_apply(P, Q, P, Q, u, i, j, 0.0, 0.0, Du, Di, Dj, True,
                      lr, reg, reg_adv, False)
