"""Many triples at once: the summed dataset gradient and the mini-batch APR step."""
import numpy as np

from ._math import _vec, l2_normalize
from .apr import apr_grads
from .bpr import bpr_grads, bpr_loss
from ._step import _apply, _copies


# -- many triples at once ----------------------------------------------------------------

def _triples(users, items, negs):
    users = np.asarray(users, dtype=np.int64).ravel()
    items = np.asarray(items, dtype=np.int64).ravel()
    negs = np.asarray(negs, dtype=np.int64).ravel()
    if not users.shape == items.shape == negs.shape:
        raise ValueError("users, items and negatives must have the same length")
    return users, items, negs


def dataset_bpr_gradient(P, Q, users, items, negs):
    r"""Gradient of the BPR loss summed over many triples, w.r.t. the whole tables.

    .. math::

        L = \sum_t \ell\big(p_{u_t} \cdot (q_{i_t} - q_{j_t})\big), \qquad
        \frac{\partial L}{\partial p_u} = \sum_{t:\,u_t = u} -s_t\,(q_{i_t} - q_{j_t}),

        \frac{\partial L}{\partial q_k} = \sum_{t:\,i_t = k} -s_t\,p_{u_t}
                                       + \sum_{t:\,j_t = k} s_t\,p_{u_t}.

    A row that occurs in several triples gets the *sum* of their gradients
    (``np.add.at`` semantics; ``W[idx] += g`` would keep only one of them). All
    gradients are taken at the given ``P``, ``Q``. No regulariser. Triples with
    a negative ``negs[t] < 0`` (``sample_negative``'s "user has no negative")
    are skipped, as the kernels skip them.

    Parameters
    ----------
    P, Q : array_like, shape (n_users, d) and (n_items, d)
    users, items, negs : array_like of int, shape (n,)

    Returns
    -------
    dP, dQ : ndarray of float64, shapes of ``P`` and ``Q``
    """
    P, Q = _vec(P), _vec(Q)
    users, items, negs = _triples(users, items, negs)
    keep = negs >= 0
    users, items, negs = users[keep], items[keep], negs[keep]
    dP = np.zeros_like(P)
    dQ = np.zeros_like(Q)
    for u, i, j in zip(users, items, negs):
        dp, dqi, dqj = bpr_grads(P[u], Q[i], Q[j])
        np.add.at(dP, u, dp)
        np.add.at(dQ, i, dqi)
        np.add.at(dQ, j, dqj)
    return dP, dQ


def batch_bpr_row_gradients(P, Q, us, is_, js):
    r"""Summed BPR gradient of a mini-batch, per row of ``P`` and ``Q``.

    The same quantity as :func:`dataset_bpr_gradient` for the triples of one
    batch: step 1 of :func:`aprnb.kernels.batch.batch_serial`.

    Parameters
    ----------
    P, Q : array_like
    us, is_, js : array_like of int, shape (B,)

    Returns
    -------
    dP, dQ : ndarray of float64
    """
    return dataset_bpr_gradient(P, Q, us, is_, js)


def batch_perturbation(P, Q, us, is_, js, eps):
    r"""Fast-gradient perturbation of a mini-batch: summed gradient, normalised per row.

    .. math::

        \Delta_r = \epsilon\,\frac{g_r}{\sqrt{\max(\|g_r\|^2, 10^{-12})}}, \qquad
        g_r = \frac{\partial}{\partial\theta_r}\sum_{t \in B}\ell(x_t)

    for every row :math:`r` of ``P`` and ``Q`` touched by the batch; rows that
    the batch does not touch get zero. When a row occurs once, this reduces to
    the closed form of :func:`apr_perturbation`; when it occurs several times
    the summed gradient mixes the triples' directions with weights
    :math:`\sigma(-x_t)`, which do not cancel.

    Parameters
    ----------
    P, Q : array_like
    us, is_, js : array_like of int, shape (B,)
    eps : float

    Returns
    -------
    DP, DQ : ndarray of float64, shapes of ``P`` and ``Q``
    """
    us, is_, js = _triples(us, is_, js)
    gP, gQ = batch_bpr_row_gradients(P, Q, us, is_, js)
    DP = np.zeros_like(gP)
    DQ = np.zeros_like(gQ)
    keep = js >= 0
    for u in np.unique(us[keep]):
        DP[u] = eps * l2_normalize(gP[u])
    for k in np.unique(np.concatenate([is_[keep], js[keep]])):
        DQ[k] = eps * l2_normalize(gQ[k])
    return DP, DQ


def apr_batch_step_ref(P, Q, GP, GQ, us, is_, js, lr, reg, eps, reg_adv, adagrad):
    r"""One paper-faithful mini-batch APR step (the semantics of ``batch_serial``).

    1. :math:`\Delta` = :func:`batch_perturbation` at the pre-batch parameters;
    2. the gradient of
       :math:`\sum_{t}\big[\ell(x_t) + \lambda_{adv}\,\ell(x_{adv,t})
       + \tfrac{\lambda}{2}(\|p_{u_t}\|^2 + \|q_{i_t}\|^2 + \|q_{j_t}\|^2)\big]`
       with :math:`\Delta` held constant, every term at the pre-batch
       parameters, summed per row (so :math:`\lambda\theta` is added once per
       occurrence of the row);
    3. one SGD or Adagrad update of every touched row with that summed gradient.

    With ``reg_adv = 0`` this is a plain mini-batch BPR step (``mode = 0``).

    Parameters
    ----------
    P, Q : array_like
    GP, GQ : array_like
        Adagrad accumulators (used and returned only when ``adagrad``).
    us, is_, js : array_like of int, shape (B,)
        The batch; triples with ``js < 0`` are skipped.
    lr, reg, eps, reg_adv : float
    adagrad : bool

    Returns
    -------
    P, Q, GP, GQ : ndarray
        New float64 arrays (``GP``, ``GQ`` are unchanged copies for SGD).
    loss : float
        Sum of the clean BPR losses of the batch before the step.
    """
    P, Q, GP, GQ = _copies(P, Q, GP, GQ)
    us, is_, js = _triples(us, is_, js)
    keep = js >= 0
    us, is_, js = us[keep], is_[keep], js[keep]
    DP, DQ = batch_perturbation(P, Q, us, is_, js, eps)
    gP = np.zeros_like(P)
    gQ = np.zeros_like(Q)
    loss = 0.0
    for u, i, j in zip(us, is_, js):
        loss += bpr_loss(P[u], Q[i], Q[j])
        dp, dqi, dqj = apr_grads(P[u], Q[i], Q[j], DP[u], DQ[i], DQ[j], reg_adv)
        np.add.at(gP, u, dp + reg * P[u])
        np.add.at(gQ, i, dqi + reg * Q[i])
        np.add.at(gQ, j, dqj + reg * Q[j])
    for r in np.unique(us):
        _apply(P, GP if adagrad else None, r, gP[r], lr)
    for r in np.unique(np.concatenate([is_, js])):
        _apply(Q, GQ if adagrad else None, r, gQ[r], lr)
    return P, Q, GP, GQ, loss
