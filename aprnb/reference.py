r"""Slow, plain-NumPy reference of every quantity the Numba kernels compute.

This module is for reading and for testing, not for training: everything is
float64, written one formula per line, with no Numba and no cleverness. The
kernels in :mod:`aprnb.kernels` are compared against it in
``tests/test_kernels.py``, and every gradient below is compared against
central finite differences in ``tests/test_reference.py``. The derivations are
written out in ``docs/derivations.md``; the section numbers and labels
(P1), (P2), (A3) below refer to it.

Notation
--------
For a training triple :math:`(u, i, j)` (user, positive item, negative item)
with embeddings :math:`p = p_u`, :math:`q_i`, :math:`q_j`:

.. math::

    d = q_i - q_j, \qquad x = p \cdot d, \qquad
    \ell(x) = \mathrm{softplus}(-x) = -\ln\sigma(x), \qquad s = \sigma(-x).

Regularisation convention (the same as the kernels): an update reads
:math:`\theta \leftarrow \theta - \eta\,(\partial\ell/\partial\theta + \lambda\theta)`,
which is plain gradient descent on :math:`\ell + \tfrac{\lambda}{2}\|\theta\|^2`.
Adagrad keeps one accumulator per element, :math:`G \leftarrow G + g^2`,
:math:`\theta \leftarrow \theta - \eta\, g / \sqrt{G}`, with :math:`g` the full
gradient including :math:`\lambda\theta`. Accumulators must start positive.
"""
import numpy as np

__all__ = [
    "NORM_FLOOR", "sigmoid", "softplus", "l2_normalize", "bpr_loss", "bpr_grads",
    "apr_perturbation", "apr_loss", "apr_grads", "bpr_step_ref", "apr_step_ref",
    "batch_bpr_row_gradients", "batch_perturbation", "apr_batch_step_ref",
    "dataset_bpr_gradient",
]

#: Floor under a squared norm before the square root, as in TensorFlow's
#: ``l2_normalize``: ``x / sqrt(max(sum x^2, 1e-12))``. Zero in, zero out.
NORM_FLOOR = 1e-12


# -- scalar functions --------------------------------------------------------------------

def sigmoid(x):
    r"""Logistic function, without overflow for any finite input.

    .. math::

        \sigma(x) = \frac{1}{1 + e^{-x}} = \frac{e^{x}}{1 + e^{x}}

    The first form is used for :math:`x \ge 0` and the second for :math:`x < 0`,
    so ``exp`` is only ever evaluated at a non-positive argument.

    Parameters
    ----------
    x : float or array_like

    Returns
    -------
    float or ndarray
        :math:`\sigma(x)`, same shape as ``x``.
    """
    x = np.asarray(x, dtype=np.float64)
    z = np.exp(-np.abs(x))                  # in (0, 1], never overflows
    out = np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))
    return out[()] if out.ndim == 0 else out


def softplus(x):
    r"""Numerically stable softplus.

    .. math::

        \mathrm{softplus}(x) = \ln(1 + e^{x}) = \max(x, 0) + \ln(1 + e^{-|x|})

    The right-hand side never exponentiates a positive number and uses
    ``log1p`` for the small correction, so it is accurate for large positive
    and large negative ``x`` alike (the naive form overflows, or loses all
    digits, there). The BPR loss of a margin ``x`` is ``softplus(-x)``.

    Parameters
    ----------
    x : float or array_like

    Returns
    -------
    float or ndarray
    """
    x = np.asarray(x, dtype=np.float64)
    out = np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))
    return out[()] if out.ndim == 0 else out


def l2_normalize(v):
    r"""Divide a vector by its guarded L2 norm.

    .. math::

        \frac{v}{\sqrt{\max(\|v\|^2, 10^{-12})}}

    A zero vector maps to zero (not NaN).

    Parameters
    ----------
    v : array_like, shape (d,)

    Returns
    -------
    ndarray, shape (d,)
    """
    v = np.asarray(v, dtype=np.float64)
    return v / np.sqrt(max(float(v @ v), NORM_FLOOR))


def _vec(a):
    return np.array(a, dtype=np.float64)


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


def apr_perturbation(p, qi, qj, eps):
    r"""Closed-form fast-gradient perturbation of one triple, (P1) and (P2).

    The fast gradient method takes :math:`\Delta = \epsilon\, g / \|g\|` per
    embedding row with :math:`g` the BPR gradient of :func:`bpr_grads`. The
    common positive factor :math:`\sigma(-x)` cancels in each row's
    normalisation, leaving

    .. math::

        \Delta_u = -\epsilon\,\frac{q_i - q_j}{\|q_i - q_j\|}, \qquad
        \Delta_i = -\epsilon\,\frac{p}{\|p\|}, \qquad
        \Delta_j = +\epsilon\,\frac{p}{\|p\|},

    with guarded norms (:func:`l2_normalize`), so zero rows give zero.

    Parameters
    ----------
    p, qi, qj : array_like, shape (d,)
    eps : float
        Radius of the perturbation (L2 norm of each non-zero row of it).

    Returns
    -------
    Du, Di, Dj : ndarray, shape (d,)
    """
    p, qi, qj = _vec(p), _vec(qi), _vec(qj)
    Du = -eps * l2_normalize(qi - qj)
    Di = -eps * l2_normalize(p)
    Dj = -Di
    return Du, Di, Dj


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


def _apply(W, G, r, g, lr):
    """Update row ``r`` of ``W`` (and ``G`` when not None) with full gradient ``g``."""
    if G is None:
        W[r] = W[r] - lr * g
    else:
        G[r] = G[r] + g * g
        W[r] = W[r] - lr * g / np.sqrt(G[r])


def _copies(P, Q, GP, GQ):
    if (GP is None) != (GQ is None):
        raise ValueError("pass both GP and GQ (Adagrad) or neither (SGD)")
    P, Q = _vec(P), _vec(Q)
    if GP is not None:
        GP, GQ = _vec(GP), _vec(GQ)
    return P, Q, GP, GQ


def _triple_step(P, Q, GP, GQ, u, i, j, lr, reg, dp, dqi, dqj):
    p, qi, qj = P[u].copy(), Q[i].copy(), Q[j].copy()
    _apply(P, GP, u, dp + reg * p, lr)
    _apply(Q, GQ, i, dqi + reg * qi, lr)
    _apply(Q, GQ, j, dqj + reg * qj, lr)


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
    batch: step 1 of :func:`aprnb.kernels.batch.batch_epoch`.

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
    r"""One paper-faithful mini-batch APR step (the semantics of ``batch_epoch``).

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
