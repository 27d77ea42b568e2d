"""Summaries and paired comparisons over training seeds (see :mod:`aprnb.stats`)."""
import numbers
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ._paired import _p, ttest_p


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
