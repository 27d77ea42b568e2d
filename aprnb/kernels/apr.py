r"""The per-triple APR step: closed-form fast-gradient perturbation, then SGD/Adagrad.

For one triple the gradient of the BPR loss w.r.t. ``p_u``, ``q_i``, ``q_j`` is
:math:`s = \sigma(-x)` times ``-(q_i - q_j)``, ``-p_u`` and ``+p_u``. The
official ``AMF.py`` L2-normalises that *gradient* per row with TensorFlow's
guard (``docs/derivations.md`` section 3), which gives the closed form

.. math::

    \Delta_u = -\epsilon\,\frac{s\,d}{\sqrt{\max(s^2\|d\|^2, 10^{-12})}},\quad
    \Delta_i = -\epsilon\,\frac{s\,p_u}{\sqrt{\max(s^2\|p_u\|^2, 10^{-12})}},\quad
    \Delta_j = -\Delta_i

with :math:`d = q_i - q_j`. Away from the guard ``s`` cancels and each row has
length ``eps``; on triples with a huge margin ``s`` underflows the guard and
the perturbation shrinks, as in the official code. Zero vectors give a zero
perturbation. With :math:`\tilde p = p_u + \Delta_u` and
:math:`\tilde d = (q_i + \Delta_i) - (q_j + \Delta_j)`, the adversarial margin is
:math:`x_{adv} = \tilde p \cdot \tilde d` and the parameters descend on
:math:`\ell(x) + \lambda_{adv}\,\ell(x_{adv})` with :math:`\Delta` held constant:

.. math::

    g_{p_u} = -s\,d - a\,\tilde d + \lambda p_u,\quad
    g_{q_i} = -s\,p_u - a\,\tilde p + \lambda q_i,\quad
    g_{q_j} = +s\,p_u + a\,\tilde p + \lambda q_j

where :math:`a = \lambda_{adv}\,\sigma(-x_{adv})`.
"""
import math

import numpy as np

from ._grads import apr_grad, perturbed
from ._jit import inline, kernel
from ._math import bpr_terms, guarded_inv_norm, sigmoid
from .bpr import adagrad_rows


@inline
def _apr_grads(pu, qi, qj, D, f, s, a, cu, cq, reg_, use_buffers):
    """Element ``f`` of the APR gradients of ``p_u, q_i, q_j`` (eq. (A3) of docs/derivations.md).

    The perturbation is the closed form (``use_buffers=False``) or the rows ``D[0:3]``.
    """
    if use_buffers:
        pt, dd = perturbed(pu, qi, qj, D[0, f], D[1, f], D[2, f])
    else:
        d = qi - qj
        pt = pu + cu * d                      # p~ = p_u + Delta_u
        dd = d - (cq + cq) * pu               # q~_i - q~_j
    return apr_grad(pu, qi, qj, pt, dd, s, a, reg_)


@inline
def _descend(P, Q, GP, GQ, G, D, u, i, j, s, a, cu, cq, use_buffers, lr, reg, adagrad):
    """Second pass shared by both perturbation kinds: apply the APR gradients.

    ``s = sigma(-x)``, ``a = reg_adv * sigma(-x_adv)``. The perturbation is the
    closed form ``Delta_u = cu * (q_i - q_j)``, ``Delta_i = -cq * p_u = -Delta_j``
    (``use_buffers=False``) or the explicit rows ``D[0], D[1], D[2]`` (for
    ``p_u, q_i, q_j``). Rows are passed as a 2-D array plus row numbers, never as
    row views: creating a view in the hot loop costs an atomic reference-count
    update on the parent array, which the threads would fight over.
    """
    dt = P.dtype.type
    lr_ = dt(lr)
    reg_ = dt(reg)
    # Two loops rather than one branch per element, so that each vectorises.
    if adagrad:
        for f in range(P.shape[1]):
            G[0, f], G[1, f], G[2, f] = _apr_grads(P[u, f], Q[i, f], Q[j, f], D, f, s, a, cu,
                                                   cq, reg_, use_buffers)
        adagrad_rows(P, Q, GP, GQ, u, i, j, G, lr_)
    else:
        for f in range(P.shape[1]):
            pu = P[u, f]
            qi = Q[i, f]
            qj = Q[j, f]
            gp, gi, gj = _apr_grads(pu, qi, qj, D, f, s, a, cu, cq, reg_, use_buffers)
            P[u, f] = pu - lr_ * gp
            Q[i, f] = qi - lr_ * gi
            Q[j, f] = qj - lr_ * gj


@inline
def _apr_update(P, Q, GP, GQ, G, u, i, j, lr, reg, eps, reg_adv, adagrad):
    """Closed-form APR step in two passes over the three rows; returns the clean loss.

    Pass 1 reads ``x = p.d``, ``|d|^2`` and ``|p|^2`` (``d = q_i - q_j``). The
    adversarial margin then needs no further pass:
    ``x_adv = (p + cu d).(d - 2 cq p) = x - 2 cq |p|^2 + cu |d|^2 - 2 cu cq x``.
    """
    dt = P.dtype.type
    x = dt(0.0)
    nd2 = dt(0.0)
    np2 = dt(0.0)
    for f in range(P.shape[1]):
        pu = P[u, f]
        d = Q[i, f] - Q[j, f]
        x += pu * d
        nd2 += d * d
        np2 += pu * pu
    s, m, e = bpr_terms(x)
    # The official form normalises the gradient s*d, not d: one multiply by s,
    # and s^2 under the guard (eq. P3 of docs/derivations.md)
    s2 = s * s
    cu = dt(-eps * s * guarded_inv_norm(s2 * nd2))    # Delta_u = cu * d
    cq = dt(eps * s * guarded_inv_norm(s2 * np2))     # Delta_i = -cq * p
    xa = x - dt(2.0) * cq * np2 + cu * nd2 - dt(2.0) * cu * cq * x
    a = dt(reg_adv * sigmoid(-xa))
    _descend(P, Q, GP, GQ, G, G, u, i, j, dt(s), a, cu, cq, False, lr, reg, adagrad)
    return m, e


@inline
def _apr_given(P, Q, GP, GQ, G, D, u, i, j, lr, reg, reg_adv, adagrad):
    """APR step with the explicit perturbation rows ``D[0:3]`` (random noise).

    Returns the clean loss as ``(m, e)`` (see :func:`aprnb.kernels._math.bpr_terms`).
    """
    dt = P.dtype.type
    x = dt(0.0)
    xa = dt(0.0)
    for f in range(P.shape[1]):
        pu = P[u, f]
        qi = Q[i, f]
        qj = Q[j, f]
        x += pu * (qi - qj)
        pt, dd = perturbed(pu, qi, qj, D[0, f], D[1, f], D[2, f])
        xa += pt * dd
    s, m, e = bpr_terms(x)
    a = dt(reg_adv * sigmoid(-xa))
    _descend(P, Q, GP, GQ, G, D, u, i, j, dt(s), a, dt(0.0), dt(0.0), True, lr, reg, adagrad)
    return m, e


@kernel
def apr_step(P, Q, u, i, j, lr, reg, eps, reg_adv):
    """One plain-SGD APR step for the triple ``(u, i, j)``, in place.

    Computes the closed-form fast-gradient perturbation of ``p_u, q_i, q_j``
    (the BPR gradient L2-normalised per row with the official guard, times
    ``eps``), the adversarial margin,
    and descends on ``softplus(-x) + reg_adv * softplus(-x_adv)`` with the
    perturbation held constant, plus ``reg * theta`` as in :func:`bpr_step`.

    Returns
    -------
    float
        The clean BPR loss ``softplus(-x)`` before the update.
    """
    m, e = _apr_update(P, Q, P, Q, P[:0], u, i, j, lr, reg, eps, reg_adv, False)
    return m + math.log1p(e)


@kernel
def apr_step_adagrad(P, Q, GP, GQ, u, i, j, lr, reg, eps, reg_adv):
    """Per-triple Adagrad version of :func:`apr_step` (accumulators ``GP``, ``GQ``)."""
    G = np.empty((3, P.shape[1]), dtype=P.dtype)
    m, e = _apr_update(P, Q, GP, GQ, G, u, i, j, lr, reg, eps, reg_adv, True)
    return m + math.log1p(e)


@kernel
def apr_step_given(P, Q, u, i, j, Du, Di, Dj, lr, reg, reg_adv):
    """Plain-SGD APR step with an explicit perturbation (rows ``Du, Di, Dj``).

    Used for random-noise training and to test the descent against a reference
    with any perturbation. Returns the clean loss before the update.
    """
    D = np.empty((3, P.shape[1]), dtype=P.dtype)
    D[0] = Du
    D[1] = Di
    D[2] = Dj
    m, e = _apr_given(P, Q, P, Q, P[:0], D, u, i, j, lr, reg, reg_adv, False)
    return m + math.log1p(e)
