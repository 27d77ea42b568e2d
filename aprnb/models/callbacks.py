"""Callbacks of ``fit``: validation, early stopping, and plain functions.

``fit(train, init=None, callback=None)`` takes one callback or a list of them,
called in order after every epoch. A callback is either

* a plain function ``f(epoch, stats)`` (``stats``: a copy of the epoch's
  dict); returning ``False`` stops training after this epoch, or
* a :class:`Callback` object, which also sees the training state: it is told
  when the fit starts (and may check its arguments against the training
  matrix then, before any epoch runs), after each epoch (it may add entries to
  ``stats``, which go to ``history_``, or stop training), and when the fit ends.

Example::

    val = Validation(test, k=20, protocol="loo")
    stop = EarlyStopping("ndcg@20", patience=3)     # restores the best epoch
    model.fit(train, callback=[val, stop])
    model.history_[-1]["ndcg@20"], stop.best_epoch
"""
import numpy as np

from .._provenance import overlap
from .._validation import (check_bool, check_float, check_interactions, check_k_bound,
                           check_ks, check_positive_int)
from ..evaluation._checks import check_negatives, check_overlap, check_protocol, metric_names
from ..evaluation._engine import Ranking
from ..evaluation._scorer import DotScorer


class Callback:
    """Base class: override any of the three hooks (each does nothing here)."""

    def on_fit_start(self, model, train, run, callbacks):
        """Before the first epoch. ``train``: the canonical training matrix; ``run``:
        the training state (factors ``run.P``/``run.Q``, or for a model that is not
        MF its scorer ``run.scorer()``; ``run.threads``, ``run.total_epochs``);
        ``callbacks``: the whole list, in call order."""

    def on_epoch_end(self, epoch, stats, run):
        """After epoch ``epoch`` (1-based). Return ``False`` to stop training."""

    def on_fit_end(self, run):
        """After the last epoch (also after an early stop)."""


class _Function(Callback):
    """A plain ``f(epoch, stats)`` function as a callback."""

    def __init__(self, fn):
        self.fn = fn

    def on_epoch_end(self, epoch, stats, run):
        return self.fn(epoch, dict(stats))


def as_callbacks(callback):
    """A list of :class:`Callback` from None, one callback, or a list of them."""
    if callback is None:
        return []
    items = list(callback) if isinstance(callback, (list, tuple)) else [callback]
    out = []
    for cb in items:
        if isinstance(cb, Callback):
            out.append(cb)
        elif callable(cb):
            out.append(_Function(cb))
        else:
            raise TypeError(f"callback must be callable(epoch, stats), a Callback (e.g. "
                            f"Validation, EarlyStopping) or a list of them, got "
                            f"{type(cb).__name__}")
    return out


class Validation(Callback):
    """Score the model on held-out interactions every ``every`` epochs.

    Parameters
    ----------
    test : sparse matrix (n_users, n_items)
        Held-out interactions, disjoint from the training matrix.
    k : int or list of int, default 20
    protocol : {"holdout", "loo", "sampled"}, optional
        As in :func:`aprnb.evaluate`; None means "sampled" when ``negatives``
        are given, else "holdout".
    negatives : int array (n_users, n_neg), optional
        For the sampled protocol.
    metric : str, optional
        The metric written to ``stats``/``history_`` (default ``ndcg@{max k}``).
    every : int, default 1
        Score after every ``every``-th epoch and after the last one.

    The test matrix, the protocol and the users are checked and prepared once,
    when the fit starts; each scoring then runs the evaluation engine directly.
    """

    def __init__(self, test, k=20, protocol=None, negatives=None, metric=None, every=1):
        self.test, self.k, self.protocol = test, k, protocol
        self.negatives, self.metric, self.every = negatives, metric, every
        self._task = None

    def on_fit_start(self, model, train, run, callbacks):
        shape = train.shape
        test = check_interactions(self.test, "Validation test", shape=shape, allow_empty=True)
        ks = tuple(check_k_bound(kk, shape[1], "Validation k") for kk in
                   check_ks(self.k, "Validation k"))
        protocol = check_protocol(self.protocol, self.negatives, shape, "Validation protocol",
                                  "Validation negatives")
        self.name = self.metric or f"ndcg@{ks[-1]}"
        valid = metric_names(protocol, ks)
        if self.name not in valid:
            raise ValueError(f"Validation metric={self.name!r} is not computed by protocol "
                             f"{protocol!r} with k={list(ks)}; choose one of {valid}")
        check_positive_int(self.every, "Validation every")
        if protocol != "sampled":
            check_overlap(overlap(train, test), test.nnz)
        negatives = check_negatives(self.negatives, shape) if protocol == "sampled" else None
        self._task = Ranking(train, test, protocol, np.asarray(ks, dtype=np.int64),
                             np.arange(shape[0], dtype=np.int64), negatives)
        self._last = run.total_epochs

    def on_epoch_end(self, epoch, stats, run):
        if epoch % self.every == 0 or epoch == self._last:
            scorer = run.scorer() if hasattr(run, "scorer") else DotScorer(run.P, run.Q)
            stats[self.name] = self._task.run(scorer, run.threads)[self.name]


class EarlyStopping(Callback):
    """Stop when a validation metric has not improved for ``patience`` scorings.

    Parameters
    ----------
    metric : str, optional
        A metric that a :class:`Validation` earlier in the callback list writes
        (default: that of the last such Validation).
    patience : int, default 5
        Scorings without an improvement of more than ``min_delta`` before stopping.
    min_delta : float, default 0.0
    mode : {"max", "min"}, default "max"
    restore_best : bool, default True
        When training ends, put back the parameters of the best-scoring epoch
        (the factors and the optimizer state). ``history_`` keeps every epoch.

    Attributes (after ``fit``): ``best_epoch``, ``best_score``, ``stopped_epoch``
    (None when training ran to the end).
    """

    def __init__(self, metric=None, patience=5, min_delta=0.0, mode="max", restore_best=True):
        self.metric, self.patience, self.min_delta = metric, patience, min_delta
        self.mode, self.restore_best = mode, restore_best

    def on_fit_start(self, model, train, run, callbacks):
        check_positive_int(self.patience, "EarlyStopping patience")
        check_float(self.min_delta, "EarlyStopping min_delta", 0.0)
        check_bool(self.restore_best, "EarlyStopping restore_best")
        if self.mode not in ("max", "min"):
            raise ValueError(f"EarlyStopping mode must be 'max' or 'min', got {self.mode!r}")
        before = callbacks[:callbacks.index(self)]
        vals = [cb for cb in before if isinstance(cb, Validation)]
        names = [cb.name for cb in vals]
        self.name = self.metric or (names[-1] if names else None)
        if self.name not in names:
            raise ValueError(f"EarlyStopping watches {self.name!r}, which no Validation "
                             f"before it in the callback list computes (they give {names}); "
                             f"pass callback=[Validation(test, ...), EarlyStopping(...)]")
        self.best_epoch, self.best_score, self.stopped_epoch = None, None, None
        self._best, self._wait = None, 0

    def _better(self, score):
        if self.best_score is None:
            return True
        gain = score - self.best_score if self.mode == "max" else self.best_score - score
        return gain > self.min_delta

    def on_epoch_end(self, epoch, stats, run):
        if self.name not in stats:
            return None
        score = stats[self.name]
        if self._better(score):
            self.best_epoch, self.best_score, self._wait = epoch, score, 0
            if self.restore_best:
                self._best = run.snapshot()
            return None
        self._wait += 1
        if self._wait >= self.patience:
            self.stopped_epoch = epoch
            return False
        return None

    def on_fit_end(self, run):
        if self.restore_best and self._best is not None:
            run.restore(self._best)
