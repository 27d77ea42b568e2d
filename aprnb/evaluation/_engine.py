"""The ranking engine: scores users in blocks and runs the top-K and metric kernels.

Everything here takes *checked* inputs: canonical CSR matrices
(:func:`aprnb._validation.check_interactions`), int64 user indices, a protocol
from :data:`PROTOCOLS` and a resolved thread count. :func:`aprnb.evaluate` checks
its arguments once and then calls :class:`Ranking`; so does the validation of
``fit`` (:class:`aprnb.models.callbacks.Validation`), which prepares one
``Ranking`` before the first epoch and reuses it every epoch.

A model is seen through its *scorer* (:mod:`aprnb.evaluation._scorer`): for
matrix factorisation the scores of a tile are ``P[block] @ Q[tile].T``, one
BLAS call; other models (NeuMF) fill the tile their own way.

Users are processed in blocks. For top-K and the holdout metrics the scores of a
block are computed one cache-sized tile of items at a time, and a Numba kernel
excludes the training items and feeds each user's top-K heap while the tile is still
in cache; after the last tile the heaps are sorted and the metrics computed.
Leave-one-out needs every score of a user to rank the held-out item, so it scores a block
against all items (about 64 MB) at once. The full ``n_users x n_items`` score matrix
is never built. With the beyond-accuracy metrics (:mod:`aprnb.evaluation._beyond`)
the sorted heaps of "holdout" are reused, and "loo" runs the same top-K kernels once
more over the block's scores already in memory (about as costly as the holdout
selection).

Threads: blocks are shared out among ``n_threads`` Python threads, each running
its own BLAS calls (BLAS limited to one thread) and GIL-free kernels. Letting
BLAS and Numba each start their own threads instead made the two pools fight
over the cores, and two threads were slower than one.
"""
import copy

import numpy as np
import scipy.sparse as sp

from .._threads import numba_threads, run_tasks, single_threaded_blas
from ..kernels.topk import (holdout_finish, loo_block, push_tile, sampled_block, sampled_scores,
                            topk_finish)
from ._beyond import BeyondAccuracy, beyond_names
from ._checks import metric_names
from ._scorer import DotScorer

DEFAULT_BLOCK_BYTES = 64 * 2**20
#: Users per block for the tiled top-K (holdout metrics and ``recommend``).
TILE_ROWS = 1024
#: Bytes of one tile of scores in the tiled top-K: small enough to stay in cache.
TILE_BYTES = 8 * 2**20


def block_rows(n_items, itemsize, block_size, n_rows, n_threads=1, default=None):
    """Users per block: ``block_size``, or the default (``default`` users, else about
    DEFAULT_BLOCK_BYTES of scores) cut so that every worker gets a block."""
    if block_size is None:
        block_size = default or max(16, DEFAULT_BLOCK_BYTES // max(1, n_items * itemsize))
        block_size = min(block_size, -(-n_rows // n_threads))
    return int(max(1, min(block_size, n_rows)))


def _n_workers(n_threads, n_rows, rows):
    """Workers that get at least one of the ``ceil(n_rows / rows)`` blocks."""
    return max(1, min(n_threads, -(-n_rows // rows)))


def tile_buffers(n_items, dtype, block_size, n_rows, n_threads):
    """``(users per block, one score buffer per worker)`` for :func:`tiled_heaps`."""
    itemsize = np.dtype(dtype).itemsize
    rows = block_rows(n_items, itemsize, block_size, n_rows, n_threads, default=TILE_ROWS)
    cols = int(min(n_items, max(1, TILE_BYTES // (rows * itemsize))))
    return rows, [np.empty(rows * cols, dtype=dtype)
                  for _ in range(_n_workers(n_threads, n_rows, rows))]


def tiled_heaps(scorer, users, ex_indptr, ex_indices, k, buf):
    """Top-``k`` heaps of ``users`` (excluded items left out), one item tile at a time.

    Each tile of scores (for MF ``P[users] @ Q[lo:hi].T``) is sized (``buf``) to
    stay in the CPU cache while ``push_tile`` excludes and selects from it, instead of a row of
    scores for every item going out to memory and back. Returns the unsorted heaps
    ``(scores, items, sizes)`` for ``topk_finish``/``holdout_finish``.
    """
    n = len(users)
    rows = scorer.rows(users)
    hs = np.full((n, max(k, 1)), -np.inf, dtype=scorer.dtype)
    hi = np.full((n, max(k, 1)), -1, dtype=np.int64)
    sizes = np.zeros(n, dtype=np.int64)
    ex_pos = ex_indptr[users].copy()
    cols = max(1, buf.size // max(1, n))
    for lo in range(0, scorer.n_items, cols):
        hi_ = min(scorer.n_items, lo + cols)
        S = buf.reshape(-1)[:n * (hi_ - lo)].reshape(n, hi_ - lo)
        scorer.tile(rows, slice(lo, hi_), S)
        push_tile(S, users, lo, ex_indptr, ex_indices, ex_pos, k, hs, hi, sizes)
    return hs, hi, sizes


def _csr64(M):
    return M.indptr.astype(np.int64), M.indices.astype(np.int64)


def _rows(indptr, indices, rows):
    """The CSR rows ``rows`` (in that order) of ``(indptr, indices)``, as a new pair."""
    lens = indptr[rows + 1] - indptr[rows]
    sub = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lens, out=sub[1:])
    take = np.repeat(indptr[rows] - sub[:-1], lens) + np.arange(sub[-1], dtype=np.int64)
    return sub, indices[take]


class Ranking:
    """One evaluation task, prepared once: who is ranked, against what, by which rule.

    Parameters
    ----------
    train, test : canonical CSR matrices of one shape (checked by the caller)
    protocol : "holdout", "loo" or "sampled"
    ks : int64 array of cut-offs, ascending
    users : int64 array of distinct user indices to consider
    negatives : int64 array (n_users, n_neg) for "sampled", else None
    exclude_train : bool
    block_size : int or None (users per block)
    beyond_accuracy : bool
        Also compute the beyond-accuracy metrics of the top-``max(ks)`` lists
        ("holdout" and "loo" only; see :mod:`aprnb.evaluation._beyond`).

    Users without a test item (and, for "sampled", without a listed negative)
    are left out; :attr:`users` holds those evaluated, in the order given.
    """

    def __init__(self, train, test, protocol, ks, users, negatives=None, exclude_train=True,
                 block_size=None, beyond_accuracy=False):
        self.protocol, self.ks, self.block_size = protocol, ks, block_size
        self.shape = test.shape
        sel = users[np.diff(test.indptr)[users] > 0]
        ex = train if exclude_train else sp.csr_matrix(test.shape, dtype=np.float32)
        self.ex_indptr, self.ex_indices = _csr64(ex)
        self.te_indptr, self.te_indices = _csr64(test)
        self.negatives = negatives
        if protocol in ("loo", "sampled"):
            if np.any(np.diff(test.indptr)[sel] > 1):
                raise ValueError(f"protocol={protocol!r} needs at most one test item per "
                                 f"user; use protocol='holdout' for several, or "
                                 f"leave_one_out() to split")
            self.pos_items = test.indices[test.indptr[sel]].astype(np.int64)
        if protocol == "sampled":
            has = np.any(negatives[sel] >= 0, axis=1)
            sel, self.pos_items = sel[has], self.pos_items[has]
        self.users = sel
        self.names = metric_names(protocol, ks)
        self.n_acc = len(self.names)
        self.beyond = None
        if beyond_accuracy:
            assert protocol != "sampled", "beyond-accuracy metrics need a full ranking"
            self.beyond = BeyondAccuracy(train, ks)
            self.names = self.names + beyond_names(ks)
        self.width = len(self.names)

    def per_user(self, scorer, n_threads):
        """Metric values per evaluated user, shape ``(len(self.users), width)``; the
        columns are named by :attr:`names`."""
        return self.score(scorer, n_threads)[0]

    def score(self, scorer, n_threads):
        """``(per-user values, recommendation counts or None)``, see :meth:`per_user`."""
        out = np.zeros((len(self.users), self.width))
        if self.protocol == "sampled":
            self._sampled(scorer, n_threads, out)
            return out, None
        n = max(1, len(self.users))
        dtype = scorer.dtype
        if self.protocol == "holdout":
            rows, bufs = tile_buffers(self.shape[1], dtype, self.block_size, n, n_threads)
        else:
            rows = block_rows(self.shape[1], dtype.itemsize, self.block_size, n, n_threads)
            bufs = [np.empty((rows, self.shape[1]), dtype=dtype)
                    for _ in range(_n_workers(n_threads, n, rows))]
        work = self._holdout if self.protocol == "holdout" else self._loo
        counts = ([self.beyond.new_counts() for _ in bufs] if self.beyond is not None
                  else [None] * len(bufs))

        def block(t, w):
            lo = t * rows
            work(scorer, lo, self.users[lo:lo + rows], bufs[w], out, counts[w])

        with single_threaded_blas():
            run_tasks(n_threads, -(-len(self.users) // rows), block)
        return out, (sum(counts) if self.beyond is not None else None)

    def _sampled(self, scorer, n_threads, out):
        """The sampled protocol: each user's positive against the user's listed negatives."""
        if isinstance(scorer, DotScorer):       # one parallel kernel, scores and ranks
            with numba_threads(n_threads):
                sampled_block(scorer.P, scorer.Q, self.users, self.pos_items, self.negatives,
                              self.ks, out)
            return
        negs = self.negatives[self.users]
        valid = negs >= 0
        pos = scorer.pairs(self.users, self.pos_items)
        neg = np.zeros(negs.shape, dtype=pos.dtype)
        neg[valid] = scorer.pairs(np.repeat(self.users, valid.sum(axis=1)), negs[valid])
        sampled_scores(pos, neg, valid, self.ks, out)

    def _holdout(self, scorer, lo, b, buf, out, counts):
        hs, hi, sizes = tiled_heaps(scorer, b, self.ex_indptr, self.ex_indices,
                                    int(self.ks[-1]), buf)
        o = np.zeros((len(b), len(self.ks), 4))
        holdout_finish(b, hs, hi, sizes, self.te_indptr, self.te_indices, self.ks, o)
        out[lo:lo + len(b), :self.n_acc] = o.reshape(len(b), -1)
        if self.beyond is not None:          # holdout_finish has sorted the heaps
            self.beyond.block(hi, sizes, counts, out[lo:lo + len(b), self.n_acc:])

    def _loo(self, scorer, lo, b, buf, out, counts):
        S = buf[:len(b)]
        scorer.tile(scorer.rows(b), slice(0, scorer.n_items), S)
        loo_block(S, b, self.ex_indptr, self.ex_indices, self.pos_items[lo:lo + len(b)],
                  self.ks, out[lo:lo + len(b)])
        if self.beyond is not None:
            # the same scores, not scored again: the top-K lists by the kernels' tie rule
            items, sizes = select_rows(S, b, self.ex_indptr, self.ex_indices, int(self.ks[-1]))
            self.beyond.block(items, sizes, counts, out[lo:lo + len(b), self.n_acc:])

    def run(self, scorer, n_threads, per_user=False):
        """Mean metrics over the evaluated users (a dict, see :func:`aprnb.evaluate`);
        with ``per_user`` also ``"users"`` and the ``"per_user"`` values."""
        return self.finish(*self.score(scorer, n_threads), per_user)

    def part(self, lo, hi):
        """The task for the evaluated users ``users[lo:hi]`` alone, as a worker needs it.

        The users are renumbered ``0 .. hi-lo-1`` and only their rows of the exclusion
        and test matrices (and of the negatives) are kept, so the part travels without
        the rest; score it with ``scorer.subset(users[lo:hi])``. A user's
        values depend only on the user's own rows, so they equal the whole task's.
        :attr:`beyond` is left out (None): it holds per-item tables, shared by every
        part; set it back before scoring.
        """
        b = self.users[lo:hi]
        t = copy.copy(self)
        t.users = np.arange(len(b), dtype=np.int64)
        t.shape = (len(b), self.shape[1])
        t.ex_indptr, t.ex_indices = _rows(self.ex_indptr, self.ex_indices, b)
        t.te_indptr, t.te_indices = _rows(self.te_indptr, self.te_indices, b)
        if self.protocol in ("loo", "sampled"):
            t.pos_items = self.pos_items[lo:hi]
        if self.negatives is not None:
            t.negatives = self.negatives[b]
        t.beyond = None
        return t

    def finish(self, out, counts, per_user=False):
        """The result dict of :meth:`run` from the per-user values ``out`` (rows in the
        order of :attr:`users`) and the summed recommendation ``counts``."""
        res = summarise(out, self.names, per_user)
        if self.beyond is not None:
            res.update(self.beyond.finish(counts, len(out)))
        res["n_users"] = int(len(out))
        if per_user:
            res["users"] = self.users.copy()
        return res


def select_rows(S, users, ex_indptr, ex_indices, k):
    """Top-``k`` lists ``(items, sizes)`` of the rows of a full score block ``S``.

    ``S[b]`` holds the scores of ``users[b]`` for every item; the excluded items
    are left out and ties broken as by :func:`top_k` (the same kernels, with the
    whole row as one tile). ``items[b, :sizes[b]]`` is best first, -1 after.
    """
    n = len(users)
    hs = np.full((n, k), -np.inf, dtype=S.dtype)
    hi = np.full((n, k), -1, dtype=np.int64)
    sizes = np.zeros(n, dtype=np.int64)
    push_tile(S, users, 0, ex_indptr, ex_indices, ex_indptr[users].copy(), k, hs, hi, sizes)
    items = np.empty((n, k), dtype=np.int64)
    topk_finish(hs, hi, sizes, items, np.empty((n, k), dtype=S.dtype))
    return items, sizes


def summarise(out, names, per_user=False):
    """Per-user metric columns ``out`` (named ``names``) to the dict of their means.

    Each mean is ``np.mean`` of the column as a contiguous float64 array: exactly
    what ``np.mean(res["per_user"][name])`` gives (NaN without users). With
    ``per_user`` those arrays are returned under ``"per_user"``.
    """
    res, per = {}, {}
    for j, name in enumerate(names):
        col = np.ascontiguousarray(out[:, j], dtype=np.float64)
        res[name] = float(np.mean(col)) if len(col) else float("nan")
        per[name] = col
    if per_user:
        res["per_user"] = per
    return res


def top_k(scorer, users, k, ex_indptr, ex_indices, n_threads, block_size=None):
    """Top ``k`` items per user, best first, leaving out the CSR rows ``ex_*``.

    Checked inputs (see the module docstring). Returns ``(items, scores)`` of
    shape ``(len(users), k)``; rows with fewer than ``k`` candidates are padded
    with item -1 and score -inf. The scores are in the scorer's ``factor_dtype``
    when it has one (MF: the factors' dtype, even when they were scored in float64).
    """
    out_dtype = getattr(scorer, "factor_dtype", scorer.dtype)
    items = np.empty((len(users), k), dtype=np.int64)
    scores = np.empty((len(users), k), dtype=scorer.dtype)
    rows, bufs = tile_buffers(scorer.n_items, scorer.dtype, block_size, max(1, len(users)),
                              n_threads)

    def block(t, w):
        lo = t * rows
        b = users[lo:lo + rows]
        hs, hi, sizes = tiled_heaps(scorer, b, ex_indptr, ex_indices, k, bufs[w])
        topk_finish(hs, hi, sizes, items[lo:lo + rows], scores[lo:lo + rows])

    with single_threaded_blas():
        run_tasks(n_threads, -(-len(users) // rows), block)
    return items, scores.astype(out_dtype, copy=False)
