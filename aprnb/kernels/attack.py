r"""Whole-model perturbations for the robustness study.

The adversary of the APR paper perturbs *every* embedding row at once by the
gradient of the BPR loss summed over the training triples (one sampled
negative per positive), L2-normalised per row, times ``eps``:

.. math::

    G_P[u] = \sum_{(u,i,j)} -\sigma(-x_{uij})(q_i - q_j), \quad
    G_Q[i] = \sum_{(u,i,j)} -\sigma(-x_{uij})\,p_u, \quad
    G_Q[j] = \sum_{(u,i,j)} +\sigma(-x_{uij})\,p_u

(no regulariser), then :math:`\Delta = \epsilon\,G/\sqrt{\max(\|G\|^2, 10^{-12})}`
per row, the guard of TensorFlow's ``l2_normalize`` that the official code uses:
zero where a row's gradient is zero, shorter than ``eps`` where it is tiny.
"""
import math

from ._grads import add_bpr_loss_grad, margin
from ._jit import kernel
from ._math import guarded_inv_norm, sigmoid


@kernel
def dataset_bpr_gradient(P, Q, users, items, negs, GP, GQ):
    """Add the gradient of the summed BPR loss over the triples to ``GP``/``GQ``.

    Returns the summed loss. Serial: rows that recur accumulate exactly.
    """
    total = 0.0
    for k in range(users.shape[0]):
        u = users[k]
        i = items[k]
        j = negs[k]
        if j < 0:
            continue
        x = margin(P, Q, u, i, j, 0.0)            # summed in float64
        total += max(-x, 0.0) + math.log1p(math.exp(-abs(x)))
        add_bpr_loss_grad(P, Q, u, i, j, sigmoid(-x), GP, u, GQ, i, j)
    return total


@kernel
def normalize_rows(G, eps, out):
    """``out[r] = eps * G[r] / sqrt(max(||G[r]||^2, 1e-12))``, TensorFlow's ``l2_normalize``.

    The official guard: a row whose gradient is zero gets zero, and one whose
    gradient norm is below ``1e-6`` gets less than ``eps``.
    """
    for r in range(G.shape[0]):
        sq = 0.0
        for f in range(G.shape[1]):
            sq += G[r, f] * G[r, f]
        c = eps * guarded_inv_norm(sq)
        for f in range(G.shape[1]):
            out[r, f] = c * G[r, f]


@kernel
def project_rows(D, eps):
    """Project every row of ``D`` onto the L2 ball of radius ``eps`` in place."""
    for r in range(D.shape[0]):
        sq = 0.0
        for f in range(D.shape[1]):
            sq += D[r, f] * D[r, f]
        if sq > eps * eps:
            c = eps / math.sqrt(sq)
            for f in range(D.shape[1]):
                D[r, f] *= c
