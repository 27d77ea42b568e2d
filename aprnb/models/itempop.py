"""ItemPop: rank items by training popularity (the paper's simplest baseline)."""
import numpy as np

from .._provenance import record
from .._validation import check_dtype
from ._base import BaseRecommender, training_data


class ItemPop(BaseRecommender):
    """Recommend the most popular training items to everyone.

    Fits ``user_factors_`` of ones (n_users, 1) and ``item_factors_`` holding the
    item counts (n_items, 1), so that ``score = p_u . q_i`` is the popularity and
    the shared evaluation and ``recommend`` engine applies unchanged. Ties are
    broken by the lower item index.
    """

    def __init__(self, dtype=np.float64):
        self.dtype = dtype

    def fit(self, train, init=None, callback=None, validation=None):
        """Count interactions per item (``train``: a Dataset or a matrix, as for
        :meth:`aprnb.BPR.fit`). ``init``/``callback``/``validation`` are ignored."""
        dt = check_dtype(self.dtype)
        X, data = training_data(train)
        counts = np.asarray(X.sum(axis=0), dtype=dt).reshape(-1, 1)
        self.user_factors_ = np.ones((X.shape[0], 1), dtype=dt)
        self.item_factors_ = np.ascontiguousarray(counts)
        self.history_ = []
        self._set_provenance(X, record(X, data))
        return self
