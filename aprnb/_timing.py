"""Timing samples and their summary: median and spread, and one timed call.

Shared by ``aprnb bench`` (:mod:`aprnb.benchmark`) and the repository's ``bench/``
scripts.
"""
import statistics
import time
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Stats:
    """Median and spread of a list of samples (seconds unless said otherwise)."""
    samples: list = field(default_factory=list)

    def __post_init__(self):
        self.samples = [float(x) for x in self.samples]

    def add(self, *xs):
        self.samples.extend(float(x) for x in xs)
        return self

    @property
    def n(self):
        return len(self.samples)

    @property
    def median(self):
        return statistics.median(self.samples) if self.samples else float("nan")

    @property
    def min(self):
        return min(self.samples) if self.samples else float("nan")

    @property
    def max(self):
        return max(self.samples) if self.samples else float("nan")

    def summary(self):
        """``{"median", "min", "max"}`` of the samples (NaN without any)."""
        return {"median": self.median, "min": self.min, "max": self.max}

    def per(self, work):
        """The rates ``work / sample``, as :class:`Stats` (e.g. triples per second)."""
        return Stats([work / s if s > 0 else float("inf") for s in self.samples])

    def quartiles(self):
        if len(self.samples) < 2:
            return self.median, self.median
        q = np.percentile(self.samples, [25, 75])
        return float(q[0]), float(q[1])

    def fmt_ms(self, digits=1):
        """``"123.4 [120.1-130.0]"``: median and min-max in milliseconds."""
        if not self.samples:
            return "n/a"
        return (f"{1e3 * self.median:.{digits}f} "
                f"[{1e3 * self.min:.{digits}f}-{1e3 * self.max:.{digits}f}]")

    def fmt_s(self, digits=2):
        if not self.samples:
            return "n/a"
        return f"{self.median:.{digits}f} [{self.min:.{digits}f}-{self.max:.{digits}f}]"


def time_call(fn, *args, **kwargs):
    """``(seconds, result)`` of one call, wall clock."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out
