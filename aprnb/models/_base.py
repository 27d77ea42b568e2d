"""Shared machinery of the factor models: parameters, fitting loop, recommend, save.

The epoch kernels live in :mod:`aprnb.kernels`; this module validates inputs,
allocates and seeds, loops over epochs, checks for divergence and reports.
"""
import inspect
import time
import warnings

import numpy as np
from tqdm.auto import tqdm

from .._threads import check_n_threads, numba_threads
from .._validation import (check_bool, check_choice, check_dtype, check_factors, check_float,
                           check_interactions, check_k_bound, check_ks, check_positive_int,
                           check_random_state)
from ..kernels import all_finite, epoch_parallel, epoch_serial
from ..kernels._rng import seed_states, shuffle_pairs
from ..kernels.sampling import build_filter
from .._memory import huge_page_aligned
from .._provenance import record
from ..data.dataset import Dataset


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


class DivergenceError(FloatingPointError):
    """Training produced NaN or infinite factors; the model keeps its last good epoch."""


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

    def score(self, users, items=None):
        """Scores ``p_u . q_i`` for the given users (all items when ``items`` is None)."""
        from ..evaluation import _check_users
        self._check_fitted()
        users = _check_users(users, self.n_users_)
        Q = self.item_factors_
        if items is not None:
            items = _check_users(items, self.n_items_, "items")
            Q = Q[items]
        return self.user_factors_[users] @ Q.T

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
        from ..evaluation import top_k
        self._check_fitted()
        if check_bool(raw_ids, "raw_ids"):
            users = self.user_index(users)
        if isinstance(exclude, str):
            if exclude != "train":
                raise ValueError(f"exclude must be 'train', a sparse matrix or None, got "
                                 f"{exclude!r}")
            if getattr(self, "train_", None) is None:
                raise ValueError(f"this {type(self).__name__} does not know its training "
                                 f"interactions (it was loaded from an older file or given "
                                 f"factors by hand); pass exclude=<training matrix>, or "
                                 f"exclude=None to include already-seen items")
            exclude = self.train_
        if n_threads is None:
            n_threads = getattr(self, "n_threads", None)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"k must be a single positive int, got {k!r}")
        k = check_positive_int(int(k), "k")
        check_k_bound(k, self.n_items_)
        items, scores = top_k(self.user_factors_, self.item_factors_, users, k,
                              exclude=exclude, n_threads=n_threads)
        if raw_ids:
            if self.item_ids_ is None:
                _lookup(None, [], "item")
            raw = self.item_ids_[np.maximum(items, 0)]
            pad = -1 if raw.dtype.kind in "iu" else ""
            if np.any(items < 0) and np.any(self.item_ids_ == pad):
                raise ValueError(f"some users have fewer than k={k} candidates, and the "
                                 f"padding {pad!r} is also a real item id; pass a smaller k "
                                 f"or raw_ids=False")
            raw[items < 0] = pad
            items = raw
        return items, scores

    def save(self, path):
        """Save to ``path`` as ``.npz`` (atomic: written to a temporary file, then renamed)."""
        from ..io import save_model
        self._check_fitted()
        save_model(self, path)
        return path


class FactorModel(BaseRecommender):
    """Matrix factorisation trained with per-triple SGD or Adagrad (BPR family)."""

    _mode = 0  # kernels.MODE_BPR

    # -- parameter checks -------------------------------------------------------------
    def _validate_params(self):
        check_positive_int(self.factors, "factors")
        check_float(self.learning_rate, "learning_rate", 0.0, low_inclusive=False)
        check_float(self.reg, "reg", 0.0)
        check_positive_int(self.epochs, "epochs", 0)
        check_choice(self.optimizer, "optimizer", ("sgd", "adagrad"))
        check_float(self.init_std, "init_std", 0.0)
        check_n_threads(self.n_threads)
        check_random_state(self.random_state)
        check_dtype(self.dtype)
        if not isinstance(self.show_progress, bool):
            raise TypeError(f"show_progress must be True or False, got {self.show_progress!r}")
        check_float(self.initial_accumulator, "initial_accumulator", 0.0, low_inclusive=False)

    def _kernel_args(self, dt):
        """``(eps, reg_adv, mode)`` for the epoch kernel; APR overrides."""
        return dt(0.0), dt(0.0), self._mode

    # -- initialisation ---------------------------------------------------------------
    def _initial_factors(self, init, shape, rng, dt):
        if init is None:
            if self.init_std == 0:
                raise ValueError("init_std=0 starts every factor at zero, where every BPR "
                                 "gradient is exactly zero: nothing would train. Use a "
                                 "positive init_std (the paper's 0.01), or warm-start with "
                                 "init=")
            P = (rng.standard_normal((shape[0], self.factors)) * self.init_std).astype(dt)
            Q = (rng.standard_normal((shape[1], self.factors)) * self.init_std).astype(dt)
            return P, Q, None
        if isinstance(init, BaseRecommender):
            init._check_fitted()
            P0, Q0 = init.user_factors_, init.item_factors_
            state = getattr(init, "optimizer_state_", None)
        elif isinstance(init, tuple) and len(init) == 2:
            P0, Q0 = init
            state = None
        else:
            raise TypeError(f"init must be None, a fitted aprnb model or a (user_factors, "
                            f"item_factors) tuple, got {type(init).__name__}")
        P0, Q0 = check_factors(P0, Q0, "init")
        if P0.shape != (shape[0], self.factors) or Q0.shape != (shape[1], self.factors):
            raise ValueError(f"init factors have shapes {P0.shape} and {Q0.shape}, but train "
                             f"{shape} with factors={self.factors} needs "
                             f"{(shape[0], self.factors)} and {(shape[1], self.factors)}")
        return np.array(P0, dtype=dt, order="C"), np.array(Q0, dtype=dt, order="C"), state

    # -- fit ----------------------------------------------------------------------------
    def fit(self, train, init=None, callback=None, validation=None, validation_k=20,
            validation_protocol=None, validation_metric=None, validation_every=1,
            validation_negatives=None):
        """Fit the model on a binary interaction matrix.

        Parameters
        ----------
        train : Dataset, sparse matrix or dense array, shape (n_users, n_items)
            Nonzero entries are interactions. Any scipy.sparse format is accepted.
            With a :class:`~aprnb.data.Dataset` (from
            :func:`aprnb.data.open_dataset`) the model trains on ``train.train``
            and records the split specification and the id maps.
        init : fitted model or (user_factors, item_factors), optional
            Warm start. The factors are copied; ``init`` is never modified.
        callback : callable(epoch, stats) -> bool or None, optional
            Called after every epoch with a dict (loss, seconds, metric); return
            ``False`` to stop early.
        validation : sparse matrix, optional
            Held-out interactions to score every ``validation_every`` epochs under
            ``validation_protocol`` ("holdout", "loo", or "sampled" with
            ``validation_negatives``; None means "sampled" when
            ``validation_negatives`` are given, else "holdout"); the metric
            (``validation_metric``, default
            ``ndcg@{validation_k}``) goes to ``history_``.

        Returns
        -------
        self
        """
        from ..evaluation import check_protocol, metric_names
        self._validate_params()
        dt = check_dtype(self.dtype)
        X, data = training_data(train)
        shape = X.shape
        if validation is not None:
            validation = check_interactions(validation, "validation", shape=shape,
                                            allow_empty=True)
            vk = tuple(check_k_bound(kk, shape[1], "validation_k")
                       for kk in check_ks(validation_k, "validation_k"))
            validation_protocol = check_protocol(validation_protocol, validation_negatives,
                                                 shape, "validation_protocol",
                                                 "validation_negatives")
            metric = validation_metric or f"ndcg@{vk[-1]}"
            valid = metric_names(validation_protocol, vk)
            if metric not in valid:
                raise ValueError(f"validation_metric={metric!r} is not computed by protocol "
                                 f"{validation_protocol!r} with k={list(vk)}; choose one of "
                                 f"{valid}")
            check_positive_int(validation_every, "validation_every")
        elif validation_negatives is not None:
            raise ValueError("validation_negatives without validation=; pass the held-out "
                             "matrix as validation=")
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable(epoch, stats), got {type(callback)}")
        batch = getattr(self, "batch_size", 1)
        if batch > X.nnz:
            raise ValueError(f"batch_size={batch} exceeds the {X.nnz} training pairs of an "
                             f"epoch; pass batch_size <= {X.nnz} (1 for per-triple updates)")
        rng = check_random_state(self.random_state)
        P, Q, state = self._initial_factors(init, shape, rng, dt)
        prov = record(X, data, init)
        GP, GQ = self._optimizer_state(state, P, Q, dt)
        users, items = self._positives(X)
        filt = huge_page_aligned(build_filter(X.indptr, X.indices, X.shape[1]))
        P, Q = huge_page_aligned(P), huge_page_aligned(Q)
        if self.optimizer == "adagrad":
            GP, GQ = huge_page_aligned(GP), huge_page_aligned(GQ)
        n_threads = check_n_threads(self.n_threads)
        states = seed_states(rng, max(1, n_threads))
        kernel = self._select_kernel(n_threads)
        adagrad = self.optimizer == "adagrad"
        lr, reg = dt(self.learning_rate), dt(self.reg)
        history = []
        good = (P.copy(), Q.copy(), GP.copy(), GQ.copy())

        def commit(p, q, gp, gq):
            self.user_factors_, self.item_factors_ = p, q
            self.optimizer_state_ = (gp, gq) if self.optimizer == "adagrad" else None
            self.history_ = history
            self._set_provenance(X, prov)

        bar = tqdm(total=self._total_epochs(), disable=not self.show_progress,
                   desc=type(self).__name__, unit="epoch", leave=False)
        try:
            with numba_threads(n_threads):
                for epoch in range(self._total_epochs()):
                    eps, reg_adv, mode = self._kernel_args_at(epoch, dt)
                    if adagrad and self._phase_start(epoch) and self.reset_optimizer:
                        GP.fill(self.initial_accumulator)
                        GQ.fill(self.initial_accumulator)
                    t0 = time.perf_counter()
                    if epoch == 0 and n_threads > 1:   # after this, chunks reshuffle
                        shuffle_pairs(users, items, states, 0)
                    loss, count = kernel(P, Q, GP, GQ, filt, X.indptr, X.indices, users,
                                         items, states, lr, reg, eps, reg_adv, mode,
                                         adagrad, n_threads, shuffle=epoch > 0 or n_threads == 1)
                    seconds = time.perf_counter() - t0
                    if not (np.isfinite(loss) and all_finite(P) and all_finite(Q)):
                        commit(*good)
                        raise DivergenceError(
                            f"{type(self).__name__}: training diverged at epoch {epoch + 1} "
                            f"(NaN or inf in the factors); the model keeps epoch {epoch}. "
                            f"Use a smaller learning_rate (now {self.learning_rate}) or a "
                            f"larger reg")
                    stats = {"epoch": epoch + 1, "loss": loss / max(1, count),
                             "seconds": seconds, "mode": "bpr" if mode == 0 else "apr"}
                    if validation is not None and ((epoch + 1) % validation_every == 0
                                                   or epoch + 1 == self._total_epochs()):
                        from ..evaluation import evaluate
                        res = evaluate((P, Q), X, validation, k=vk,
                                       protocol=validation_protocol, n_threads=n_threads,
                                       negatives=validation_negatives)
                        stats[metric] = res[metric]
                    history.append(stats)
                    for a, b in zip(good, (P, Q, GP, GQ)):
                        np.copyto(a, b)
                    bar.update(1)
                    bar.set_postfix(loss=f"{stats['loss']:.4f}")
                    if callback is not None and callback(epoch + 1, dict(stats)) is False:
                        break
        except KeyboardInterrupt:
            commit(*good)
            bar.close()
            warnings.warn(f"{type(self).__name__}.fit interrupted; the model holds the "
                          f"{len(history)} completed epoch(s)", RuntimeWarning, stacklevel=2)
            raise
        bar.close()
        commit(P, Q, GP, GQ)
        return self

    # Hooks that subclasses override (APR's schedule, mini-batch kernels).
    def _select_kernel(self, n_threads):
        return epoch_serial if n_threads == 1 else epoch_parallel

    def _phase_start(self, epoch):
        return False

    def _total_epochs(self):
        return self.epochs

    def _kernel_args_at(self, epoch, dt):
        return self._kernel_args(dt)

    def _optimizer_state(self, state, P, Q, dt):
        if self.optimizer != "adagrad":   # unused by the SGD kernels; not views of P/Q,
            return (np.empty((0, P.shape[1]), dtype=dt),   # which would keep them alive
                    np.empty((0, Q.shape[1]), dtype=dt))
        if state is not None and not self.reset_optimizer:
            GP, GQ = state
            if GP.shape == P.shape and GQ.shape == Q.shape:
                return np.array(GP, dtype=dt), np.array(GQ, dtype=dt)
        return (np.full(P.shape, self.initial_accumulator, dtype=dt),
                np.full(Q.shape, self.initial_accumulator, dtype=dt))

    @staticmethod
    def _positives(X):
        deg = np.diff(X.indptr)
        full = deg >= X.shape[1]
        if full.any():
            warnings.warn(f"{int(full.sum())} user(s) interacted with every item; they have "
                          f"no negatives and are skipped in training", RuntimeWarning,
                          stacklevel=3)
        users = np.repeat(np.arange(X.shape[0], dtype=X.indices.dtype), deg)
        keep = ~full[users]
        return users[keep], X.indices[keep]
