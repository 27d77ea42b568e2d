r"""VAT on one triple, and the per-user vulnerability scale, by their definitions.

Vulnerability-aware adversarial training (Zhang et al., RecSys 2024) is APR
with a per-user radius :math:`\epsilon\,c_u`, where

.. math::

    c_u = \lambda\,\sigma\!\left(\frac{\bar L}{L_u + 10^{-9}} - 1\right),

:math:`L_u` the user's mean clean BPR loss and :math:`\bar L` its mean over the
users that have triples (``docs/derivations.md`` section 10, (V1)-(V3)).
"""
import numpy as np

from ._math import _vec, sigmoid
from .apr import apr_grads, apr_loss, apr_perturbation, apr_step_ref
from .bpr import bpr_loss

#: The official code's guard under a user's loss.
LOSS_FLOOR = 1e-9


def user_losses_ref(P, Q, users, items, negs, n_users):
    r"""Mean clean BPR loss :math:`L_u` and triple count of every user, one triple at a time.

    Triples with ``negs[k] < 0`` are skipped; users without triples get ``L_u = 0``.

    Returns
    -------
    loss : ndarray (n_users,), count : ndarray (n_users,) of int
    """
    P, Q = _vec(P), _vec(Q)
    per_user = [[] for _ in range(n_users)]
    for u, i, j in zip(users, items, negs):
        if j >= 0:
            per_user[int(u)].append(bpr_loss(P[u], Q[i], Q[j]))
    loss = np.array([np.mean(v) if v else 0.0 for v in per_user])
    count = np.array([len(v) for v in per_user], dtype=np.int64)
    return loss, count


def vulnerability_scale_ref(loss, count, vul_lambda):
    r"""The VAT factor :math:`c_u` of every user (V2), written as a list comprehension.

    Parameters
    ----------
    loss : array_like (n_users,)
        :math:`L_u` (:func:`user_losses_ref`).
    count : array_like (n_users,)
        Triples per user; users with none get :math:`\lambda\,\sigma(0)`.
    vul_lambda : float
        :math:`\lambda`, the upper bound of :math:`c_u`.

    Returns
    -------
    ndarray (n_users,)
    """
    loss = np.asarray(loss, dtype=np.float64)
    active = [u for u in range(len(loss)) if count[u] > 0]
    mean = sum(loss[u] for u in active) / max(len(active), 1)
    return np.array([vul_lambda * sigmoid(mean / (loss[u] + LOSS_FLOOR) - 1.0)
                     if count[u] > 0 else vul_lambda * sigmoid(0.0)
                     for u in range(len(loss))])


def vat_perturbation(p, qi, qj, eps, c_u):
    r"""VAT's perturbation of one triple: APR's (P1)/(P2) with radius :math:`\epsilon\,c_u`.

    All three rows (user, positive and negative item) take the *user's* factor.
    """
    return apr_perturbation(p, qi, qj, eps * c_u)


def vat_loss(p, qi, qj, eps, c_u, reg_adv, delta=None):
    r"""VAT objective of one triple (V3), no L2 term.

    :math:`\ell(x) + \lambda_{adv}\,\ell(x_{adv})` with the perturbation of
    :func:`vat_perturbation` *evaluated at the given point*, or ``delta`` when
    given (to differentiate with the perturbation held constant).
    """
    if delta is None:
        delta = vat_perturbation(p, qi, qj, eps, c_u)
    return apr_loss(p, qi, qj, *delta, reg_adv)


def vat_grads(p, qi, qj, eps, c_u, reg_adv):
    r"""Gradients of :func:`vat_loss` with :math:`\Delta` and :math:`c_u` held constant (V4).

    They are APR's (A3) at :math:`\Delta = ` :func:`vat_perturbation`.
    """
    return apr_grads(p, qi, qj, *vat_perturbation(p, qi, qj, eps, c_u), reg_adv)


def vat_step_ref(P, Q, u, i, j, lr, reg, eps, reg_adv, scale, GP=None, GQ=None):
    r"""One VAT step on ``(u, i, j)``: :func:`aprnb.reference.apr_step_ref` at radius
    ``eps * scale[u]`` (SGD, or Adagrad with ``GP``, ``GQ``).

    Returns ``P, Q, GP, GQ, loss`` as :func:`aprnb.reference.apr_step_ref`.
    """
    return apr_step_ref(P, Q, u, i, j, lr, reg, float(eps) * float(scale[u]), reg_adv, GP, GQ)
