r"""NeuMF (He et al., WWW 2017) on one (user, item, label) sample, and one mini-batch step.

Plain NumPy, float64, one formula per line; the kernels of
:mod:`aprnb.kernels.neumf` are compared against it in ``tests/test_neumf.py``.

Parameters of the model
-----------------------
* the user row ``p = [p^G | p^M]`` (width ``F + H``) and the item row
  ``q = [q^G | q^M]``, with ``F = factors`` and ``H = layers[0] // 2``;
* the dense parameters, one flat vector ``theta`` (:func:`layout`): for
  ``l = 1..n`` the matrix ``W_l`` (``layers[l] x layers[l-1]``, row-major) and
  the bias ``b_l``; then the prediction weights ``h = [h^G | h^M]``
  (``F + layers[n]``) and the scalar bias ``b_0``.

Forward pass (the NeuMF section of ``docs/derivations.md``)
-----------------------------------------------------------

.. math::

    \phi^G = p^G \odot q^G,\quad a_0 = [p^M; q^M],\quad
    z_l = W_l a_{l-1} + b_l,\quad a_l = \max(z_l, 0),\quad
    y = h^G\cdot\phi^G + h^M\cdot a_n + b_0

and the pointwise log loss of label :math:`t\in\{0,1\}` on the logit ``y``,
:math:`\ell = \mathrm{softplus}(y) - t\,y = \mathrm{softplus}((1-2t)\,y)`.
"""
import numpy as np

from ._math import _vec, l2_normalize, sigmoid, softplus


def layout(factors, layers):
    """``(offsets, size)`` of the flat dense vector: ``offsets[2(l-1)]`` is where
    ``W_l`` starts, ``offsets[2(l-1)+1]`` where ``b_l`` starts (``l = 1..n``),
    ``offsets[2n]`` where ``h`` starts and ``offsets[2n+1]`` is ``b_0``."""
    offs = []
    pos = 0
    for ly in range(1, len(layers)):
        offs.append(pos)
        pos += layers[ly] * layers[ly - 1]
        offs.append(pos)
        pos += layers[ly]
    offs.append(pos)
    pos += factors + layers[-1]
    offs.append(pos)
    return np.asarray(offs, dtype=np.int64), pos + 1


def unpack(theta, factors, layers):
    """``(Ws, bs, h, b0)`` views of the flat dense vector ``theta``."""
    offs, size = layout(factors, layers)
    if theta.shape != (size,):
        raise ValueError(f"theta must have {size} entries for factors={factors}, "
                         f"layers={tuple(layers)}, got shape {theta.shape}")
    Ws, bs = [], []
    for ly in range(1, len(layers)):
        w0, b0_ = offs[2 * (ly - 1)], offs[2 * (ly - 1) + 1]
        Ws.append(theta[w0:b0_].reshape(layers[ly], layers[ly - 1]))
        bs.append(theta[b0_:b0_ + layers[ly]])
    h = theta[offs[-2]:offs[-1]]
    return Ws, bs, h, theta[offs[-1]]


def forward(p, q, theta, factors, layers):
    """Logit ``y`` of one (user row, item row) and the activations ``[a_0, ..., a_n]``."""
    p, q, theta = _vec(p), _vec(q), _vec(theta)
    F, H = factors, layers[0] // 2
    Ws, bs, h, b0 = unpack(theta, factors, layers)
    phi = p[:F] * q[:F]
    acts = [np.concatenate([p[F:F + H], q[F:F + H]])]
    for W, b in zip(Ws, bs):
        acts.append(np.maximum(W @ acts[-1] + b, 0.0))
    y = h[:F] @ phi + h[F:] @ acts[-1] + b0
    return float(y), acts


def loss(p, q, label, theta, factors, layers):
    """Log loss ``softplus((1 - 2t) y)`` of one sample with label ``t`` (0 or 1)."""
    y, _ = forward(p, q, theta, factors, layers)
    return float(softplus((1.0 - 2.0 * label) * y))


def grads(p, q, label, theta, factors, layers):
    r"""Gradients of :func:`loss` w.r.t. ``p``, ``q`` and ``theta`` (no regulariser).

    With :math:`\delta = \partial\ell/\partial y = \sigma(y) - t`:

    .. math::

        \partial h^G = \delta\,\phi^G,\quad \partial h^M = \delta\,a_n,\quad
        \partial b_0 = \delta,\quad
        \partial p^G = \delta\,h^G\odot q^G,\quad \partial q^G = \delta\,h^G\odot p^G,

    and back through the tower with :math:`e_n = \delta\,h^M \odot [z_n > 0]`,
    :math:`\partial W_l = e_l a_{l-1}^T`, :math:`\partial b_l = e_l`,
    :math:`e_{l-1} = (W_l^T e_l)\odot[z_{l-1} > 0]`; finally
    :math:`\partial a_0 = W_1^T e_1`, whose halves are
    :math:`\partial p^M = W_{1u}^T e_1` and :math:`\partial q^M = W_{1i}^T e_1`
    (``W_1 = [W_{1u} | W_{1i}]``). ReLU's derivative at exactly 0 is taken as 0.
    """
    p, q, theta = _vec(p), _vec(q), _vec(theta)
    F, H = factors, layers[0] // 2
    y, acts = forward(p, q, theta, factors, layers)
    Ws, _, h, _ = unpack(theta, factors, layers)
    delta = sigmoid(y) - label
    gth = np.zeros_like(theta)
    gWs, gbs, gh, _ = unpack(gth, factors, layers)     # views into gth
    gp, gq = np.zeros_like(p), np.zeros_like(q)
    gh[:F] = delta * p[:F] * q[:F]
    gh[F:] = delta * acts[-1]
    gth[-1] = delta
    gp[:F] = delta * h[:F] * q[:F]
    gq[:F] = delta * h[:F] * p[:F]
    e = delta * h[F:] * (acts[-1] > 0)
    for ly in range(len(Ws), 0, -1):
        gWs[ly - 1][...] = np.outer(e, acts[ly - 1])
        gbs[ly - 1][...] = e
        back = Ws[ly - 1].T @ e
        e = back * (acts[ly - 1] > 0) if ly > 1 else back
    gp[F:F + H] = e[:H]
    gq[F:F + H] = e[H:]
    return gp, gq, gth


def weight_mask(factors, layers):
    """1.0 on the entries of ``theta`` that L2 decays (``W_l`` and ``h``), 0.0 on the biases."""
    offs, size = layout(factors, layers)
    m = np.zeros(size)
    for ly in range(1, len(layers)):
        m[offs[2 * (ly - 1)]:offs[2 * (ly - 1) + 1]] = 1.0
    m[offs[-2]:offs[-1]] = 1.0
    return m


def branch_mask(factors, layers, branch="both"):
    """The dense gradient mask of a branch: 1.0 everywhere for ``"both"``; for
    ``"gmf"`` (``"mlp"``) 0.0 on ``h^M`` (``h^G``), the other branch's output
    weights, which pre-training holds at zero so that only one branch scores."""
    offs, size = layout(factors, layers)
    m = np.ones(size)
    ho = offs[-2]
    if branch == "gmf":
        m[ho + factors:offs[-1]] = 0.0
    elif branch == "mlp":
        m[ho:ho + factors] = 0.0
    elif branch != "both":
        raise ValueError(f"branch must be 'both', 'gmf' or 'mlp', got {branch!r}")
    return m


def perturbation(p, q, label, theta, factors, layers, eps):
    r"""Fast-gradient perturbation of one sample's four embedding rows.

    The clean gradient rows :math:`g_p, g_q` of :func:`grads` are cut into their
    GMF part (width ``F``) and MLP part (width ``H``), and each part is
    L2-normalised with the official guard
    (:math:`g/\sqrt{\max(\|g\|^2, 10^{-12})}`) and scaled by ``eps``. Returns
    ``(Dp, Dq)``, each of the rows' width.
    """
    gp, gq, _ = grads(p, q, label, theta, factors, layers)
    F = factors
    Dp = np.concatenate([eps * l2_normalize(gp[:F]), eps * l2_normalize(gp[F:])])
    Dq = np.concatenate([eps * l2_normalize(gq[:F]), eps * l2_normalize(gq[F:])])
    return Dp, Dq


def adv_loss(p, q, label, theta, factors, layers, Dp, Dq, reg_adv):
    r"""Clean plus weighted adversarial loss of one sample,
    :math:`\ell(p, q) + \lambda_{adv}\,\ell(p + \Delta_p, q + \Delta_q)`."""
    p, q = _vec(p), _vec(q)
    return (loss(p, q, label, theta, factors, layers)
            + reg_adv * loss(p + Dp, q + Dq, label, theta, factors, layers))


def adv_grads(p, q, label, theta, factors, layers, Dp, Dq, reg_adv):
    """Gradients of :func:`adv_loss` w.r.t. ``p, q, theta`` with ``Dp, Dq`` held constant."""
    p, q = _vec(p), _vec(q)
    gp, gq, gt = grads(p, q, label, theta, factors, layers)
    ap, aq, at = grads(p + Dp, q + Dq, label, theta, factors, layers)
    return gp + reg_adv * ap, gq + reg_adv * aq, gt + reg_adv * at


def _update(W, G, g, lr):
    if G is None:
        W -= lr * g
    else:
        G += g * g
        W -= lr * g / np.sqrt(G)


def batch_step_ref(P, Q, theta, users, items, labels, factors, layers, lr, reg, GP=None,
                   GQ=None, Gth=None, eps=0.0, reg_adv=0.0, adversarial=False, gmask=None):
    r"""One mini-batch step on the samples ``(users[k], items[k], labels[k])``; returns copies.

    Every gradient is taken at the parameters at the start of the batch. The
    batch objective is the *sum* over its samples of the (clean, or clean plus
    ``reg_adv`` times adversarial) loss plus ``reg/2`` times the squared norm of
    the sample's two rows, plus ``reg/2`` times the squared norm of the dense
    weights (not the biases) once. Each touched row gets the sum of its
    samples' gradients and then one optimizer step (Adagrad when ``GP, GQ,
    Gth`` are given, else SGD), as autodiff frameworks do with sparse
    gradients; the dense vector takes one step.

    Returns ``(P, Q, theta, GP, GQ, Gth, loss)``, ``loss`` the summed clean log
    loss of the batch at its starting parameters.
    """
    P, Q, theta = _vec(P).copy(), _vec(Q).copy(), _vec(theta).copy()
    ada = GP is not None
    if ada:
        GP, GQ, Gth = _vec(GP).copy(), _vec(GQ).copy(), _vec(Gth).copy()
    RP, RQ = np.zeros_like(P), np.zeros_like(Q)
    gth = reg * weight_mask(factors, layers) * theta
    total = 0.0
    for u, i, t in zip(users, items, labels):
        p, q = P[u], Q[i]
        total += loss(p, q, t, theta, factors, layers)
        if adversarial:
            Dp, Dq = perturbation(p, q, t, theta, factors, layers, eps)
            gp, gq, gt = adv_grads(p, q, t, theta, factors, layers, Dp, Dq, reg_adv)
        else:
            gp, gq, gt = grads(p, q, t, theta, factors, layers)
        RP[u] += gp + reg * p
        RQ[i] += gq + reg * q
        gth += gt
    for u in np.unique(users):
        _update(P[u], GP[u] if ada else None, RP[u], lr)
    for i in np.unique(items):
        _update(Q[i], GQ[i] if ada else None, RQ[i], lr)
    if gmask is not None:
        gth = gth * gmask
    _update(theta, Gth if ada else None, gth, lr)
    return P, Q, theta, GP, GQ, Gth, total


def scores_ref(P, Q, theta, factors, layers, users, items):
    """Logits of every (user, item) of ``users x items``, one forward pass each."""
    out = np.empty((len(users), len(items)))
    for r, u in enumerate(users):
        for c, i in enumerate(items):
            out[r, c], _ = forward(P[u], Q[i], theta, factors, layers)
    return out
