r"""Vulnerability-aware adversarial training (VAT): the per-user perturbation scale.

VAT (Zhang et al., RecSys 2024) is APR whose perturbation radius differs per
user. A user the model fits well (small BPR loss) is taken as *vulnerable* and
gets a larger radius; a user it fits badly gets a smaller one. With
:math:`L_u` the user's mean clean BPR loss and :math:`\bar L` the mean of
:math:`L_u` over the users that have training triples,

.. math::

    c_u = \lambda\,\sigma\!\left(\frac{\bar L}{L_u + 10^{-9}} - 1\right) \in (0, \lambda),

and the triple ``(u, i, j)`` is perturbed by the APR closed form with radius
:math:`\epsilon\,c_u` on all three rows (``p_u``, ``q_i``, ``q_j``). A user with
the average loss gets :math:`c_u = \lambda/2` (1 with the default
:math:`\lambda = 2`, i.e. plain APR). The epoch kernel
(:func:`aprnb.kernels.epoch.run_chunk`, mode ``MODE_VAT``) reads ``c_u`` from an
array filled here once per epoch, from the parameters at the start of the
epoch; ``docs/derivations.md`` section 10 says why, and where this departs from
the official per-batch estimate.
"""
import math

import numpy as np

from ._grads import margin
from ._jit import kernel
from ._math import sigmoid

#: Added to a user's loss before dividing by it (the official code's guard).
LOSS_FLOOR = 1e-9


@kernel
def user_mean_losses(P, Q, users, items, negs, n_users):
    r"""Mean clean BPR loss of each user over the triples ``(users[k], items[k], negs[k])``.

    .. math::

        L_u = \frac{1}{|T_u|} \sum_{(u, i, j) \in T_u} \mathrm{softplus}(-p_u \cdot (q_i - q_j))

    Triples with ``negs[k] < 0`` (a user with every item) are skipped. Margins
    and sums are in float64.

    Returns
    -------
    loss : float64 array (n_users,)
        ``L_u``; 0 for users without a triple.
    count : int64 array (n_users,)
        ``|T_u|``.
    """
    loss = np.zeros(n_users)
    count = np.zeros(n_users, dtype=np.int64)
    for k in range(users.shape[0]):
        j = negs[k]
        if j < 0:
            continue
        u = users[k]
        x = margin(P, Q, u, items[k], j, 0.0)
        loss[u] += max(-x, 0.0) + math.log1p(math.exp(-abs(x)))
        count[u] += 1
    for u in range(n_users):
        if count[u] > 0:
            loss[u] /= count[u]
    return loss, count


@kernel
def vulnerability_scale(loss, count, lam, out):
    r"""Fill ``out[u]`` with the VAT scale :math:`c_u` of every user.

    .. math::

        c_u = \lambda\,\sigma\!\left(\frac{\bar L}{L_u + 10^{-9}} - 1\right), \qquad
        \bar L = \operatorname{mean}_{u:\,|T_u| > 0} L_u .

    Users without triples (``count[u] == 0``) never train; they get
    :math:`\lambda\,\sigma(0) = \lambda/2`, the average user's scale. ``out``
    may be float32 or float64 (the epoch kernel reads it in the factors' dtype).
    """
    total = 0.0
    users = 0
    for u in range(loss.shape[0]):
        if count[u] > 0:
            total += loss[u]
            users += 1
    mean = total / max(users, 1)
    for u in range(loss.shape[0]):
        z = 0.0
        if count[u] > 0:
            z = mean / (loss[u] + LOSS_FLOOR) - 1.0
        out[u] = lam * sigmoid(z)
