r"""The BPR and APR formulas, each written once and inlined into every kernel.

Model: score :math:`y_{ui} = p_u \cdot q_i`; triple :math:`(u, i, j)` with
margin :math:`x = p_u \cdot (q_i - q_j)` and loss :math:`\ell(x) =
\mathrm{softplus}(-x)`. The per-triple steps (:mod:`aprnb.kernels.bpr`,
:mod:`aprnb.kernels.apr`), the mini-batch epoch (:mod:`aprnb.kernels.batch`)
and the whole-model attack (:mod:`aprnb.kernels.attack`) all call these
helpers, so that a sign fix happens in one place. The element helpers work on
one factor ``f`` of the three rows; the kernels loop over ``f``, which keeps
each loop simple enough to vectorise. ``docs/derivations.md`` derives them and
``aprnb.reference`` checks them against finite differences.
"""
from ._jit import inline


@inline
def margin(P, Q, u, i, j, x):
    r"""Return ``x`` plus the BPR margin of the triple ``(u, i, j)``.

    .. math::

        x + p_u \cdot (q_i - q_j)

    Pass ``x = 0`` of the accumulation width: ``P.dtype.type(0.0)`` to sum in the
    factors' dtype, ``0.0`` to sum in float64.
    """
    for f in range(P.shape[1]):
        x += P[u, f] * (Q[i, f] - Q[j, f])
    return x


@inline
def bpr_loss_grad(pu, qi, qj, s):
    r"""Element ``f`` of the gradients of the BPR loss of one triple.

    With :math:`s = \sigma(-x) = -\partial\ell/\partial x`:

    .. math::

        \partial\ell/\partial p_u = -s\,(q_i - q_j), \quad
        \partial\ell/\partial q_i = -s\,p_u, \quad
        \partial\ell/\partial q_j = +s\,p_u.

    The attack and the mini-batch adversary sum these over triples.
    """
    return -(s * (qi - qj)), -(s * pu), s * pu


@inline
def add_bpr_loss_grad(P, Q, u, i, j, s, GU, ru, GI, ri, rj):
    r"""Add the BPR loss gradients of the triple ``(u, i, j)`` to accumulator rows.

    ``GU[ru] += dl/dp_u``, ``GI[ri] += dl/dq_i``, ``GI[rj] += dl/dq_j``
    (:func:`bpr_loss_grad`, summed over the triples that share a row: the
    whole-model attack accumulates into ``(n_users, d)``/``(n_items, d)``
    tables, the mini-batch adversary into the batch's row slots).
    """
    for f in range(P.shape[1]):
        gp, gi, gj = bpr_loss_grad(P[u, f], Q[i, f], Q[j, f], s)
        GU[ru, f] += gp
        GI[ri, f] += gi
        GI[rj, f] += gj


@inline
def bpr_grad(pu, qi, qj, s, reg):
    r"""Element ``f`` of the regularised BPR gradients of ``p_u, q_i, q_j``.

    :func:`bpr_loss_grad` plus the gradient of the regulariser
    :math:`\tfrac{\lambda}{2}(\|p_u\|^2 + \|q_i\|^2 + \|q_j\|^2)`:

    .. math::

        g_{p_u} = \lambda p_u - s\,(q_i - q_j), \quad
        g_{q_i} = \lambda q_i - s\,p_u, \quad
        g_{q_j} = \lambda q_j + s\,p_u.
    """
    gp, gi, gj = bpr_loss_grad(pu, qi, qj, s)
    return reg * pu + gp, reg * qi + gi, reg * qj + gj


@inline
def apr_grad(pu, qi, qj, pt, dd, s, a, reg):
    r"""Element ``f`` of the APR gradients with the perturbation held constant.

    The objective of a triple is :math:`\ell(x) + \lambda_{adv}\,\ell(x_{adv})`
    plus the regulariser, with :math:`\tilde p = p_u + \Delta_u` (``pt``),
    :math:`\tilde d = (q_i + \Delta_i) - (q_j + \Delta_j)` (``dd``),
    :math:`x_{adv} = \tilde p \cdot \tilde d` and
    :math:`a = \lambda_{adv}\,\sigma(-x_{adv})`:

    .. math::

        g_{p_u} = \lambda p_u - s\,(q_i - q_j) - a\,\tilde d, \quad
        g_{q_i} = \lambda q_i - s\,p_u - a\,\tilde p, \quad
        g_{q_j} = \lambda q_j + s\,p_u + a\,\tilde p,

    i.e. :func:`bpr_grad` plus the adversarial term; ``a = 0`` is BPR.
    """
    gp, gi, gj = bpr_grad(pu, qi, qj, s, reg)
    return gp - a * dd, gi - a * pt, gj + a * pt


@inline
def perturbed(pu, qi, qj, du, di, dj):
    r"""Element ``f`` of the perturbed user row and item difference.

    .. math::

        \tilde p = p_u + \Delta_u, \quad
        \tilde d = (q_i - q_j) + (\Delta_i - \Delta_j)

    so that :math:`x_{adv} = \sum_f \tilde p_f\,\tilde d_f`.
    """
    return pu + du, (qi - qj) + (di - dj)
