r"""CDAE on one user: forward pass, loss, gradients, one step, and the ranking factors.

Plain float64 NumPy twin of :mod:`aprnb.kernels.cdae` (``docs/derivations.md``
section 11). The five tables travel together as a tuple
``params = (W, V, b, Wp, bp)``: ``W`` (n_items, H) input weights, ``V``
(n_users, H) user nodes, ``b`` (H,) hidden bias, ``Wp`` (n_items, H) output
weights, ``bp`` (n_items,) output biases. One step sees user ``u``, its
training items ``items``, the corruption mask ``kept`` (1 = the item survives
the drop-out) and the sampled negatives ``negs``, all given explicitly.
"""
import numpy as np

from ._math import sigmoid, softplus


def _tables(params):
    return tuple(np.array(a, dtype=np.float64) for a in params)


def cdae_hidden(params, u, items, kept, c):
    r"""Hidden layer :math:`z_u = \sigma(V_u + b + c \sum_{i \in K_u} W_i)`.

    Parameters
    ----------
    params : tuple (W, V, b, Wp, bp)
    u : int
    items : int array
    kept : array of 0/1, len(items)
    c : float
        Scale of a kept entry, ``1 / (1 - q)`` (1 at test time, all kept).

    Returns
    -------
    ndarray, shape (H,)
    """
    W, V, b, _, _ = _tables(params)
    y = np.zeros(W.shape[0])                  # the corrupted input row
    for i, k in zip(items, kept):
        if k:
            y[i] = c
    return sigmoid(W.T @ y + V[u] + b)


def cdae_loss(params, u, items, kept, negs, c, reg=0.0):
    r"""Log loss of the step's targets plus the regulariser of the touched rows.

    .. math::

        \sum_{t \in O_u} \mathrm{softplus}(-x_t) + \sum_{t \in N_u} \mathrm{softplus}(x_t)
        + \tfrac{\lambda}{2}\Big(\|V_u\|^2 + \sum_{i \in K_u} \|W_i\|^2
        + \sum_{t \in O_u \cup N_u} \|W'_t\|^2\Big)

    with :math:`x_t = W'_t \cdot z_u + b'_t`. Biases are not regularised.
    """
    W, V, b, Wp, bp = _tables(params)
    z = cdae_hidden(params, u, items, kept, c)
    loss = 0.0
    for t in items:
        loss += softplus(-(Wp[t] @ z + bp[t]))
    for t in negs:
        loss += softplus(Wp[t] @ z + bp[t])
    touched = [i for i, k in zip(items, kept) if k]
    penalty = V[u] @ V[u] + sum(W[i] @ W[i] for i in touched)
    penalty += sum(Wp[t] @ Wp[t] for t in list(items) + list(negs))
    return float(loss + 0.5 * reg * penalty)


def cdae_grads(params, u, items, kept, negs, c, reg=0.0):
    r"""Gradients of :func:`cdae_loss` w.r.t. every table (dense, same shapes).

    With :math:`e_t = \sigma(x_t) - y_t` and
    :math:`\delta = (\sum_t e_t W'_t) \odot z_u \odot (1 - z_u)`:
    :math:`\partial/\partial W'_t = e_t z_u + \lambda W'_t`,
    :math:`\partial/\partial b'_t = e_t`,
    :math:`\partial/\partial V_u = \delta + \lambda V_u`,
    :math:`\partial/\partial b = \delta`,
    :math:`\partial/\partial W_i = c\,\delta + \lambda W_i` for kept items.

    Returns
    -------
    (dW, dV, db, dWp, dbp)
    """
    W, V, b, Wp, bp = _tables(params)
    dW, dV, db, dWp, dbp = (np.zeros_like(a) for a in (W, V, b, Wp, bp))
    z = cdae_hidden(params, u, items, kept, c)
    back = np.zeros_like(z)                    # sum of e_t W'_t
    targets = [(t, 1.0) for t in items] + [(t, 0.0) for t in negs]
    for t, y in targets:
        e = sigmoid(Wp[t] @ z + bp[t]) - y
        back += e * Wp[t]
        dWp[t] = e * z + reg * Wp[t]
        dbp[t] = e
    delta = back * z * (1.0 - z)
    dV[u] = delta + reg * V[u]
    db[:] = delta
    for i, k in zip(items, kept):
        if k:
            dW[i] = c * delta + reg * W[i]
    return dW, dV, db, dWp, dbp


def cdae_step_ref(params, u, items, kept, negs, lr, reg, c, accumulators=None):
    r"""One SGD (or, with ``accumulators``, Adagrad) step of user ``u``.

    Every table takes :math:`\theta \leftarrow \theta - \eta g` or
    :math:`G \leftarrow G + g^2,\ \theta \leftarrow \theta - \eta g / \sqrt{G}`
    with ``g`` from :func:`cdae_grads` at the parameters before the step.
    Elements with a zero gradient (rows the step does not touch) do not move.

    Returns
    -------
    params, accumulators, loss
        New tables, new accumulators (None for SGD) and the log loss of the
        targets before the step (``reg = 0`` in :func:`cdae_loss`).
    """
    tables = _tables(params)
    grads = cdae_grads(tables, u, items, kept, negs, c, reg)
    loss = cdae_loss(tables, u, items, kept, negs, c, 0.0)
    if accumulators is None:
        return tuple(t - lr * g for t, g in zip(tables, grads)), None, loss
    acc = tuple(a + g * g for a, g in zip(_tables(accumulators), grads))
    new = tuple(t - lr * g / np.sqrt(a) for t, g, a in zip(tables, grads, acc))
    return new, acc, loss


def cdae_factors_ref(params, X):
    r"""Ranking factors of a trained CDAE: ``([z_u, 1] per user, [W'_i, b'_i] per item)``.

    At test time nothing is dropped (``c = 1``), so
    :math:`x_{ui} = [z_u, 1] \cdot [W'_i, b'_i]` and :math:`\hat y_{ui} = \sigma(x_{ui})`
    ranks as the dot product does.
    """
    W, V, b, Wp, bp = _tables(params)
    X = X.tocsr()
    users = []
    for u in range(X.shape[0]):
        items = X.indices[X.indptr[u]:X.indptr[u + 1]]
        z = cdae_hidden((W, V, b, Wp, bp), u, items, np.ones(len(items)), 1.0)
        users.append(np.append(z, 1.0))
    return np.array(users).reshape(X.shape[0], -1), np.column_stack([Wp, bp])
