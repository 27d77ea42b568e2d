"""ItemPop: rank items by training popularity (the paper's simplest baseline)."""
import numpy as np

from .._validation import check_interactions
from ._base import BaseRecommender


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
        """Count interactions per item. ``init``/``callback``/``validation`` are ignored."""
        from .._validation import check_dtype
        dt = check_dtype(self.dtype)
        X = check_interactions(train, "train")
        counts = np.asarray(X.sum(axis=0), dtype=dt).reshape(-1, 1)
        self.user_factors_ = np.ones((X.shape[0], 1), dtype=dt)
        self.item_factors_ = np.ascontiguousarray(counts)
        self.history_ = []
        return self
