"""Scalar functions of the references: sigmoid, softplus, L2 normalisation."""
import numpy as np

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
