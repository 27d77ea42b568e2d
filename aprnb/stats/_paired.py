"""Paired comparison of two models on the same users: :func:`paired` (see :mod:`aprnb.stats`)."""
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

from .._validation import check_float, check_positive_int, check_random_state

#: Resampled values per bootstrap batch (batch size x users): 4M, about 32 MB of
#: float64 plus as much of int64 indices, whatever the number of users.
BOOTSTRAP_CELLS = 1 << 22
#: Wilcoxon uses its exact null distribution below this many users (no ties or zeros).
EXACT_BELOW = 50

_VALUES_HINT = "pass a 1-D array of per-user metric values (one number per user)"
_PER_USER_HINT = "evaluate both models with evaluate(..., per_user=True)"


def _p(p):
    return f"{p:.2g}"


@dataclass(frozen=True)
class PairedComparison:
    """Model B against model A on the same users (see :func:`paired`).

    Attributes
    ----------
    metric : str or None
        The metric's name, used in ``str()`` only.
    n : int
        Number of users (pairs).
    n_nonzero : int
        Users whose value differs between the models (the only ones Wilcoxon uses).
    mean_a, mean_b : float
        The metric of each model, averaged over the users.
    diff : float
        Mean of ``b - a`` over users (equals ``mean_b - mean_a`` up to rounding).
    relative : float
        ``diff / mean_a``; nan when ``mean_a == 0``.
    ci_low, ci_high : float
        Percentile bootstrap confidence interval of ``diff``.
    confidence : float
        Its confidence level.
    p_wilcoxon : float
        Two-sided Wilcoxon signed-rank p-value of the differences (1.0 if all are 0).
    p_ttest : float
        Two-sided paired t-test p-value (1.0 if all differences are 0).
    """

    metric: object
    n: int
    n_nonzero: int
    mean_a: float
    mean_b: float
    diff: float
    relative: float
    ci_low: float
    ci_high: float
    confidence: float
    p_wilcoxon: float
    p_ttest: float

    def __str__(self):
        head = f"{self.metric}: " if self.metric is not None else ""
        rel = "n/a" if np.isnan(self.relative) else f"{self.relative:+.1%}"
        return (f"{head}{self.mean_a:.4f} -> {self.mean_b:.4f} ({rel}), diff {self.diff:+.4f} "
                f"[{self.confidence:.0%} CI {self.ci_low:+.4f}, {self.ci_high:+.4f}], "
                f"Wilcoxon p={_p(self.p_wilcoxon)}, t-test p={_p(self.p_ttest)}, n={self.n}")


def _values(x, name):
    """``x`` as a finite 1-D float64 array, or a TypeError/ValueError saying why not."""
    if x is None or isinstance(x, (str, bytes, Mapping)):
        raise TypeError(f"{name}: got {type(x).__name__}; {_VALUES_HINT}")
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: dtype {arr.dtype} is not numeric; {_VALUES_HINT}")
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected 1 dimension, got shape {arr.shape}; {_VALUES_HINT}")
    arr = arr.astype(np.float64)
    bad = int(np.count_nonzero(~np.isfinite(arr)))
    if bad:
        raise ValueError(f"{name}: {bad} value(s) are NaN or infinite; per-user metrics are "
                         f"finite, so check how they were computed (or drop those users from "
                         f"both models' values)")
    return arr


def _per_user(results, name, metric):
    """The users and the per-user values of ``metric`` in an evaluate() result dict."""
    if "per_user" not in results or "users" not in results:
        raise ValueError(f"{name} has no per-user values (no 'per_user' or 'users' entry); "
                         f"{_PER_USER_HINT}")
    table = results["per_user"]
    if metric is None:
        raise ValueError(f"pass metric=..., one of {sorted(table)}, to compare result dicts")
    if metric not in table:
        raise ValueError(f"{name} has no per-user {metric!r} (it has {sorted(table)}); "
                         f"evaluate both models with the same k and protocol")
    users = np.asarray(results["users"])
    values = _values(table[metric], f"{name}['per_user'][{metric!r}]")
    if users.ndim != 1 or users.shape != values.shape:
        raise ValueError(f"{name}: 'users' (shape {users.shape}) and 'per_user'[{metric!r}] "
                         f"(shape {values.shape}) are not aligned; {_PER_USER_HINT}")
    return users, values


def _pair(a, b, metric):
    """The two aligned per-user value arrays of :func:`paired`."""
    if isinstance(a, Mapping) or isinstance(b, Mapping):
        if not (isinstance(a, Mapping) and isinstance(b, Mapping)):
            raise TypeError(f"a and b must be both per-user arrays or both evaluate() result "
                            f"dicts, got {type(a).__name__} and {type(b).__name__}")
        users_a, va = _per_user(a, "a", metric)
        users_b, vb = _per_user(b, "b", metric)
        if users_a.shape != users_b.shape or not np.array_equal(users_a, users_b):
            raise ValueError("a and b were evaluated on different users (their 'users' arrays "
                             "differ); a paired comparison needs both models evaluated on the "
                             "same users: use the same train/test split (and negatives)")
    else:
        va, vb = _values(a, "a"), _values(b, "b")
        if va.shape != vb.shape:
            raise ValueError(f"a has {va.size} values and b has {vb.size}; a paired "
                             f"comparison needs one value per user for each model, for the "
                             f"same users in the same order")
    if va.size < 2:
        raise ValueError(f"a paired comparison needs at least 2 users, got {va.size}")
    return va, vb


# ---------------------------------------------------------------------------------------
# paired comparison on users
# ---------------------------------------------------------------------------------------
def _mean(x, axis=-1):
    return np.mean(x, axis=axis)


def bootstrap_mean_ci(d, confidence=0.95, n_resamples=9999, random_state=0):
    """Percentile bootstrap confidence interval of the mean of ``d``.

    Parameters
    ----------
    d : numpy.ndarray
        1-D finite float array (e.g. per-user differences), at least 2 values.
    confidence : float
        Confidence level in (0, 1).
    n_resamples : int
        Bootstrap resamples.
    random_state : None, int or numpy.random.Generator
        Seed of the resampling.

    Returns
    -------
    (float, float)
        The lower and upper bound. When all values of ``d`` are equal, every resample
        has the same mean and the interval is that value at both ends (no resampling).

    Notes
    -----
    Resamples are drawn in batches of at most :data:`BOOTSTRAP_CELLS` values, so the
    memory stays bounded (about 64 MB) for any number of users. The percentile method
    is used rather than BCa: BCa's acceleration needs a jackknife over all users
    (quadratic time, hours at 100k users), and for the mean of many bounded values the
    bootstrap distribution is close to normal, where the two intervals agree.
    """
    if np.all(d == d[0]):
        return float(d[0]), float(d[0])
    batch = max(1, min(n_resamples, BOOTSTRAP_CELLS // d.size))
    res = _st.bootstrap((d,), _mean, n_resamples=n_resamples, batch=batch, vectorized=True,
                        confidence_level=confidence, method="percentile",
                        random_state=check_random_state(random_state))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def wilcoxon_p(d):
    """Two-sided Wilcoxon signed-rank p-value of the paired differences ``d``.

    Zero differences are discarded (SciPy's ``zero_method="wilcox"``): a user on whom
    both models score the same says nothing about which is better. For 0/1 metrics
    (HR) every nonzero difference is +1 or -1, and the test becomes a sign test on the
    users where the models disagree, as McNemar's test does. (``"pratt"`` and
    ``"zsplit"`` keep the zeros in the ranking; with most differences zero they mostly
    measure how many zeros there are.)

    The exact null distribution is used below :data:`EXACT_BELOW` users when there
    are no zeros and no ties among ``|d|``; otherwise the normal approximation, with
    SciPy's tie correction and a continuity correction (as R's ``wilcox.test``).
    Older SciPy versions (1.9 among them) warn when fewer than 10 differences are nonzero (the
    normal approximation is rough there); the warning is passed on.
    When every difference is zero the test is undefined; this returns 1.0 (no
    evidence of any difference) instead of raising.
    """
    nonzero = d[d != 0]
    if nonzero.size == 0:
        return 1.0
    ties = np.unique(np.abs(nonzero)).size < nonzero.size
    exact = nonzero.size == d.size and not ties and d.size < EXACT_BELOW
    res = _st.wilcoxon(d, zero_method="wilcox", correction=True,
                       method="exact" if exact else "approx")
    return float(res.pvalue)


def ttest_p(a, b):
    """Two-sided paired t-test p-value of ``b`` against ``a`` (``scipy.stats.ttest_rel``).

    When all differences are equal the t statistic is 0/0 or infinite: this returns
    1.0 if they are all zero and 0.0 otherwise, without a warning.
    """
    d = b - a
    if np.all(d == d[0]):
        return 1.0 if d[0] == 0 else 0.0
    return float(_st.ttest_rel(b, a).pvalue)


def paired(a, b, metric=None, confidence=0.95, n_resamples=9999, random_state=0):
    """Paired comparison of model B against model A on the same users.

    Parameters
    ----------
    a, b : array-like or dict
        Per-user values of one metric for A and B (1-D, equal length, same users in
        the same order), or two ``evaluate(..., per_user=True)`` results; then
        ``metric`` picks the metric and their ``"users"`` must be identical.
    metric : str, optional
        Metric name: required with result dicts, a label with arrays.
    confidence : float
        Level of the bootstrap confidence interval, in (0, 1).
    n_resamples : int
        Bootstrap resamples.
    random_state : None, int or numpy.random.Generator
        Seed of the bootstrap (the default 0 makes the interval reproducible).

    Returns
    -------
    PairedComparison
        ``str()`` gives a one-line summary.

    Raises
    ------
    TypeError
        Non-numeric values, or a dict mixed with an array.
    ValueError
        Non-finite values, lengths that differ, fewer than 2 users, result dicts
        without per-user values or evaluated on different users.

    Notes
    -----
    ``diff`` is the mean of ``b - a``; the interval is a percentile bootstrap of it
    (:func:`bootstrap_mean_ci`), ``p_wilcoxon`` and ``p_ttest`` are two-sided
    (:func:`wilcoxon_p`, :func:`ttest_p`). All three use the same differences.
    """
    va, vb = _pair(a, b, metric)
    confidence = check_float(confidence, "confidence", 0, 1, low_inclusive=False,
                             high_inclusive=False)
    n_resamples = check_positive_int(n_resamples, "n_resamples")
    rng = check_random_state(random_state)
    d = vb - va
    mean_a, mean_b, diff = float(np.mean(va)), float(np.mean(vb)), float(np.mean(d))
    low, high = bootstrap_mean_ci(d, confidence, n_resamples, rng)
    return PairedComparison(
        metric=metric, n=int(d.size), n_nonzero=int(np.count_nonzero(d)), mean_a=mean_a,
        mean_b=mean_b, diff=diff, relative=diff / mean_a if mean_a != 0 else float("nan"),
        ci_low=low, ci_high=high, confidence=confidence, p_wilcoxon=wilcoxon_p(d),
        p_ttest=ttest_p(va, vb))


# ---------------------------------------------------------------------------------------
# over training seeds
# ---------------------------------------------------------------------------------------
