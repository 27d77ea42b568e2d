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
from ._paired import (BOOTSTRAP_CELLS, EXACT_BELOW, PairedComparison, bootstrap_mean_ci,
                      paired, ttest_p, wilcoxon_p)
from ._seeds import SeedComparison, SeedSummary, over_seeds, paired_over_seeds

__all__ = ["paired", "over_seeds", "paired_over_seeds", "PairedComparison", "SeedSummary",
           "SeedComparison", "bootstrap_mean_ci", "wilcoxon_p", "ttest_p", "BOOTSTRAP_CELLS",
           "EXACT_BELOW"]
