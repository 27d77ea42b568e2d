"""ItemPop: rank items by training popularity (the paper's simplest baseline)."""
import time

import numpy as np

from .._provenance import record
from .._validation import check_dtype
from ._base import BaseRecommender, training_data
from .callbacks import as_callbacks


class _Fixed:
    """The training state of a model fitted in one step (what callbacks see)."""

    total_epochs = 1
    threads = 1

    def __init__(self, P, Q):
        self.P, self.Q = P, Q

    def snapshot(self):
        return (self.P.copy(), self.Q.copy())

    def restore(self, snap):
        np.copyto(self.P, snap[0])
        np.copyto(self.Q, snap[1])


class ItemPop(BaseRecommender):
    """Recommend the most popular training items to everyone.

    Fits ``user_factors_`` of ones (n_users, 1) and ``item_factors_`` holding the
    item counts (n_items, 1), so that ``score = p_u . q_i`` is the popularity and
    the shared evaluation and ``recommend`` engine applies unchanged. Ties are
    broken by the lower item index.
    """

    def __init__(self, dtype=np.float64):
        self.dtype = dtype

    def fit(self, train, init=None, callback=None):
        """Count interactions per item.

        ``train``: a Dataset or a matrix, as for :meth:`aprnb.BPR.fit`. There is
        nothing to warm-start, so ``init`` must be None. Fitting is one step: the
        callbacks (as for :meth:`aprnb.BPR.fit`, e.g. a
        :class:`~aprnb.models.callbacks.Validation`) run once, as after epoch 1,
        and ``history_`` then holds that one entry (else it is empty: no epochs).
        """
        dt = check_dtype(self.dtype)
        if init is not None:
            raise TypeError(f"ItemPop counts items and has nothing to warm-start; pass "
                            f"init=None, got {type(init).__name__}")
        X, data = training_data(train)
        callbacks = as_callbacks(callback)
        t0 = time.perf_counter()
        counts = np.asarray(X.sum(axis=0), dtype=dt).reshape(-1, 1)
        run = _Fixed(np.ones((X.shape[0], 1), dtype=dt), np.ascontiguousarray(counts))
        stats = {"epoch": 1, "seconds": time.perf_counter() - t0}
        for cb in callbacks:
            cb.on_fit_start(self, X, run, callbacks)
        for cb in callbacks:
            if cb.on_epoch_end(1, stats, run) is False:
                break
        for cb in callbacks:
            cb.on_fit_end(run)
        self.user_factors_, self.item_factors_ = run.P, run.Q
        self.history_ = [stats] if callbacks else []
        self._set_provenance(X, record(X, data))
        return self
