r"""The per-triple MF-BPR step, plain SGD and Adagrad.

Model: score :math:`y_{ui} = p_u \cdot q_i`; triple :math:`(u, i, j)` with
margin :math:`x = p_u \cdot (q_i - q_j)` and loss :math:`\ell(x) =
\mathrm{softplus}(-x) = -\ln\sigma(x)`. With :math:`s = \sigma(-x)`:

.. math::

    \partial\ell/\partial p_u = -s\,(q_i - q_j), \quad
    \partial\ell/\partial q_i = -s\,p_u, \quad
    \partial\ell/\partial q_j = +s\,p_u.

Regularisation convention: every update is
:math:`\theta \leftarrow \theta - \eta\,(\partial\ell/\partial\theta + \lambda\theta)`,
i.e. the regulariser of a triple is :math:`\tfrac{\lambda}{2}(\|p_u\|^2 +
\|q_i\|^2 + \|q_j\|^2)`. See ``docs/derivations.md`` section 1.

Arithmetic runs in the dtype of ``P`` (float32 or float64); the scalars are cast
once so that the inner loops stay in that width.
"""
import math

import numpy as np

from ._grads import bpr_grad, margin
from ._intrinsics import sqrt
from ._jit import inline, kernel
from ._math import bpr_terms


@inline
def adagrad_rows(P, Q, GP, GQ, u, i, j, G, lr):
    """Per-element Adagrad for the rows ``p_u, q_i, q_j`` given their gradients ``G[0:3]``.

    ``G += g**2; theta -= lr * g / sqrt(G)``, one simple loop per row: with few
    arrays per loop the compiler can prove (at run time) that they do not overlap
    and vectorise the square roots and divisions.
    """
    for f in range(P.shape[1]):
        g = G[0, f]
        GP[u, f] += g * g
        P[u, f] -= lr * g / sqrt(GP[u, f])
    for f in range(Q.shape[1]):
        g = G[1, f]
        GQ[i, f] += g * g
        Q[i, f] -= lr * g / sqrt(GQ[i, f])
    for f in range(Q.shape[1]):
        g = G[2, f]
        GQ[j, f] += g * g
        Q[j, f] -= lr * g / sqrt(GQ[j, f])


@inline
def _bpr_update(P, Q, GP, GQ, G, u, i, j, lr, reg, adagrad):
    """Shared body of :func:`bpr_step` and :func:`bpr_step_adagrad`.

    Returns ``(m, e)`` with the triple's loss ``softplus(-x) = m + log1p(e)``
    (see :func:`aprnb.kernels._math.bpr_terms`).
    """
    dt = P.dtype.type
    d = P.shape[1]
    s_, m, e = bpr_terms(margin(P, Q, u, i, j, dt(0.0)))
    s = dt(s_)                     # sigma(-x) = -dl/dx
    lr_ = dt(lr)
    reg_ = dt(reg)
    if adagrad:
        for f in range(d):
            G[0, f], G[1, f], G[2, f] = bpr_grad(P[u, f], Q[i, f], Q[j, f], s, reg_)
        adagrad_rows(P, Q, GP, GQ, u, i, j, G, lr_)
    else:
        for f in range(d):
            pu = P[u, f]
            qi = Q[i, f]
            qj = Q[j, f]
            gp, gi, gj = bpr_grad(pu, qi, qj, s, reg_)
            P[u, f] = pu - lr_ * gp
            Q[i, f] = qi - lr_ * gi
            Q[j, f] = qj - lr_ * gj
    return m, e


@kernel
def bpr_step(P, Q, u, i, j, lr, reg):
    """One plain-SGD BPR step for the triple ``(u, i, j)``, in place.

    Parameters
    ----------
    P, Q : ndarray of float32 or float64, shape (n_users, d) and (n_items, d)
        User and item factors, C-contiguous, same dtype; updated in place.
    u, i, j : int
        User, positive item, negative item (``i != j``).
    lr, reg : float
        Learning rate and L2 coefficient: ``theta <- theta - lr * (dl/dtheta + reg * theta)``.

    Returns
    -------
    float
        The triple's BPR loss ``softplus(-x)`` *before* the update.
    """
    m, e = _bpr_update(P, Q, P, Q, P[:0], u, i, j, lr, reg, False)
    return m + math.log1p(e)


@kernel
def bpr_step_adagrad(P, Q, GP, GQ, u, i, j, lr, reg):
    """One per-triple Adagrad BPR step, in place.

    ``GP``/``GQ`` are per-element squared-gradient accumulators with the shapes
    of ``P``/``Q`` (start them at a positive value, 0.1 in TensorFlow 1). Each
    touched element does ``G += g**2; theta -= lr * g / sqrt(G)`` with
    ``g = dl/dtheta + reg * theta``. Returns the loss before the update.
    """
    G = np.empty((3, P.shape[1]), dtype=P.dtype)
    m, e = _bpr_update(P, Q, GP, GQ, G, u, i, j, lr, reg, True)
    return m + math.log1p(e)
