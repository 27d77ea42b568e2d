"""Paired statistics for comparing two models, and summaries over training seeds.

The gains this library studies (APR over BPR) are a few percent, about the size of
the seed-to-seed noise, so a claim needs more than two means side by side:

* :func:`paired` compares model B with model A user by user, on one split: the mean
  difference with a bootstrap confidence interval, a Wilcoxon signed-rank test and a
  paired t-test. Pairing removes the variation between users (some users are easy
  for every model), which is most of the variance of a per-user metric.
* :func:`over_seeds` summarises one arm trained with several seeds (mean, sd, range).
* :func:`paired_over_seeds` compares two arms trained with the same seeds, seed by
  seed: the per-seed relative gains, how many seeds B wins, a paired t-test.

Per-user values come from ``evaluate(..., per_user=True)``: a dict with ``"users"``
(the evaluated user indices) and ``"per_user"`` (metric name -> one value per user,
aligned with ``"users"``); plain arrays work as well.

Choices, in short (details in :func:`paired`): a percentile bootstrap of the mean
difference, in bounded batches; Wilcoxon with zero differences discarded (zero
method ``"wilcox"``), exact below 50 users without ties or zeros, else the normal
approximation with tie and continuity corrections; p = 1 when every difference is 0.
Only NumPy and SciPy are used.
"""
import numbers
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

from ._validation import check_float, check_positive_int, check_random_state

#: Resampled values per bootstrap batch (batch size x users): 4M, about 32 MB of
#: float64 plus as much of int64 indices, whatever the number of users.
BOOTSTRAP_CELLS = 1 << 22
#: Wilcoxon uses its exact null distribution below this many users (no ties or zeros).
EXACT_BELOW = 50

_VALUES_HINT = "pass a 1-D array of per-user metric values (one number per user)"
_PER_USER_HINT = "evaluate both models with evaluate(..., per_user=True)"


# ---------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------
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


@dataclass(frozen=True)
class SeedSummary:
    """One metric of one arm over training seeds (see :func:`over_seeds`).

    Attributes
    ----------
    n : int
        Number of seeds.
    mean, sd : float
        Mean and sample standard deviation (``ddof=1``; nan when ``n == 1``).
    min, max : float
        Smallest and largest value.
    values : tuple of float
        The per-seed values, in the order given.
    """

    n: int
    mean: float
    sd: float
    min: float
    max: float
    values: tuple

    def __str__(self):
        spread = "" if self.n < 2 else f" ± {self.sd:.4f}"
        return f"{self.mean:.4f}{spread} [{self.min:.4f}, {self.max:.4f}] (n={self.n})"


@dataclass(frozen=True)
class SeedComparison:
    """Arm B against arm A, seed by seed (see :func:`paired_over_seeds`).

    Attributes
    ----------
    metric : str
        The metric compared.
    n : int
        Number of seeds.
    values_a, values_b : tuple of float
        The metric of each arm, one per seed.
    gains : tuple of float
        Per-seed relative gains ``b / a - 1`` (nan where ``a == 0``).
    mean_gain, min_gain, max_gain : float
        Mean, smallest and largest of ``gains``.
    n_positive : int
        Seeds on which B beats A (``b > a``).
    p_ttest : float
        Two-sided paired t-test over seeds (nan for one seed; 1.0 if B equals A on
        every seed).
    """

    metric: str
    n: int
    values_a: tuple
    values_b: tuple
    gains: tuple
    mean_gain: float
    min_gain: float
    max_gain: float
    n_positive: int
    p_ttest: float

    def __str__(self):
        seeds = "seed" if self.n == 1 else "seeds"
        return (f"{self.metric}: {self.mean_gain:+.1%} mean gain ({self.min_gain:+.1%} to "
                f"{self.max_gain:+.1%}) over {self.n} {seeds}, {self.n_positive}/{self.n} "
                f"positive, t-test p={_p(self.p_ttest)}")


# ---------------------------------------------------------------------------------------
# input
# ---------------------------------------------------------------------------------------
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
def _is_metric(value):
    return isinstance(value, (float, np.floating))


def _check_runs(runs, name):
    if isinstance(runs, (str, bytes, Mapping)) or not isinstance(runs, (list, tuple)):
        raise TypeError(f"{name} must be a list with one evaluate() result per seed, "
                        f"got {type(runs).__name__}")
    if not runs:
        raise ValueError(f"{name} is empty; pass one evaluate() result per seed")
    return list(runs)


def _finite(value, where):
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{where} is {v}; every run must have finite metrics")
    return v


def over_seeds(runs):
    """Summarise each metric over training seeds.

    Parameters
    ----------
    runs : list of dict
        One result per seed, e.g. ``evaluate()`` results: metric name -> float.
        Entries that are not floats (``n_users``, ``users``, ``per_user``) are ignored.

    Returns
    -------
    dict
        Metric name -> :class:`SeedSummary` (mean, ``ddof=1`` sd, min, max, values),
        in the order of the first run.

    Raises
    ------
    ValueError
        No runs, runs with different metrics, or a non-finite metric.
    """
    runs = _check_runs(runs, "runs")
    tables = []
    for i, run in enumerate(runs):
        if not isinstance(run, Mapping):
            raise TypeError(f"runs[{i}] is {type(run).__name__}; pass evaluate() result dicts")
        tables.append({k: _finite(v, f"runs[{i}][{k!r}]") for k, v in run.items()
                       if _is_metric(v)})
    keys = list(tables[0])
    for i, table in enumerate(tables[1:], start=1):
        if set(table) != set(keys):
            missing, extra = sorted(set(keys) - set(table)), sorted(set(table) - set(keys))
            raise ValueError(f"runs[{i}] has different metrics from runs[0] (missing {missing}, "
                             f"extra {extra}); evaluate every seed with the same k and protocol")
    out = {}
    for key in keys:
        v = np.array([t[key] for t in tables])
        out[key] = SeedSummary(n=v.size, mean=float(v.mean()),
                               sd=float(v.std(ddof=1)) if v.size > 1 else float("nan"),
                               min=float(v.min()), max=float(v.max()),
                               values=tuple(float(x) for x in v))
    return out


def _seed_values(runs, metric, name):
    """One float per seed: ``run[metric]`` of each result dict (or the number itself)."""
    runs = _check_runs(runs, name)
    out = []
    for i, run in enumerate(runs):
        if isinstance(run, Mapping):
            if metric not in run:
                raise ValueError(f"{name}[{i}] has no {metric!r}; it has {sorted(run)}")
            run = run[metric]
        if isinstance(run, bool) or not isinstance(run, numbers.Real):
            raise TypeError(f"{name}[{i}]: expected an evaluate() result dict or a number, "
                            f"got {type(run).__name__}")
        out.append(_finite(run, f"{name}[{i}][{metric!r}]"))
    return np.array(out)


def paired_over_seeds(runs_a, runs_b, metric):
    """Compare arm B with arm A seed by seed (both trained with the same seeds).

    Parameters
    ----------
    runs_a, runs_b : list of dict or list of float
        One result per seed, in the same seed order in both lists: ``evaluate()``
        result dicts (``metric`` is read from each) or the metric values themselves.
    metric : str
        The metric compared.

    Returns
    -------
    SeedComparison
        Per-seed relative gains ``b / a - 1``, their mean, min and max, the number of
        seeds where ``b > a`` and a two-sided paired t-test over seeds
        (``scipy.stats.ttest_rel``; nan for a single seed).

    Notes
    -----
    The mean gain is the mean of the per-seed gains, not the gain of the means.
    Seeds are the replication unit here: the t-test asks whether B's advantage is
    larger than its spread across training runs.
    """
    a = _seed_values(runs_a, metric, "runs_a")
    b = _seed_values(runs_b, metric, "runs_b")
    if a.size != b.size:
        raise ValueError(f"runs_a has {a.size} seeds and runs_b has {b.size}; pass one "
                         f"result per seed for both arms, trained with the same seeds")
    with np.errstate(divide="ignore", invalid="ignore"):
        gains = np.where(a != 0, b / np.where(a != 0, a, 1.0) - 1.0, np.nan)
    return SeedComparison(
        metric=metric, n=int(a.size), values_a=tuple(a.tolist()), values_b=tuple(b.tolist()),
        gains=tuple(gains.tolist()), mean_gain=float(np.mean(gains)),
        min_gain=float(np.min(gains)), max_gain=float(np.max(gains)),
        n_positive=int(np.sum(b > a)), p_ttest=ttest_p(a, b) if a.size > 1 else float("nan"))
