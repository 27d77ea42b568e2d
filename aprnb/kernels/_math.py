"""Scalar helpers shared by the kernels: stable sigmoid/softplus and guarded norms.

Every function here is inlined with the flag set of :mod:`aprnb.kernels._jit`,
which has no ``nnan``/``ninf``, so that NaN and infinities propagate (and are
caught by the per-epoch finiteness check) instead of being optimised away.
"""
import math

from ._intrinsics import sqrt
from ._jit import inline

#: Floor under a squared norm before the square root, as TensorFlow's
#: ``l2_normalize`` does (``x / sqrt(max(sum x^2, 1e-12))``). A zero vector
#: therefore normalises to zero instead of NaN.
NORM_FLOOR = 1e-12


@inline
def sigmoid(x):
    r"""Logistic function :math:`\sigma(x) = 1 / (1 + e^{-x})`, overflow-free.

    For ``x < 0`` it evaluates :math:`e^{x} / (1 + e^{x})` so that ``exp`` never
    sees a large positive argument.
    """
    z = math.exp(-abs(x))          # e^{-x} for x >= 0, e^{x} for x < 0
    # a select rather than a branch (see ``bpr_terms``); same values as
    # 1 / (1 + e^{-x}) for x >= 0 and e^{x} / (1 + e^{x}) for x < 0
    num = 1.0 if x >= 0 else z
    return num / (1.0 + z)


@inline
def softplus(x):
    r"""Softplus :math:`\log(1 + e^{x}) = \max(x, 0) + \log(1 + e^{-|x|})`.

    The BPR loss of a triple with margin ``x`` is ``softplus(-x)``.
    """
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


@inline
def bpr_terms(x):
    r"""One ``exp`` for both the gradient scale and the loss of margin ``x``.

    Returns ``(s, m, e)`` with ``s = sigma(-x)``, ``m = max(-x, 0)`` and
    ``e = exp(-|x|)``, so that the loss is ``softplus(-x) = m + log1p(e)``. The
    epoch kernels sum ``m`` and multiply the factors ``1 + e`` (each in (1, 2])
    over a group of triples, taking one ``log`` per group instead of one
    ``log1p`` per triple.
    """
    e = math.exp(-abs(x))
    # sigma(-x) = e / (1 + e) for x >= 0 and 1 / (1 + e) for x < 0; a select,
    # not a branch: early in training the sign of x is a coin flip, and a
    # mispredicted branch would also discard the prefetching work in flight.
    num = e if x >= 0 else 1.0
    s = num / (1.0 + e)
    return s, max(-x, 0.0), e


@inline
def guarded_inv_norm(sq):
    """Return ``1 / sqrt(max(sq, NORM_FLOOR))`` for a squared norm ``sq``."""
    return 1.0 / sqrt(max(sq, NORM_FLOOR))


@inline
def in_sorted(a, lo, hi, x):
    """True when ``x`` occurs in the sorted slice ``a[lo:hi]``."""
    end = hi
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo < end and a[lo] == x
