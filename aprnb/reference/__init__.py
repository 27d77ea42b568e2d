r"""Slow, plain-NumPy reference of every quantity the Numba kernels and metrics compute.

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

Modules
-------
``_math``    sigmoid, softplus, l2_normalize (and ``NORM_FLOOR``)
``bpr``      one BPR triple: loss, gradients, one SGD/Adagrad step
``apr``      one APR triple: perturbation, loss, gradients, one step
``cdae``     CDAE: one user's forward pass, loss, gradients, step; ranking factors
``vat``      VAT: per-user losses, the vulnerability scale, one VAT triple
``batch``    many triples: the summed dataset gradient, the mini-batch APR step
``_step``    the SGD/Adagrad row update shared by the steps
``metrics``  top-K under the tie rule and the holdout, leave-one-out and sampled
             metrics, one user at a time (compared with :mod:`aprnb.evaluation`)

Every name is importable from here: ``from aprnb.reference import apr_step_ref``.
"""
from ._math import NORM_FLOOR, l2_normalize, sigmoid, softplus
from .apr import apr_grads, apr_loss, apr_perturbation, apr_step_ref
from .batch import (apr_batch_step_ref, batch_bpr_row_gradients, batch_perturbation,
                    dataset_bpr_gradient)
from .bpr import bpr_grads, bpr_loss, bpr_step_ref
from .cdae import cdae_factors_ref, cdae_grads, cdae_hidden, cdae_loss, cdae_step_ref
from .metrics import (as_csr, blocked_holdout, candidates, items_of, loo_rank, naive_holdout,
                      naive_loo, naive_sampled, naive_top_k, pairs, rank_metrics, ranked,
                      user_scores)
from .vat import (user_losses_ref, vat_grads, vat_loss, vat_perturbation, vat_step_ref,
                  vulnerability_scale_ref)

__all__ = [
    "NORM_FLOOR", "sigmoid", "softplus", "l2_normalize", "bpr_loss", "bpr_grads",
    "apr_perturbation", "apr_loss", "apr_grads", "bpr_step_ref", "apr_step_ref",
    "batch_bpr_row_gradients", "batch_perturbation", "apr_batch_step_ref",
    "dataset_bpr_gradient",
    "user_losses_ref", "vulnerability_scale_ref", "vat_perturbation", "vat_loss", "vat_grads",
    "vat_step_ref",
    "cdae_hidden", "cdae_loss", "cdae_grads", "cdae_step_ref", "cdae_factors_ref",
    # metrics and ranking (formerly tests/naive.py)
    "as_csr", "items_of", "pairs", "user_scores", "candidates", "ranked", "naive_top_k",
    "naive_holdout", "loo_rank", "rank_metrics", "naive_loo", "naive_sampled",
    "blocked_holdout",
]
