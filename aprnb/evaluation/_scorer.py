"""What the ranking engine asks of a model: scores of users against items.

The engine (:mod:`aprnb.evaluation._engine`) never looks inside a model. It
takes a *scorer*, an object with

* ``n_users``, ``n_items`` (ints) and ``dtype`` (the numpy dtype of the scores);
* ``rows(users)``: the per-block user state for the int64 indices ``users``
  (anything the scorer likes: for MF the rows ``P[users]``);
* ``tile(rows, items, out)``: fill ``out``, shape ``(len(users), n)``, with the
  scores of those users against ``items`` (a ``slice`` of item indices or an
  int64 array of ``n`` of them). Scores are finite and larger is better; the
  engine marks excluded items with ``-inf``;
* ``pairs(users, items)``: the 1-D array of the scores of the pairs
  ``(users[k], items[k])`` (the sampled protocol);
* ``subset(users)``: a scorer of those users alone, renumbered ``0 ..
  len(users) - 1`` (a Ray worker scores one part of the users).

A model returns its scorer from ``model._scorer()``;
:class:`aprnb.models._base.BaseRecommender`'s default is the :class:`DotScorer`
of its factor tables. A model whose score is not a dot product (NeuMF) brings
its own, and ``evaluate``, ``recommend``, ``score`` and the ``Validation``
callback rank it with the same kernels, the same tie rule and the same
exclusions.
"""
import numpy as np

from .._validation import check_factors


def no_overflow(P, Q):
    """Return ``(P, Q)`` in a dtype in which no score ``p_u . q_i`` can overflow.

    By Cauchy-Schwarz ``|p . q| <= max|p| max|q|``. Excluded items are marked
    with -inf in the score blocks, so a real score must never reach +-inf: when
    the bound exceeds the float32 range the scores are computed in float64.
    """
    bound = float(np.sqrt(np.max(np.einsum("ij,ij->i", P, P, dtype=np.float64)))
                  * np.sqrt(np.max(np.einsum("ij,ij->i", Q, Q, dtype=np.float64))))
    if bound < np.finfo(P.dtype).max / 4:
        return P, Q
    if bound < np.finfo(np.float64).max / 4:
        return P.astype(np.float64), Q.astype(np.float64)
    raise ValueError(f"factors are so large (|p|*|q| up to {bound:.3g}) that scores overflow "
                     f"float64; the model has diverged, refit it with a smaller learning rate")


class DotScorer:
    """The scores ``p_u . q_i`` of a pair of factor tables (matrix factorisation).

    ``P``, ``Q``: checked factor tables of one dtype
    (:func:`aprnb._validation.check_factors`). The scores are computed in that
    dtype, or in float64 when float32 could overflow (:func:`no_overflow`);
    ``factor_dtype`` is the tables' own dtype, in which ``top_k`` returns them.
    """

    def __init__(self, P, Q, _checked=False):
        self.factor_dtype = P.dtype
        self.P, self.Q = (P, Q) if _checked else no_overflow(P, Q)
        self.n_users, self.n_items = P.shape[0], Q.shape[0]
        self.dtype = self.P.dtype

    def rows(self, users):
        return self.P[users]

    def tile(self, rows, items, out):
        np.matmul(rows, self.Q[items].T, out=out)

    def pairs(self, users, items):
        return np.einsum("ij,ij->i", self.P[users], self.Q[items])

    def subset(self, users):
        part = DotScorer(self.P[users], self.Q, _checked=True)
        part.factor_dtype = self.factor_dtype
        return part


def scorer_of(model):
    """The scorer of a fitted model or of a ``(user_factors, item_factors)`` pair."""
    if isinstance(model, tuple) and len(model) == 2:
        return DotScorer(*check_factors(*model))
    if hasattr(model, "fit") and hasattr(model, "get_params"):
        if getattr(model, "user_factors_", None) is None:
            raise ValueError(f"{type(model).__name__} is not fitted yet; call fit(train) first")
        if hasattr(model, "_scorer"):
            return model._scorer()
    if hasattr(model, "user_factors_") and hasattr(model, "item_factors_"):
        return DotScorer(*check_factors(model.user_factors_, model.item_factors_,
                                        type(model).__name__))
    raise TypeError(f"model must be a fitted aprnb model or a (user_factors, item_factors) "
                    f"tuple of arrays, got {type(model).__name__}")
