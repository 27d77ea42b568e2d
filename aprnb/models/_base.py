"""The estimator surface every model shares: parameters, scores, recommend, save.

A model class adds ``__init__`` (parameters only) and ``fit``; everything a
fitted model offers is here. Training lives in :mod:`aprnb.models._factor` and
:mod:`aprnb.models._training`.
"""
import inspect
import json

import numpy as np

from .._modelfile import EXTRA, write_model
from .._threads import check_n_threads
from .._validation import (check_bool, check_choice, check_dtype, check_factors, check_float,
                           check_interactions, check_k_bound, check_positive_int,
                           check_random_state)
from ..data.dataset import Dataset
from ..evaluation import top_k
from ..evaluation._checks import check_users
from ..evaluation._scorer import DotScorer


def training_data(train):
    """``(canonical CSR, Dataset or None)`` of the ``train`` argument of ``fit``."""
    if isinstance(train, Dataset):
        return check_interactions(train.train, "train"), train
    return check_interactions(train, "train"), None


def _lookup(ids, raw, what):
    """Indices of raw ids ``raw`` (a scalar or a sequence) in the id map ``ids``."""
    if ids is None:
        raise ValueError(f"this model does not know the raw {what} ids (it was fitted on a "
                         f"bare matrix); pass {what} indices, or fit on a Dataset from "
                         f"aprnb.data.open_dataset")
    table = {str(v): k for k, v in enumerate(ids.tolist())}
    vals = [raw] if np.ndim(raw) == 0 else list(raw)
    idx = [table.get(str(v.item() if isinstance(v, np.generic) else v)) for v in vals]
    unknown = [v for v, i in zip(vals, idx) if i is None]
    if unknown:
        raise ValueError(f"unknown {what} id(s) {unknown[:5]!r}{' ...' if len(unknown) > 5 else ''}"
                         f"; the model knows {len(ids)} {what}s (model.{what}_ids_)")
    return np.asarray(idx, dtype=np.int64)


class NotFittedError(ValueError, AttributeError):
    """The model must be fitted (or loaded) before this call."""


class BaseRecommender:
    """scikit-learn style parameter handling and the predict/recommend/save surface.

    A fitted (or loaded) model knows what it was trained on: ``train_`` (its
    training interactions, canonical CSR), ``provenance_`` (a dict: the training
    matrix's fingerprint, the split specification, the warm start, the aprnb
    version) and, when fitted on a :class:`~aprnb.data.Dataset`, ``user_ids_`` and
    ``item_ids_`` (the raw id of each index).
    """

    train_ = None
    provenance_ = None
    user_ids_ = None
    item_ids_ = None

    #: Names of the fitted arrays a model file keeps beyond the two ranking tables (the
    #: trained weights of models that are more than their factors): each name ``x``
    #: is saved from the attribute ``x_`` and :func:`aprnb.load` sets it back, then
    #: calls :meth:`_check_loaded`.
    _extra_members = ()

    @classmethod
    def _width(cls, params):
        """The width of ``user_factors_``/``item_factors_`` of a model with ``params``
        (None: any); :func:`aprnb.load` checks a file against it."""
        return params.get("factors")

    def _check_loaded(self, path):
        """Called by :func:`aprnb.load` once every attribute is set: raise
        ``ValueError(f"{path}: ...")`` when the extra members do not fit together."""

    def _set_provenance(self, X, prov):
        self.train_ = X
        self.provenance_, self.user_ids_, self.item_ids_ = prov

    def get_params(self, deep=True):
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {n: getattr(self, n) for n in names}

    def set_params(self, **params):
        valid = self.get_params()
        for k, v in params.items():
            if k not in valid:
                raise ValueError(f"{type(self).__name__} has no parameter {k!r}; valid "
                                 f"parameters are {sorted(valid)}")
            setattr(self, k, v)
        return self

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- parameters -----------------------------------------------------------------
    def _check_common(self):
        """Check the settings the trained models share: ``optimizer`` and
        ``initial_accumulator`` (when the model has them), ``n_threads``,
        ``n_slices`` (when set), ``random_state``, ``dtype`` and ``show_progress``."""
        if hasattr(self, "optimizer"):
            check_choice(self.optimizer, "optimizer", ("sgd", "adagrad"))
        if hasattr(self, "initial_accumulator"):
            check_float(self.initial_accumulator, "initial_accumulator", 0.0,
                        low_inclusive=False)
        check_n_threads(self.n_threads)
        if getattr(self, "n_slices", None) is not None:
            check_n_threads(self.n_slices, "n_slices")
        check_random_state(self.random_state)
        check_dtype(self.dtype)
        check_bool(self.show_progress, "show_progress")

    # -- fitted state ---------------------------------------------------------------
    def _check_fitted(self):
        if getattr(self, "user_factors_", None) is None:
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call "
                                 f"fit(train) or aprnb.load(path) first")

    @property
    def n_users_(self):
        self._check_fitted()
        return self.user_factors_.shape[0]

    @property
    def n_items_(self):
        self._check_fitted()
        return self.item_factors_.shape[0]

    def _scorer(self):
        """The model as the ranking engine sees it (:mod:`aprnb.evaluation._scorer`):
        here the dot products of the factor tables; a model that is not MF overrides it."""
        return DotScorer(*check_factors(self.user_factors_, self.item_factors_,
                                        type(self).__name__))

    def score(self, users, items=None):
        """The model's scores of ``users`` (rows) against ``items`` (columns; all items when
        None), in the factors' dtype; for MF ``p_u . q_i``."""
        self._check_fitted()
        users = check_users(users, self.n_users_)
        cols = slice(0, self.n_items_) if items is None else check_users(items, self.n_items_,
                                                                         "items")
        scorer = self._scorer()
        out = np.empty((len(users), self.n_items_ if items is None else len(cols)),
                       dtype=scorer.dtype)
        scorer.tile(scorer.rows(users), cols, out)
        return out.astype(self.user_factors_.dtype, copy=False)

    def user_index(self, raw):
        """Indices of raw user ids (as in the data files); ValueError for unknown ids."""
        self._check_fitted()
        return _lookup(self.user_ids_, raw, "user")

    def item_index(self, raw):
        """Indices of raw item ids (as in the data files); ValueError for unknown ids."""
        self._check_fitted()
        return _lookup(self.item_ids_, raw, "item")

    def recommend(self, users, k=10, exclude="train", n_threads=None, raw_ids=False):
        """Top-``k`` items for ``users``, best first, never an item they trained on.

        Parameters
        ----------
        users : int or array of int
            User indices, or raw user ids with ``raw_ids=True``.
        k : int
        exclude : "train", sparse matrix (n_users, n_items) or None
            Items to leave out per user. "train" (default) leaves out the model's
            own training interactions, which a fitted or loaded model keeps
            (``train_``); a model that does not know them refuses, rather than
            silently recommending what the user already has. ``None`` excludes
            nothing.
        n_threads : int, optional
            Defaults to the model's ``n_threads``.
        raw_ids : bool
            Take raw user ids and return raw item ids (the model must know its id
            maps: fit it on a Dataset from :func:`aprnb.data.open_dataset`).

        Returns
        -------
        items : ndarray, shape (n, k)
            Item indices as int64 (-1 where a user has fewer than ``k``
            candidates), or raw item ids with ``raw_ids`` (padding: -1 for integer
            ids, "" for string ids).
        scores : ndarray, shape (n, k)
        """
        self._check_fitted()
        if check_bool(raw_ids, "raw_ids"):
            users = self.user_index(users)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"k must be a single positive int, got {k!r}")
        k = check_positive_int(int(k), "k")
        check_k_bound(k, self.n_items_)
        if n_threads is None:
            n_threads = getattr(self, "n_threads", None)
        items, scores = top_k(self._scorer(), None, users, k,
                              exclude=self._exclusions(exclude), n_threads=n_threads)
        return (self._raw_items(items, k) if raw_ids else items), scores

    def _exclusions(self, exclude):
        """The matrix of items to leave out for ``recommend(exclude=...)``."""
        if not isinstance(exclude, str):
            return exclude
        if exclude != "train":
            raise ValueError(f"exclude must be 'train', a sparse matrix or None, got "
                             f"{exclude!r}")
        if getattr(self, "train_", None) is None:
            raise ValueError(f"this {type(self).__name__} does not know its training "
                             f"interactions (it was loaded from an older file or given "
                             f"factors by hand); pass exclude=<training matrix>, or "
                             f"exclude=None to include already-seen items")
        return self.train_

    def _raw_items(self, items, k):
        """Item indices to raw item ids (padding: -1 for integer ids, "" for strings)."""
        if self.item_ids_ is None:
            _lookup(None, [], "item")
        raw = self.item_ids_[np.maximum(items, 0)]
        pad = -1 if raw.dtype.kind in "iu" else ""
        if np.any(items < 0) and np.any(self.item_ids_ == pad):
            raise ValueError(f"some users have fewer than k={k} candidates, and the "
                             f"padding {pad!r} is also a real item id; pass a smaller k "
                             f"or raw_ids=False")
        raw[items < 0] = pad
        return raw

    def save(self, path):
        """Save to ``path`` as ``.npz`` (atomic: written to a temporary file, then renamed).

        The file holds plain arrays and JSON, no pickle (:mod:`aprnb._modelfile`);
        :func:`aprnb.load` reads it back.
        """
        self._check_fitted()
        history = getattr(self, "history_", [])
        json.dumps(history)          # a TypeError here leaves no file behind
        write_model(path, type(self).__name__, self.get_params(), history, self._arrays())
        return path

    def _arrays(self):
        """The model's members of the model file (see :mod:`aprnb._modelfile`)."""
        arrays = {"user_factors": np.ascontiguousarray(self.user_factors_),
                  "item_factors": np.ascontiguousarray(self.item_factors_)}
        state = getattr(self, "optimizer_state_", None)
        if state is not None:
            arrays["opt_users"], arrays["opt_items"] = state
        if self.train_ is not None:
            arrays["train_indptr"] = self.train_.indptr
            arrays["train_indices"] = self.train_.indices
            arrays["provenance"] = np.array(json.dumps(self.provenance_))
        for name in self._extra_members:
            arrays[EXTRA + name] = np.asarray(getattr(self, name + "_"))
        for name in ("user_ids", "item_ids"):
            ids = getattr(self, name + "_", None)
            if ids is not None:
                arrays[name] = np.asarray(ids)
        return arrays
