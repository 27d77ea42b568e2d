"""NeuMF (He et al., WWW 2017) and its adversarial training (APR applied to NeuMF).

The math is in :mod:`aprnb.kernels.neumf` and the NeuMF section of
``docs/derivations.md``; the NumPy twin is :mod:`aprnb.reference.neumf`.
"""
import copy
import time

import numpy as np
from tqdm.auto import tqdm

from .._provenance import record
from .._threads import check_n_threads, numba_threads, running_threads
from .._validation import (check_bool, check_dtype, check_factors, check_float,
                           check_positive_int, check_random_state)
from ..kernels._rng import seed_states
from ..kernels.neumf import (all_finite_1d, dataset_row_gradients, epoch_parallel, epoch_serial,
                             sample_losses)
from ..kernels.epoch import all_finite
from ..kernels.sampling import sample_negatives
from ..reference.neumf import branch_mask, layout, weight_mask
from ._base import BaseRecommender, training_data
from ._factor import normal_factors
from ._neumf_scorer import NeuMFScorer
from ._training import (DivergenceError, positives, sampling_filter, warn_full_users,
                        warn_interrupted)
from .callbacks import as_callbacks


def check_layers(layers):
    """``layers`` as a tuple of ints: at least two, positive, the first even."""
    if isinstance(layers, (str, bytes)) or not hasattr(layers, "__len__"):
        raise TypeError(f"layers must be a sequence of ints like (64, 32, 16, 8), got "
                        f"{layers!r}")
    out = []
    for v in layers:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"layers must hold positive ints, got {tuple(layers)!r}")
        out.append(int(v))
    if len(out) < 2:
        raise ValueError(f"layers needs the input width and at least one hidden layer, "
                         f"e.g. (64, 32, 16, 8); got {tuple(layers)!r}")
    if out[0] % 2:
        raise ValueError(f"layers[0] is the width of [p^M; q^M] and must be even, got "
                         f"{out[0]}")
    return tuple(out)


def _structure(factors, layers):
    """The int64 arrays the kernels take: ``dims``, ``offs`` and ``aoff`` (see the kernels)."""
    dims = np.asarray(layers, dtype=np.int64)
    offs, size = layout(factors, layers)
    W = factors + layers[0] // 2
    aoff = np.concatenate([[2 * W], 2 * W + np.cumsum(dims)]).astype(np.int64)
    return dims, offs, aoff, size


def glorot_dense(rng, factors, layers, dt):
    """Initial dense vector: Glorot-uniform ``W_l`` and ``h``, zero biases."""
    offs, size = layout(factors, layers)
    theta = np.zeros(size, dtype=np.float64)
    for ly in range(1, len(layers)):
        nin, nout = layers[ly - 1], layers[ly]
        lim = np.sqrt(6.0 / (nin + nout))
        w = offs[2 * (ly - 1)]
        theta[w:w + nin * nout] = rng.uniform(-lim, lim, nin * nout)
    nh = factors + layers[-1]
    lim = np.sqrt(6.0 / (nh + 1))
    theta[offs[-2]:offs[-1]] = rng.uniform(-lim, lim, nh)
    return theta.astype(dt)


class _Run:
    """Training state of one NeuMF ``fit`` (what callbacks see): ``total_epochs``,
    ``threads``, ``snapshot()``, ``restore()``, ``scorer()``."""

    def __init__(self, model, X, arrays, threads):
        self.model = model
        self.X = X
        self.arrays = arrays          # P, Q, theta, GP, GQ, Gth
        self.threads = threads
        self.total_epochs = 0

    def snapshot(self):
        return tuple(a.copy() for a in self.arrays)

    def restore(self, snap):
        for a, b in zip(self.arrays, snap):
            np.copyto(a, b)

    def scorer(self):
        P, Q, theta = self.arrays[:3]
        return NeuMFScorer(P, Q, theta, self.model.factors, check_layers(self.model.layers))


class NeuMF(BaseRecommender):
    """Neural Matrix Factorization (He et al., WWW 2017), optionally adversarial.

    The score of ``(u, i)`` is the logit
    ``y = h^G . (p^G_u * q^G_i) + h^M . MLP([p^M_u; q^M_i]) + b_0`` of a GMF
    branch and a ReLU tower, trained with the pointwise log loss on every
    training pair (label 1) and ``negatives`` uniform non-interacted items per
    pair (label 0), redrawn every epoch, in mini-batches.

    Parameters
    ----------
    factors : int, default 8
        Width of the GMF embeddings.
    layers : sequence of int, default (64, 32, 16, 8)
        NCF's convention: ``layers[0]`` is the width of ``[p^M; q^M]`` (each
        embedding ``layers[0] // 2`` wide), then the widths of the ReLU layers.
    negatives : int, default 4
        Sampled negatives per positive, per epoch.
    learning_rate : float, default 0.05
    reg : float, default 0.0
        L2 coefficient: ``reg * row`` per sample for both embedding rows, and
        ``reg * W`` once per batch for the weight matrices and ``h`` (not the
        biases).
    epochs : int, default 20
    optimizer : {"adagrad", "sgd"}, default "adagrad"
    batch_size : int, default 256
        Samples per mini-batch; the loss of a batch is the *sum* over its
        samples, all gradients are taken at the batch's start, each touched
        row and the dense vector take one step.
    init_std : float, default 0.01
        Standard deviation of the Gaussian embedding initialisation (dense
        weights: Glorot uniform, biases zero).
    adversarial : bool, default False
        Train the ``epochs`` with APR's objective: the clean loss plus
        ``reg_adv`` times the loss at the fast-gradient perturbation of the four
        embedding parts (per sample, each part's clean gradient normalised, times
        ``eps``), the perturbation held constant.
    eps, reg_adv : float, default 0.5 and 1.0
    clean_epochs : int, default 0
        With ``adversarial``: this many clean epochs first (APR's ``bpr_epochs``).
    pretrain_epochs : int, default 0
        NCF's pre-training: with ``pretrain_epochs > 0`` a fresh fit first trains
        a GMF-only model (``h^M`` held at zero) and an MLP-only model (``h^G``
        held at zero) for this many epochs each, from independent
        initialisations, then fuses them (GMF embeddings from the first, MLP
        embeddings and layers from the second, ``h = [alpha h^G; (1 - alpha)
        h^M]``, ``b_0`` likewise) and trains ``epochs`` more epochs from the
        fused model with fresh optimizer state. Not with ``init=``.
    alpha : float, default 0.5
        The fusion weight of the GMF branch (NCF's ``alpha``).
    reset_optimizer : bool, default True
        Restart the Adagrad accumulators when the adversarial epochs start (and
        when warm-starting with ``fit(init=model)``), as APR does.
    n_threads : int or None
        Threads (None: all of Numba's). Each batch is cut into one part per
        thread; the parts never write to shared memory (see
        :mod:`aprnb.kernels.neumf`), so a seeded fit is bitwise reproducible for
        a given ``n_threads``. Different thread counts differ by the rounding of
        the summed dense gradient in each step; over a whole fit that rounding can
        flip a ReLU near zero, after which the runs drift apart (deterministically).
    random_state, dtype, show_progress, initial_accumulator
        As for :class:`aprnb.BPR`.

    Attributes
    ----------
    user_factors_, item_factors_ : ndarray
        ``[p^G | p^M]`` and ``[q^G | q^M]``, width ``factors + layers[0] // 2``.
    dense_weights_ : ndarray
        The flat dense vector (``W_l``, ``b_l``, ``h``, ``b_0``;
        :func:`aprnb.reference.neumf.layout`).
    dense_accumulator_ : ndarray
        Its Adagrad accumulators, shape ``(1, size)`` (``(0, size)`` for SGD).
    user_accumulator_, item_accumulator_ : ndarray
        The embeddings' Adagrad accumulators (0 rows for SGD); ``optimizer_state_``
        is the pair of them (None for SGD).
    history_ : list of dict

    Notes
    -----
    ``fit(train, init=model)`` continues from a fitted NeuMF (copied, never
    modified): how APR is applied to a trained model; ``init=(P, Q)`` starts
    from given embeddings. ``history_`` lists the pre-training epochs first
    (``mode`` ``"pretrain-gmf"`` and ``"pretrain-mlp"``, each numbered from 1),
    then the epochs of the model itself (``"clean"`` or ``"adversarial"``).
    """

    _extra_members = ("dense_weights", "dense_accumulator", "user_accumulator",
                      "item_accumulator")

    @property
    def optimizer_state_(self):
        """The embeddings' Adagrad accumulators ``(users, items)``, or None (SGD)."""
        acc = getattr(self, "user_accumulator_", None)
        if acc is None or acc.shape[0] == 0:
            return None
        return acc, self.item_accumulator_

    def __init__(self, factors=8, layers=(64, 32, 16, 8), negatives=4, learning_rate=0.05,
                 reg=0.0, epochs=20, optimizer="adagrad", batch_size=256, init_std=0.01,
                 adversarial=False, eps=0.5, reg_adv=1.0, clean_epochs=0, reset_optimizer=True,
                 pretrain_epochs=0, alpha=0.5, n_threads=None, random_state=None,
                 dtype=np.float32, show_progress=True, initial_accumulator=0.1):
        self.factors = factors
        self.layers = layers
        self.negatives = negatives
        self.learning_rate = learning_rate
        self.reg = reg
        self.epochs = epochs
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.init_std = init_std
        self.adversarial = adversarial
        self.eps = eps
        self.reg_adv = reg_adv
        self.clean_epochs = clean_epochs
        self.reset_optimizer = reset_optimizer
        self.pretrain_epochs = pretrain_epochs
        self.alpha = alpha
        self.n_threads = n_threads
        self.random_state = random_state
        self.dtype = dtype
        self.show_progress = show_progress
        self.initial_accumulator = initial_accumulator

    @classmethod
    def _width(cls, params):
        return int(params["factors"]) + int(check_layers(params["layers"])[0]) // 2

    def _validate_params(self):
        check_positive_int(self.factors, "factors")
        check_layers(self.layers)
        check_positive_int(self.negatives, "negatives")
        check_float(self.learning_rate, "learning_rate", 0.0, low_inclusive=False)
        check_float(self.reg, "reg", 0.0)
        check_positive_int(self.epochs, "epochs", 0)
        check_positive_int(self.batch_size, "batch_size")
        check_float(self.init_std, "init_std", 0.0)
        check_bool(self.adversarial, "adversarial")
        check_float(self.eps, "eps", 0.0)
        check_float(self.reg_adv, "reg_adv", 0.0)
        check_positive_int(self.clean_epochs, "clean_epochs", 0)
        check_bool(self.reset_optimizer, "reset_optimizer")
        check_positive_int(self.pretrain_epochs, "pretrain_epochs", 0)
        check_float(self.alpha, "alpha", 0.0, 1.0)
        self._check_common()

    # -- the starting point ---------------------------------------------------------------
    def _start(self, init, shape, rng, dt, threads):
        """``(P, Q, theta, GP, GQ, Gth)``: fresh, or copied from a fitted NeuMF ``init``."""
        layers = check_layers(self.layers)
        W = self.factors + layers[0] // 2
        size = layout(self.factors, layers)[1]
        ada = self.optimizer == "adagrad"
        if init is None:
            if self.init_std == 0:
                raise ValueError("init_std=0 starts every embedding at zero; use a positive "
                                 "init_std (e.g. 0.01) or warm-start with init=")
            P = normal_factors(rng, shape[0], W, self.init_std, dt, n_threads=threads)
            Q = normal_factors(rng, shape[1], W, self.init_std, dt, n_threads=threads)
            theta = glorot_dense(rng, self.factors, layers, dt)
            state = None
        elif isinstance(init, tuple) and len(init) == 2:
            P0, Q0 = check_factors(*init, "init")
            if P0.shape != (shape[0], W) or Q0.shape != (shape[1], W):
                raise ValueError(f"init factors have shapes {P0.shape} and {Q0.shape}, but "
                                 f"train {shape} with factors={self.factors}, layers="
                                 f"{layers} needs {(shape[0], W)} and {(shape[1], W)}")
            P = np.array(P0, dtype=dt, order="C")
            Q = np.array(Q0, dtype=dt, order="C")
            theta = glorot_dense(rng, self.factors, layers, dt)
            state = None
        else:
            if not isinstance(init, NeuMF):
                raise TypeError(f"init must be None, a fitted NeuMF or a (user_factors, "
                                f"item_factors) tuple, got {type(init).__name__}")
            init._check_fitted()
            if (init.factors, check_layers(init.layers)) != (self.factors, layers):
                raise ValueError(f"init has factors={init.factors}, layers="
                                 f"{tuple(init.layers)}; this model needs factors="
                                 f"{self.factors}, layers={layers}")
            if init.user_factors_.shape != (shape[0], W) or \
                    init.item_factors_.shape != (shape[1], W):
                raise ValueError(f"init was fitted on {init.user_factors_.shape[0]} users x "
                                 f"{init.item_factors_.shape[0]} items, train has {shape}")
            P = np.array(init.user_factors_, dtype=dt, order="C")
            Q = np.array(init.item_factors_, dtype=dt, order="C")
            theta = np.array(init.dense_weights_, dtype=dt)
            state = None if self.reset_optimizer else init.optimizer_state_
            if state is not None and init.dense_accumulator_.shape != (1, size):
                state = None
        if ada and state is not None:
            return (P, Q, theta, np.array(state[0], dtype=dt), np.array(state[1], dtype=dt),
                    np.array(init.dense_accumulator_, dtype=dt))
        return self._fresh_state(P, Q, theta)

    def _fresh_state(self, P, Q, theta):
        """``(P, Q, theta)`` with fresh optimizer state (``initial_accumulator``, or none)."""
        dt = P.dtype.type
        W, size = P.shape[1], theta.shape[0]
        if self.optimizer != "adagrad":
            return (P, Q, theta, np.empty((0, W), dt), np.empty((0, W), dt),
                    np.empty((0, size), dt))
        a = dt(self.initial_accumulator)
        return (P, Q, theta, np.full(P.shape, a, dt), np.full(Q.shape, a, dt),
                np.full((1, size), a, dt))

    # -- NCF pre-training -----------------------------------------------------------------
    def _h_parts(self):
        """Slices of ``theta``: ``h^G``, ``h^M`` and the output bias ``b_0``."""
        offs, size = layout(self.factors, check_layers(self.layers))
        ho, F = offs[-2], self.factors
        return slice(ho, ho + F), slice(ho + F, offs[-1]), offs[-1]

    def _pretrain(self, X, pairs, filt, states, rng, dt, threads, history):
        """The GMF-only and the MLP-only fit of ``pretrain_epochs`` each, from fresh
        starts (the other branch's output weights zero and frozen); their stats
        go to ``history``. Returns both ``(P, Q, theta, GP, GQ, Gth)``."""
        hG, hM, _ = self._h_parts()
        out = []
        for branch, off in (("gmf", hM), ("mlp", hG)):
            arrays = self._start(None, X.shape, rng, dt, threads)
            arrays[2][off] = 0
            run = _Run(self, X, arrays, threads)
            for ep in range(self.pretrain_epochs):
                t0 = time.perf_counter()
                loss = self._epoch(run, self._samples(X, pairs, filt, states, rng), False,
                                   threads, branch)
                self._check_finite(loss, arrays, f"{branch.upper()} pre-training epoch "
                                   f"{ep + 1}", "the model is unchanged")
                history.append({"epoch": ep + 1, "loss": float(loss),
                                "seconds": time.perf_counter() - t0,
                                "mode": "pretrain-" + branch})
            out.append(arrays)
        return tuple(out)

    def _fuse(self, gmf, mlp):
        """NCF's fusion of a GMF-only and an MLP-only start (fresh optimizer state):
        the score becomes ``alpha * y_GMF + (1 - alpha) * y_MLP``."""
        hG, hM, b0 = self._h_parts()
        F, a = self.factors, self.alpha
        P, Q, theta = mlp[0].copy(), mlp[1].copy(), mlp[2].copy()
        P[:, :F] = gmf[0][:, :F]
        Q[:, :F] = gmf[1][:, :F]
        dt = theta.dtype.type
        theta[hG] = dt(a) * gmf[2][hG]
        theta[hM] = dt(1 - a) * mlp[2][hM]
        theta[b0] = dt(a) * gmf[2][b0] + dt(1 - a) * mlp[2][b0]
        return self._fresh_state(P, Q, theta)

    def _check_finite(self, loss, arrays, where, keeps):
        if not (np.isfinite(loss) and all_finite(arrays[0]) and all_finite(arrays[1])
                and all_finite_1d(arrays[2])):
            raise DivergenceError(
                f"{type(self).__name__}: training diverged at {where} (NaN or inf); {keeps}. "
                f"Use a smaller learning_rate (now {self.learning_rate}) or a larger reg")

    # -- one epoch ------------------------------------------------------------------------
    def _samples(self, X, pairs, filt, states, rng):
        """This epoch's shuffled ``(users, items, labels)``: the positives and
        ``negatives`` fresh uniform negatives of each."""
        pu, pi = pairs
        nu = np.repeat(pu, self.negatives)
        ni = sample_negatives(X.indptr, X.indices, nu, X.shape[1], states, filt)
        ok = ni >= 0
        users = np.concatenate([pu, nu[ok]]).astype(np.int64)
        items = np.concatenate([pi, ni[ok]]).astype(np.int64)
        labels = np.zeros(len(users), dtype=np.int8)
        labels[:len(pu)] = 1
        perm = rng.permutation(len(users))
        return users[perm], items[perm], labels[perm]

    def _epoch(self, run, samples, adversarial, threads, branch="both"):
        P, Q, theta, GP, GQ, Gth = run.arrays
        layers = check_layers(self.layers)
        dims, offs, aoff, _ = _structure(self.factors, layers)
        dt = P.dtype.type
        wmask = weight_mask(self.factors, layers).astype(P.dtype)
        gmask = branch_mask(self.factors, layers, branch).astype(P.dtype)
        users, items, labels = samples
        kern = epoch_serial if threads == 1 else epoch_parallel
        with numba_threads(threads):
            loss = kern(P, Q, theta, GP, GQ, Gth, users, items, labels,
                        min(self.batch_size, len(users)), threads, dims, offs, aoff,
                        self.factors, layers[0] // 2, wmask, gmask, dt(self.learning_rate),
                        dt(self.reg), self.optimizer == "adagrad", dt(self.eps),
                        dt(self.reg_adv), adversarial)
        return loss / max(1, len(users))

    # -- fit ------------------------------------------------------------------------------
    def fit(self, train, init=None, callback=None):
        """Fit on a binary interaction matrix (or a Dataset), as :meth:`aprnb.BPR.fit`.

        ``init``: a fitted NeuMF with the same ``factors`` and ``layers`` to
        continue from (copied; its optimizer state too unless
        ``reset_optimizer``), or a ``(user_factors, item_factors)`` tuple of
        width ``factors + layers[0] // 2`` (embeddings copied, dense weights
        drawn fresh). Returns self.
        """
        self._validate_params()
        X, data = training_data(train)
        callbacks = as_callbacks(callback)
        dt = check_dtype(self.dtype)
        rng = check_random_state(self.random_state)
        threads = running_threads(check_n_threads(self.n_threads))
        warn_full_users(X, stacklevel=2)
        if self.pretrain_epochs and init is not None:
            raise ValueError("pretrain_epochs pre-trains a fresh model and cannot be combined "
                             "with init=; set pretrain_epochs=0 to continue from init")
        pairs = positives(X)
        filt = sampling_filter(X, threads)
        states = seed_states(rng, 1)
        history = []
        if self.pretrain_epochs:
            try:                # nothing is committed before the fused network exists
                arrays = self._fuse(*self._pretrain(X, pairs, filt, states, rng, dt,
                                                    threads, history))
            except KeyboardInterrupt:
                warn_interrupted(self, history, "pre-training")
                raise
        else:
            arrays = self._start(init, X.shape, rng, dt, threads)
        start = tuple(a.copy() for a in arrays)
        run = _Run(self, X, arrays, threads)
        adv = bool(self.adversarial)
        phases = [(self.clean_epochs, False), (self.epochs, True)] if adv else \
            [(self.epochs, False)]
        run.total_epochs = sum(n for n, _ in phases)
        prov = record(X, data, init)
        for cb in callbacks:
            cb.on_fit_start(self, X, run, callbacks)
        good = start
        self._commit(good, history, X, prov)
        epoch = 0
        try:
            with tqdm(total=run.total_epochs, disable=not self.show_progress,
                      desc=type(self).__name__, unit="epoch", leave=False) as bar:
                for n_ep, is_adv in phases:
                    if is_adv and epoch > 0 and self.reset_optimizer and \
                            self.optimizer == "adagrad":
                        for a in arrays[3:]:
                            a.fill(self.initial_accumulator)
                    for _ in range(n_ep):
                        t0 = time.perf_counter()
                        samples = self._samples(X, pairs, filt, states, rng)
                        loss = self._epoch(run, samples, is_adv, threads)
                        seconds = time.perf_counter() - t0
                        try:
                            self._check_finite(loss, arrays, f"epoch {epoch + 1}",
                                               f"the model keeps epoch {epoch}")
                        except DivergenceError:
                            run.restore(good)
                            raise
                        epoch += 1
                        good = run.snapshot()
                        stats = {"epoch": epoch, "loss": float(loss), "seconds": seconds,
                                 "mode": "adversarial" if is_adv else "clean"}
                        history.append(stats)
                        self._commit(good, history, X, prov)
                        bar.update(1)
                        stop = [cb.on_epoch_end(epoch, stats, run) for cb in callbacks]
                        if any(s is False for s in stop):
                            raise StopIteration
        except StopIteration:
            pass
        except KeyboardInterrupt:
            warn_interrupted(self, history)
            raise
        for cb in callbacks:
            cb.on_fit_end(run)
        self._commit(run.snapshot(), history, X, prov)
        return self

    def _commit(self, arrays, history, X, prov):
        P, Q, theta, GP, GQ, Gth = (a.copy() for a in arrays)
        self.user_factors_, self.item_factors_ = P, Q
        self.dense_weights_ = theta
        self.dense_accumulator_ = Gth
        self.user_accumulator_, self.item_accumulator_ = GP, GQ
        self.history_ = history
        self._set_provenance(X, prov)

    # -- scoring --------------------------------------------------------------------------
    def _scorer(self):
        self._check_fitted()
        return NeuMFScorer(self.user_factors_, self.item_factors_, self.dense_weights_,
                           self.factors, check_layers(self.layers))

    def _arrays(self):
        arrays = super()._arrays()
        arrays.pop("opt_users", None)      # kept as the extra members user/item_accumulator
        arrays.pop("opt_items", None)
        return arrays

    def _check_loaded(self, path):
        if isinstance(self.layers, list):     # a model file stores the tuple as a JSON list
            self.layers = tuple(self.layers)
        layers = check_layers(self.layers)
        size = layout(self.factors, layers)[1]
        theta = getattr(self, "dense_weights_", None)
        if theta is None or theta.shape != (size,) or theta.dtype != self.user_factors_.dtype:
            raise ValueError(f"{path}: dense_weights must be a vector of {size} "
                             f"{self.user_factors_.dtype} for factors={self.factors}, "
                             f"layers={layers}")
        if not np.all(np.isfinite(theta)):
            raise ValueError(f"{path}: dense_weights holds NaN or inf")
        acc = getattr(self, "dense_accumulator_", None)
        if acc is None or acc.ndim != 2 or acc.shape[1] != size or acc.shape[0] > 1:
            raise ValueError(f"{path}: dense_accumulator must have shape (1, {size}) or "
                             f"(0, {size})")
        W = self.user_factors_.shape[1]
        for name, n in (("user", self.user_factors_.shape[0]),
                        ("item", self.item_factors_.shape[0])):
            a = getattr(self, name + "_accumulator_")
            if a.ndim != 2 or a.shape[1] != W or a.shape[0] not in (0, n):
                raise ValueError(f"{path}: {name}_accumulator must have shape ({n}, {W}) "
                                 f"or (0, {W}), got {a.shape}")

    def sample_losses(self, users, items, labels):
        """Clean log loss of each (user, item, label) sample (float64)."""
        self._check_fitted()
        layers = check_layers(self.layers)
        dims, offs, aoff, _ = _structure(self.factors, layers)
        return sample_losses(self.user_factors_, self.item_factors_, self.dense_weights_,
                             np.asarray(users, np.int64), np.asarray(items, np.int64),
                             np.asarray(labels, np.int8), dims, offs, aoff, self.factors,
                             layers[0] // 2)

    # -- robustness ------------------------------------------------------------------------
    def _perturbed(self, train, eps, kind, rng, steps=None, step_size=None):
        r"""A new fitted NeuMF whose embedding rows are perturbed (the dense weights kept).

        Each row's GMF part and MLP part get a perturbation of L2 norm ``eps``:

        * ``"adversarial"``: the gradient of the summed clean log loss over every
          training pair (label 1) and ``negatives`` seeded uniform negatives per
          pair (label 0), normalised per part with the official guard
          ``g / sqrt(max(|g|^2, 1e-12))``, times ``eps``;
        * ``"random"``: Gaussian parts, normalised, times ``eps``.

        ``"pgd"`` is not implemented for NeuMF (ValueError). ``steps`` and
        ``step_size`` are accepted for the common signature and unused.
        """
        self._check_fitted()
        if kind == "pgd":
            raise ValueError("kind='pgd' is not implemented for NeuMF; use 'adversarial' or "
                             "'random'")
        if kind not in ("adversarial", "random"):
            raise ValueError(f"kind must be 'adversarial' or 'random' for NeuMF, got {kind!r}")
        P, Q = self.user_factors_, self.item_factors_
        if kind == "random":
            GP = rng.standard_normal(P.shape)
            GQ = rng.standard_normal(Q.shape)
        else:
            X = train.tocsr() if hasattr(train, "tocsr") else train
            users, items, labels = self._samples(X, positives(X), sampling_filter(X, 1),
                                                 seed_states(rng, 1), rng)
            layers = check_layers(self.layers)
            dims, offs, aoff, _ = _structure(self.factors, layers)
            P64, Q64 = P.astype(np.float64), Q.astype(np.float64)
            GP, GQ = np.zeros_like(P64), np.zeros_like(Q64)
            dataset_row_gradients(P64, Q64, self.dense_weights_.astype(np.float64), users,
                                  items, labels, dims, offs, aoff, self.factors,
                                  layers[0] // 2, GP, GQ)
        F = self.factors
        for G in (GP, GQ):
            for part in (slice(0, F), slice(F, None)):
                sq = np.einsum("ij,ij->i", G[:, part], G[:, part])
                G[:, part] *= (eps / np.sqrt(np.maximum(sq, 1e-12)))[:, None]
        out = copy.copy(self)
        out.user_factors_ = (P + GP).astype(P.dtype)
        out.item_factors_ = (Q + GQ).astype(Q.dtype)
        return out
