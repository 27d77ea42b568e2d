"""Beyond-accuracy metrics of the top-K lists: coverage, Gini, ARP, APLT and novelty.

The definitions are in the docstring of :mod:`aprnb.evaluation`. The engine
(:class:`aprnb.evaluation._engine.Ranking`) hands every block of users' sorted
top-``max(ks)`` lists to :meth:`BeyondAccuracy.block`, which writes the per-user
values (ARP, APLT, novelty at each K) into the block's rows and adds the block's
recommendation counts to a per-worker count matrix. The counts are integers, so
their sum over workers, and the coverage and Gini computed from it, do not depend
on the blocking or the thread count; the per-user values depend on the user's
list only.
"""
import numpy as np

#: Per-user beyond-accuracy metrics, in the column order of the engine.
PER_USER = ("arp", "aplt", "novelty")
#: Global beyond-accuracy metrics (one value for all evaluated users).
GLOBAL = ("coverage", "gini")
#: Share of the training interactions that the short head holds (at least).
HEAD_SHARE = 0.2


def popularity(train):
    """Training popularity: the number of training interactions of every item (int64)."""
    return np.bincount(train.indices, minlength=train.shape[1]).astype(np.int64)


def short_head(pop):
    """Boolean mask of the short-head items of the popularity vector ``pop``.

    Items sorted by popularity (descending) are accumulated until their share of
    all interactions first reaches :data:`HEAD_SHARE`; the popularity ``t`` of
    that item is the threshold and the head is every item with ``pop >= t``, so
    that items of equal popularity always share a label. The comparison is done
    in integers (``5 * cumsum >= total``). No interactions: an empty head.
    """
    total = int(pop.sum())
    if total == 0:
        return np.zeros(pop.shape, dtype=bool)
    desc = np.sort(pop)[::-1]
    reach = np.cumsum(desc) * int(round(1 / HEAD_SHARE)) >= total
    t = desc[int(np.argmax(reach))]
    return pop >= t


def novelty_of(pop, n_users):
    """Per-item novelty ``-log2(max(pop, 1) / n_users)``: an item nobody trained on
    counts as having popularity 1 (finite; the largest novelty, ``log2(n_users)``)."""
    return -np.log2(np.maximum(pop, 1) / max(n_users, 1))


def gini(counts):
    """Gini index of the recommendation ``counts`` of all items (zeros included).

    ``G = sum_i (2i - n - 1) c_(i) / (n sum c)`` with ``c_(1) <= ... <= c_(n)``;
    0 when nothing was recommended.
    """
    c = np.sort(counts).astype(np.float64)
    n = c.shape[0]
    total = c.sum()
    if n == 0 or total == 0:
        return 0.0
    w = 2.0 * np.arange(1, n + 1, dtype=np.float64) - n - 1
    return float(np.sum(w * c) / (n * total))


def beyond_names(ks):
    """Names of the per-user beyond-accuracy columns, in the engine's column order."""
    return [f"{m}@{k}" for k in ks for m in PER_USER]


class BeyondAccuracy:
    """Per-item tables and the per-block accumulation of the beyond-accuracy metrics.

    Parameters
    ----------
    train : canonical CSR matrix (n_users, n_items), the training interactions
    ks : int64 array of cut-offs, ascending
    """

    def __init__(self, train, ks):
        self.ks = ks
        self.n_items = train.shape[1]
        pop = popularity(train)
        # rows: popularity, long-tail indicator, novelty; a last column of zeros is
        # what the padding item -1 of a short list reads
        table = np.zeros((len(PER_USER), self.n_items + 1))
        table[0, :-1] = pop
        table[1, :-1] = ~short_head(pop)
        table[2, :-1] = novelty_of(pop, train.shape[0])
        self.table = table
        self.width = len(PER_USER) * len(ks)

    def new_counts(self):
        """A zeroed count matrix ``(len(ks), n_items)`` for one worker."""
        return np.zeros((len(self.ks), self.n_items), dtype=np.int64)

    def block(self, items, sizes, counts, out):
        """Account for one block of users' lists.

        ``items[b, :sizes[b]]`` is user ``b``'s list, best first (the rest is
        padding). Writes ARP, APLT and novelty at each K to ``out[b]`` (columns as
        :func:`beyond_names`; 0 for an empty list) and adds the recommendation
        counts at each K to ``counts``.
        """
        kmax = items.shape[1]
        valid = np.arange(kmax)[None, :] < sizes[:, None]
        idx = np.where(valid, items, self.n_items)          # padding reads the zero column
        # running sums along each list, left to right: a user's value is its own
        cums = np.cumsum(self.table[:, idx], axis=2)
        rows = np.arange(len(items))
        for m, k in enumerate(self.ks):
            n = np.minimum(sizes, k)
            last = cums[:, rows, np.maximum(n - 1, 0)]
            vals = np.where(n > 0, last / np.maximum(n, 1), 0.0)
            out[:, len(PER_USER) * m:len(PER_USER) * (m + 1)] = vals.T
            counts[m] += np.bincount(idx[:, :k][valid[:, :k]], minlength=self.n_items)

    def finish(self, counts, n_users):
        """``{"coverage@K": ..., "gini@K": ...}`` from the summed counts (NaN without users)."""
        res = {}
        for m, k in enumerate(self.ks):
            if n_users == 0:
                res[f"coverage@{k}"] = res[f"gini@{k}"] = float("nan")
                continue
            res[f"coverage@{k}"] = float(np.count_nonzero(counts[m]) / self.n_items)
            res[f"gini@{k}"] = gini(counts[m])
        return res
