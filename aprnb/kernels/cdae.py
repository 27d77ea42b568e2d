r"""CDAE (Wu et al., WSDM 2016): one user per step, and the Hogwild epoch over users.

Model. User ``u`` has the binary row :math:`y_u` (its training items
:math:`O_u`). Training corrupts it by drop-out: each item of :math:`O_u` is
kept with probability :math:`1 - q` (the set :math:`K_u`) and a kept entry is
scaled by :math:`c = 1 / (1 - q)`, so that the corrupted row :math:`\tilde y_u`
has expectation :math:`y_u`. With the tables ``W`` (n_items, H), ``V``
(n_users, H), ``b`` (H,), ``W'`` (n_items, H), ``b'`` (n_items,):

.. math::

    a_u = V_u + b + c \sum_{i \in K_u} W_i, \qquad z_u = \sigma(a_u), \qquad
    x_{ut} = W'_t \cdot z_u + b'_t, \qquad \hat y_{ut} = \sigma(x_{ut}).

Loss of one step (user ``u``, targets :math:`T_u = O_u \cup N_u` with the
sampled negatives :math:`N_u`, all distinct; label :math:`y_t = 1` on
:math:`O_u`, 0 on :math:`N_u`), the log loss written with softplus:

.. math::

    L_u = \sum_{t \in O_u} \mathrm{softplus}(-x_{ut})
        + \sum_{t \in N_u} \mathrm{softplus}(x_{ut})
        + \tfrac{\lambda}{2}\Big(\|V_u\|^2 + \sum_{i \in K_u}\|W_i\|^2
        + \sum_{t \in T_u}\|W'_t\|^2\Big).

The biases are not regularised. Gradients (``docs/derivations.md`` section 11),
with :math:`e_t = \sigma(x_{ut}) - y_t = \partial L_u / \partial x_{ut}`:

.. math::

    \frac{\partial L_u}{\partial W'_t} = e_t\, z_u + \lambda W'_t, \quad
    \frac{\partial L_u}{\partial b'_t} = e_t, \quad
    \delta = \Big(\sum_{t \in T_u} e_t W'_t\Big) \odot z_u \odot (1 - z_u),

.. math::

    \frac{\partial L_u}{\partial V_u} = \delta + \lambda V_u, \quad
    \frac{\partial L_u}{\partial b} = \delta, \quad
    \frac{\partial L_u}{\partial W_i} = c\,\delta + \lambda W_i \ (i \in K_u).

Every gradient is taken at the parameters before the step (``delta`` uses the
old ``W'`` rows), then each touched element takes one SGD step
(:math:`\theta \leftarrow \theta - \eta g`) or one Adagrad step
(:math:`G \leftarrow G + g^2,\ \theta \leftarrow \theta - \eta g / \sqrt{G}`).

Parallel epochs (Hogwild). The users of an epoch are cut into slices, one per
chunk, each with its own RNG streams; ``cdae_epoch_parallel`` runs the chunks
on Numba threads without locks. ``V_u`` belongs to one user and is never
shared. The rows of ``W``, ``W'`` and the entries of ``b'`` are shared by every
user who holds (or samples) the item: Hogwild, as in the MF kernels. ``b`` is
written by *every* step; it also runs Hogwild: a step writes it once (H
elements) against the ``(|K_u| + |T_u|) H`` elements of its rows, so the
contention is small, and a race costs at most one user's update of ``b``
(aligned float stores do not tear). ``b`` only carries the offset common to
all ``V_u``, so a lost update is absorbed by the next steps. One chunk (serial)
plus a seed is bitwise reproducible.
"""
import numpy as np
from numba import prange

from ._intrinsics import prefetch, sqrt
from ._jit import inline, integer, kernel, twin
from ._math import sigmoid, softplus
from ._rng import DRAW, REDRAW, STRIDE, randint, uniform


@inline
def _row_step(T, A, r, g, lr, adagrad):
    """One SGD or Adagrad step of row ``r`` of the 2-D table ``T`` with gradient row ``g``."""
    if adagrad:
        for f in range(T.shape[1]):
            A[r, f] += g[f] * g[f]
            T[r, f] -= lr * g[f] / sqrt(A[r, f])
    else:
        for f in range(T.shape[1]):
            T[r, f] -= lr * g[f]


@inline
def _scalar_step(t, a, k, g, lr, adagrad):
    """One SGD or Adagrad step of element ``k`` of the 1-D array ``t`` with gradient ``g``."""
    if adagrad:
        a[k] += g * g
        t[k] -= lr * g / sqrt(a[k])
    else:
        t[k] -= lr * g


#: Rows between a prefetch (input rows in ``_encode``, output rows in ``_user_step``)
#: and their use.
AHEAD = 4


@inline
def _encode(W, V, b, u, items, kept, c, z):
    """``z = sigmoid(V_u + b + c * sum of W_i over the kept items)`` into ``z``."""
    H = W.shape[1]
    step = max(1, 64 // W.itemsize)
    for f in range(H):
        z[f] = V[u, f] + b[f]
    for k in range(items.shape[0]):
        if k + AHEAD < items.shape[0] and kept[k + AHEAD]:
            for f in range(0, H, step):
                prefetch(W, items[k + AHEAD], f)
        if kept[k]:
            i = items[k]
            for f in range(H):
                z[f] += c * W[i, f]
    for f in range(H):
        z[f] = sigmoid(z[f])


@inline
def _output(Wp, bp, GWp, Gbp, t, y, z, dz, lr, reg, adagrad):
    """Target ``t`` with label ``y``: its loss; adds ``e_t W'_t`` (old row) to ``dz``, then
    steps ``W'_t`` and ``b'_t``."""
    dt = Wp.dtype.type
    H = Wp.shape[1]
    x = bp[t]
    for f in range(H):
        x += Wp[t, f] * z[f]
    e = dt(sigmoid(x) - y)                 # dL/dx
    # one pass per optimizer: read the old row into dz, then step it (C1)
    if adagrad:
        for f in range(H):
            w = Wp[t, f]
            dz[f] += e * w
            gf = e * z[f] + reg * w
            GWp[t, f] += gf * gf
            Wp[t, f] = w - lr * gf / sqrt(GWp[t, f])
    else:
        for f in range(H):
            w = Wp[t, f]
            dz[f] += e * w
            Wp[t, f] = w - lr * (e * z[f] + reg * w)
    _scalar_step(bp, Gbp, t, e, lr, adagrad)
    return softplus(-x) if y > 0 else softplus(x)


@inline
def _prefetch_target(Wp, bp, GWp, Gbp, items, negs, k, adagrad, step):
    """Prefetch the output row (and with ``adagrad`` its accumulators) of target ``k``:
    ``items[k]``, or ``negs[k - len(items)]`` after the positives."""
    n_pos = items.shape[0]
    t = items[k] if k < n_pos else negs[k - n_pos]
    for f in range(0, Wp.shape[1], step):
        prefetch(Wp, t, f)
    prefetch(bp, t, 0)
    if adagrad:
        for f in range(0, Wp.shape[1], step):
            prefetch(GWp, t, f)
        prefetch(Gbp, t, 0)


@inline
def _user_step(W, V, b, Wp, bp, GW, GV, Gb, GWp, Gbp, u, items, kept, negs, lr, reg, c,
               adagrad, z, dz, g):
    """The whole step of user ``u`` (module docstring); returns the summed log loss.

    ``items``: the user's training items (distinct); ``kept``: 1 where an item
    survives the corruption; ``negs``: the sampled negatives (distinct, none in
    ``items``). ``z``, ``dz``, ``g``: scratch rows of length H.
    """
    dt = W.dtype.type
    H = W.shape[1]
    lr_, reg_, c_ = dt(lr), dt(reg), dt(c)
    _encode(W, V, b, u, items, kept, c_, z)
    for f in range(H):
        dz[f] = 0.0
    loss = 0.0
    n_pos = items.shape[0]
    n_t = n_pos + negs.shape[0]
    step = max(1, 64 // Wp.itemsize)
    for k in range(min(AHEAD, n_t)):
        _prefetch_target(Wp, bp, GWp, Gbp, items, negs, k, adagrad, step)
    for k in range(n_t):
        if k + AHEAD < n_t:            # the rows of a later target are on their way
            _prefetch_target(Wp, bp, GWp, Gbp, items, negs, k + AHEAD, adagrad, step)
        if k < n_pos:
            loss += _output(Wp, bp, GWp, Gbp, items[k], dt(1.0), z, dz, lr_, reg_, adagrad)
        else:
            loss += _output(Wp, bp, GWp, Gbp, negs[k - n_pos], dt(0.0), z, dz, lr_, reg_, adagrad)
    for f in range(H):
        dz[f] = dz[f] * z[f] * (dt(1.0) - z[f])          # delta
    for f in range(H):
        g[f] = dz[f] + reg_ * V[u, f]
    _row_step(V, GV, u, g, lr_, adagrad)
    for f in range(H):
        _scalar_step(b, Gb, f, dz[f], lr_, adagrad)
    for k in range(items.shape[0]):
        if kept[k]:
            i = items[k]
            for f in range(H):
                g[f] = c_ * dz[f] + reg_ * W[i, f]
            _row_step(W, GW, i, g, lr_, adagrad)
    return loss


@kernel
def cdae_step(W, V, b, Wp, bp, GW, GV, Gb, GWp, Gbp, u, items, kept, negs, lr, reg, c,
              adagrad):
    """One CDAE step of user ``u`` with the corruption and the negatives given, in place.

    Parameters
    ----------
    W, V, b, Wp, bp : ndarray (float32 or float64, one dtype)
        ``W`` (n_items, H), ``V`` (n_users, H), ``b`` (H,), ``W'`` (n_items, H),
        ``b'`` (n_items,).
    GW, GV, Gb, GWp, Gbp : ndarray
        Their Adagrad accumulators (any arrays of the same ndim with SGD: unused).
    u : int
    items : int array
        The user's training items, distinct.
    kept : uint8 array, len(items)
        1 where the item survives the drop-out corruption.
    negs : int array
        Negatives: distinct, none of them in ``items``.
    lr, reg : float
    c : float
        Scale of a kept input entry, ``1 / (1 - q)``.
    adagrad : bool

    Returns
    -------
    float
        The log loss of the step's targets at the parameters before the step
        (without the regulariser).
    """
    H = W.shape[1]
    z = np.empty(H, dtype=W.dtype)
    dz = np.empty(H, dtype=W.dtype)
    g = np.empty(H, dtype=W.dtype)
    return _user_step(W, V, b, Wp, bp, GW, GV, Gb, GWp, Gbp, u, items, kept, negs, lr, reg, c,
                      adagrad, z, dz, g)


@integer(inline=True)
def _shuffle(a, lo, hi, state, t):
    """Fisher-Yates shuffle of ``a[lo:hi]`` in place (stream ``t``)."""
    for k in range(hi - 1, lo, -1):
        r = lo + randint(state, t, k - lo + 1)
        tmp = a[k]
        a[k] = a[r]
        a[r] = tmp


@integer(inline=True)
def draw_negatives(mark, negs, n, n_items, state, t):
    """Draw ``n`` distinct items with ``mark == 0`` into ``negs[:n]`` (rejection) and mark them.

    The caller marks the user's items first and unmarks everything afterwards;
    ``n`` must not exceed the unmarked items.
    """
    for m in range(n):
        j = randint(state, t, n_items)
        while mark[j]:
            j = randint(state, t, n_items)
        mark[j] = 1
        negs[m] = j


@kernel(refcount=False)
def run_users(W, V, b, Wp, bp, GW, GV, Gb, GWp, Gbp, indptr, indices, users, lo, hi, states,
              rs, lr, reg, q, negatives, adagrad, mark, kept, negs, z, dz, g):
    """Train on the users ``users[lo:hi]`` with the RNG streams of block ``states[rs:]``.

    Per user: the corruption (stream REDRAW: one uniform per item, kept when
    ``>= q``), ``min(negatives * |O_u|, n_items - |O_u|)`` distinct negatives
    (stream DRAW), then :func:`_user_step`. Users with no items or with every
    item are skipped. ``mark`` (n_items,), ``kept``, ``negs``, ``z``, ``dz``,
    ``g`` are this chunk's scratch. Returns ``(summed loss, targets)``.
    """
    n_items = Wp.shape[0]
    c = 1.0 / (1.0 - q)
    acc = 0.0
    cnt = 0
    for k in range(lo, hi):
        u = users[k]
        a = indptr[u]
        e = indptr[u + 1]
        deg = e - a
        if deg == 0 or deg >= n_items:
            continue
        items = indices[a:e]
        for m in range(deg):
            kept[m] = 1 if uniform(states, rs + REDRAW) >= q else 0
            mark[items[m]] = 1
        n_neg = min(negatives * deg, n_items - deg)
        draw_negatives(mark, negs, n_neg, n_items, states, rs + DRAW)
        acc += _user_step(W, V, b, Wp, bp, GW, GV, Gb, GWp, Gbp, u, items, kept[:deg],
                          negs[:n_neg], lr, reg, c, adagrad, z, dz, g)
        cnt += deg + n_neg
        for m in range(deg):
            mark[items[m]] = 0
        for m in range(n_neg):
            mark[negs[m]] = 0
    return acc, cnt


def _cdae_epoch(W, V, b, Wp, bp, GW, GV, Gb, GWp, Gbp, indptr, indices, users, states, lr, reg,
                q, negatives, adagrad, n_chunks, shuffle):
    n = users.shape[0]
    n_items = Wp.shape[0]
    H = W.shape[1]
    deg = indptr[1:] - indptr[:-1]
    max_deg = max(1, deg.max())
    max_neg = max(1, min(negatives * max_deg, n_items))
    losses = np.zeros(n_chunks)
    counts = np.zeros(n_chunks, dtype=np.int64)
    # thread-private scratch, one row per chunk (padded so that chunks share no line)
    marks = np.zeros((n_chunks, n_items + 64), dtype=np.uint8)
    kepts = np.zeros((n_chunks, max_deg + 64), dtype=np.uint8)
    negss = np.zeros((n_chunks, max_neg + 8), dtype=indices.dtype)
    rows = np.zeros((n_chunks, 3, H + 16), dtype=W.dtype)
    for t in prange(n_chunks):
        lo = (t * n) // n_chunks
        hi = ((t + 1) * n) // n_chunks
        if shuffle:
            _shuffle(users, lo, hi, states, t * STRIDE + DRAW)
        loss, cnt = run_users(W, V, b, Wp, bp, GW, GV, Gb, GWp, Gbp, indptr, indices, users, lo,
                              hi, states, t * STRIDE, lr, reg, q, negatives, adagrad, marks[t],
                              kepts[t], negss[t], rows[t, 0], rows[t, 1], rows[t, 2])
        losses[t] = loss
        counts[t] = cnt
    return losses.sum(), counts.sum()


cdae_epoch_serial, cdae_epoch_parallel = twin(_cdae_epoch, "cdae_epoch_serial",
                                              "cdae_epoch_parallel")


@kernel
def cdae_encode(W, V, b, indptr, indices, out):
    """Ranking factors of every user, uncorrupted: ``out[u] = [sigma(V_u + b + sum W_i), 1]``.

    ``out`` has shape (n_users, H + 1); the sum runs over all the user's
    training items with scale 1 (no corruption at test time).
    """
    H = W.shape[1]
    for u in range(V.shape[0]):
        for f in range(H):
            out[u, f] = V[u, f] + b[f]
        for k in range(indptr[u], indptr[u + 1]):
            i = indices[k]
            for f in range(H):
                out[u, f] += W[i, f]
        for f in range(H):
            out[u, f] = sigmoid(out[u, f])
        out[u, H] = 1.0
    return out
