"""IRGAN for item recommendation: a generator and a discriminator, both MF with item biases."""
import time

import numpy as np
from tqdm.auto import tqdm

from .._provenance import fingerprint, record
from .._threads import check_n_threads, numba_threads, running_threads, single_threaded_blas
from .._validation import (check_choice, check_dtype, check_factors, check_float,
                           check_positive_int, check_random_state)
from ..kernels import all_finite
from ..kernels._rng import seed_states
from ..kernels.irgan import (REWARD_SIGMOID, REWARD_SOFTPLUS, apply_rows, apply_rows_parallel,
                             d_epoch_parallel,
                             d_epoch_serial, g_block_grads, policy_rows_parallel,
                             policy_rows_serial, sample_rows_parallel, sample_rows_serial)
from ._base import BaseRecommender, training_data
from ._training import DivergenceError, warn_interrupted
from .callbacks import as_callbacks

_REWARDS = {"sigmoid": REWARD_SIGMOID, "softplus": REWARD_SOFTPLUS}
#: The tables a model file keeps beyond the generator's ranking tables.
_EXTRA = ("d_user_factors", "d_item_factors", "g_opt_users", "g_opt_items", "d_opt_users",
          "d_opt_items")


def _layout(P, Q, dt):
    """``([P, 1], [Q, 0])``: MF factors in the ranking layout with zero item biases."""
    one = np.ones((P.shape[0], 1))
    zero = np.zeros((Q.shape[0], 1))
    return (np.ascontiguousarray(np.hstack([P, one]), dtype=dt),
            np.ascontiguousarray(np.hstack([Q, zero]), dtype=dt))


class _Run:
    """The training state of one ``IRGAN.fit`` (what callbacks see as ``run``).

    ``P``/``Q``: the generator's ranking tables (scores ``P @ Q.T``); ``PD``/``QD``:
    the discriminator's; ``GPg, GQg, GPd, GQd``: Adagrad accumulators (empty for SGD).
    """

    NAMES = ("P", "Q", "PD", "QD", "GPg", "GQg", "GPd", "GQd")

    def __init__(self, X, tables, rng, threads, slices):
        self.X = X
        for name, a in zip(self.NAMES, tables):
            setattr(self, name, a)
        self.rng, self.threads, self.slices = rng, threads, slices
        deg = np.diff(X.indptr)
        self.users = np.repeat(np.arange(X.shape[0], dtype=np.int64), deg)
        self.items = X.indices.astype(np.int64)
        self.active = np.flatnonzero(deg > 0).astype(np.int64)
        self.gen_states = seed_states(rng, slices)
        self.pol_states = seed_states(rng, slices)

    def snapshot(self):
        return tuple(getattr(self, n).copy() for n in self.NAMES)

    def restore(self, snap):
        for n, b in zip(self.NAMES, snap):
            np.copyto(getattr(self, n), b)

    def finite(self):
        return all(all_finite(getattr(self, n)) for n in ("P", "Q", "PD", "QD"))


class IRGAN(BaseRecommender):
    r"""IRGAN for item recommendation (Wang et al., SIGIR 2017).

    A generator G and a discriminator D, both matrix factorisation with item
    biases, :math:`s(u, i) = p_u\cdot q_i + b_i`, play a minimax game: D learns
    to tell the user's real items (label 1) from items drawn from G's softmax
    :math:`p_\theta(i|u) \propto \exp(s_G(u, i)/T)` (label 0) with the log loss;
    G raises the probability of the items D rewards, by the policy gradient
    (REINFORCE). Recommendations rank by G's scores. The kernels and their
    derivations are in :mod:`aprnb.kernels.irgan` and ``docs/derivations.md``.

    Each round (``epochs`` of them) runs ``d_epochs`` D epochs, then ``g_epochs``
    G epochs:

    * a D epoch draws, for every training pair ``(u, i)``, one item ``j`` from
      G's softmax (over all items, as the official code: a user's own items can
      be drawn) and takes one SGD/Adagrad step on ``(u, i, j)`` per pair, in a
      fresh random order (Hogwild over ``n_slices`` slices on several threads);
    * a G epoch visits the users in a random order, in blocks of ``batch_users``:
      for each user it draws ``K = g_samples * |I_u|`` items from the proposal
      :math:`(1-\lambda_s)p_\theta + \lambda_s\,\mathrm{uniform}(I_u)`, weights D's
      reward of each by :math:`p_\theta/p_n` (importance sampling, unbiased), and
      the block takes one step on the summed surrogate losses of its users.

    Parameters
    ----------
    factors : int, default 64
        MF width ``d``; the ranking tables have width ``d + 1``.
    epochs : int, default 10
        Rounds of (``d_epochs`` D epochs, ``g_epochs`` G epochs).
    d_epochs, g_epochs : int, default 5, 1
        The defaults (with ``g_learning_rate=0.005``, ``epochs=10``) are the
        setting picked on a Last.fm validation split (``docs/derivations.md``
        section 12: IRGAN there stays within noise of its MF-BPR start).
    temperature : float, default 0.2
        ``T`` of G's softmax, for D's generated items and G's policy alike (the
        official code samples D's items at 0.2 and G's at 1).
    g_learning_rate, d_learning_rate : float, default 0.005, 0.05
    g_reg, d_reg : float, default 0.0, 0.01
        L2 coefficients: ``theta -= lr * (grad + reg * theta)``. G's applies to
        the block's users and every item row (weight decay per block).
    optimizer : {"adagrad", "sgd"}, default "adagrad"
        For both players (accumulators start at ``initial_accumulator``).
    reward : {"sigmoid", "softplus"}, default "sigmoid"
        D's reward: ``2 * (sigmoid(s_D) - 0.5)`` (the official code's; bounded in
        (-1, 1), so items D deems fake are pushed down and the estimator's
        variance stays bounded) or the paper's ``log(1 + exp(s_D))`` (always
        positive, unbounded).
    sample_lambda : float in [0, 1), default 0.2
        Weight of the user's own items in G's proposal (0: plain REINFORCE).
    g_samples : int, default 2
        G's draws per training item of the user.
    batch_users : int, default 64
        Users per G step.
    bpr_epochs : int, default 100
        With ``init=None``: G and D start from an MF-BPR trained here first
        (:class:`aprnb.BPR` with ``factors``, ``bpr_learning_rate``, ``bpr_reg``,
        ``init_std``, Adagrad, ``initial_accumulator``, and this model's threads,
        slices, seed and dtype). 0 starts both from N(0, ``init_std``) factors.
        Its epochs come first in ``history_`` (``"mode": "bpr"``); callbacks see
        the IRGAN rounds only (numbered after them).
    bpr_learning_rate, bpr_reg, init_std : float, default 0.05, 0.0, 0.01
    initial_accumulator : float, default 0.1
    n_threads, n_slices, random_state, dtype, show_progress
        As for :class:`aprnb.BPR`. G's sampling and D's draws depend on the seed
        and ``n_slices``; D's epoch on several threads is Hogwild.

    Attributes
    ----------
    user_factors_, item_factors_ : ndarray (n, factors + 1)
        G's ranking tables ``[p_u, 1]`` and ``[q_i, b_i]``.
    d_user_factors_, d_item_factors_ : ndarray
        D's tables, same layout.
    g_opt_users_, g_opt_items_, d_opt_users_, d_opt_items_ : ndarray
        Adagrad accumulators (shape (0, factors + 1) for SGD).
    optimizer_state_ : (ndarray, ndarray) or None
        G's accumulators (read-only view of the two above).
    history_ : list of dict
        The BPR epochs, then per round: ``epoch``, ``loss`` (D's mean loss per
        pair in the round's last D epoch; G's surrogate loss when ``d_epochs=0``),
        ``d_loss``, ``g_loss``, ``g_reward`` (mean estimated :math:`E_{p_\theta}[r]`
        per user), ``seconds`` (``d_seconds`` and ``g_seconds`` of it in the D and G
        epochs).

    Notes
    -----
    ``fit(train, init=model)``: a fitted ``IRGAN`` continues (both players and
    their accumulators); any other fitted model of width ``factors`` (e.g.
    :class:`aprnb.BPR`) or a ``(P, Q)`` tuple starts both players from its
    factors with zero item biases. ``init`` is never modified.
    """

    _extra_members = _EXTRA
    _no_perturbation = ("its ranking tables [p_u, 1] and [q_i, b_i] hold a constant column "
                        "and the item biases, which an embedding adversary must not move")

    def __init__(self, factors=64, epochs=10, d_epochs=5, g_epochs=1, temperature=0.2,
                 g_learning_rate=0.005, d_learning_rate=0.05, g_reg=0.0, d_reg=0.01,
                 optimizer="adagrad", reward="sigmoid", sample_lambda=0.2, g_samples=2,
                 batch_users=64, bpr_epochs=100, bpr_learning_rate=0.05, bpr_reg=0.0,
                 init_std=0.01, initial_accumulator=0.1, n_threads=None, n_slices=None,
                 random_state=None, dtype=np.float32, show_progress=True):
        self.factors = factors
        self.epochs = epochs
        self.d_epochs = d_epochs
        self.g_epochs = g_epochs
        self.temperature = temperature
        self.g_learning_rate = g_learning_rate
        self.d_learning_rate = d_learning_rate
        self.g_reg = g_reg
        self.d_reg = d_reg
        self.optimizer = optimizer
        self.reward = reward
        self.sample_lambda = sample_lambda
        self.g_samples = g_samples
        self.batch_users = batch_users
        self.bpr_epochs = bpr_epochs
        self.bpr_learning_rate = bpr_learning_rate
        self.bpr_reg = bpr_reg
        self.init_std = init_std
        self.initial_accumulator = initial_accumulator
        self.n_threads = n_threads
        self.n_slices = n_slices
        self.random_state = random_state
        self.dtype = dtype
        self.show_progress = show_progress

    @classmethod
    def _width(cls, params):
        f = params.get("factors")
        return None if f is None else f + 1

    @property
    def optimizer_state_(self):
        if getattr(self, "g_opt_users_", None) is None or self.optimizer != "adagrad":
            return None
        return self.g_opt_users_, self.g_opt_items_

    # -- parameters --------------------------------------------------------------------------
    def _validate_params(self):
        check_positive_int(self.factors, "factors")
        for name in ("epochs", "d_epochs", "g_epochs", "bpr_epochs"):
            check_positive_int(getattr(self, name), name, 0)
        check_float(self.temperature, "temperature", 0.0, low_inclusive=False)
        for name in ("g_learning_rate", "d_learning_rate", "bpr_learning_rate"):
            check_float(getattr(self, name), name, 0.0, low_inclusive=False)
        for name in ("g_reg", "d_reg", "bpr_reg", "init_std"):
            check_float(getattr(self, name), name, 0.0)
        check_choice(self.reward, "reward", tuple(_REWARDS))
        check_float(self.sample_lambda, "sample_lambda", 0.0, 1.0, high_inclusive=False)
        check_positive_int(self.g_samples, "g_samples")
        check_positive_int(self.batch_users, "batch_users")
        self._check_common()

    # -- the starting point ------------------------------------------------------------------
    def _start(self, init, X, rng, dt):
        """``(tables, bpr history)``: the eight arrays of :class:`_Run`, fresh copies."""
        n_users, n_items = X.shape
        d, w = self.factors, self.factors + 1
        history = []
        if isinstance(init, IRGAN):
            init._check_fitted()
            if init.user_factors_.shape != (n_users, w) or init.item_factors_.shape != \
                    (n_items, w):
                raise ValueError(f"init IRGAN has tables {init.user_factors_.shape} and "
                                 f"{init.item_factors_.shape}, but train {X.shape} with "
                                 f"factors={d} needs {(n_users, w)} and {(n_items, w)}")
            tables = [np.array(a, dtype=dt) for a in (
                init.user_factors_, init.item_factors_, init.d_user_factors_,
                init.d_item_factors_)]
            if self.optimizer == "adagrad" and init.optimizer == "adagrad":
                acc = [np.array(a, dtype=dt) for a in (
                    init.g_opt_users_, init.g_opt_items_, init.d_opt_users_, init.d_opt_items_)]
                return tables + acc, history
            return tables + self._accumulators(tables, dt), history
        if init is None:
            P0, Q0, history = self._pretrain(X, rng, dt)
        elif isinstance(init, BaseRecommender):
            init._check_fitted()
            P0, Q0 = init.user_factors_, init.item_factors_
        elif isinstance(init, tuple) and len(init) == 2:
            P0, Q0 = init
        else:
            raise TypeError(f"init must be None, a fitted aprnb model or a (user_factors, "
                            f"item_factors) tuple, got {type(init).__name__}")
        P0, Q0 = check_factors(P0, Q0, "init")
        if P0.shape != (n_users, d) or Q0.shape != (n_items, d):
            raise ValueError(f"init factors have shapes {P0.shape} and {Q0.shape}, but train "
                             f"{X.shape} with factors={d} needs {(n_users, d)} and "
                             f"{(n_items, d)} (an MF model such as aprnb.BPR, or an IRGAN)")
        PG, QG = _layout(P0, Q0, dt)
        tables = [PG, QG, PG.copy(), QG.copy()]
        return tables + self._accumulators(tables, dt), history

    def _pretrain(self, X, rng, dt):
        """MF-BPR factors for ``init=None`` (or N(0, init_std) with ``bpr_epochs=0``)."""
        if self.init_std == 0:
            raise ValueError("init_std=0 starts every factor at zero, where every gradient "
                             "is zero; use a positive init_std (0.01) or pass init=")
        if self.bpr_epochs == 0:
            return (rng.standard_normal((X.shape[0], self.factors)) * self.init_std,
                    rng.standard_normal((X.shape[1], self.factors)) * self.init_std, [])
        from .bpr import BPR
        bpr = BPR(factors=self.factors, learning_rate=self.bpr_learning_rate, reg=self.bpr_reg,
                  epochs=self.bpr_epochs, optimizer="adagrad", init_std=self.init_std,
                  n_threads=self.n_threads, n_slices=self.n_slices, random_state=rng,
                  dtype=dt, show_progress=self.show_progress,
                  initial_accumulator=self.initial_accumulator).fit(X)
        return bpr.user_factors_, bpr.item_factors_, bpr.history_

    def _accumulators(self, tables, dt):
        if self.optimizer != "adagrad":
            return [np.empty((0, a.shape[1]), dtype=dt) for a in tables]
        return [np.full(a.shape, self.initial_accumulator, dtype=dt) for a in tables]

    # -- fit -----------------------------------------------------------------------------------
    def fit(self, train, init=None, callback=None):
        """Fit IRGAN on a binary interaction matrix (a Dataset, sparse or dense).

        ``init``: None (pre-train an MF-BPR for ``bpr_epochs``), a fitted IRGAN
        (continue), another fitted model or a ``(P, Q)`` tuple of width ``factors``
        (both players start from it, item biases 0). ``callback``: as for
        :meth:`aprnb.BPR.fit`, called after every round. Returns self.

        A round that produces NaN or inf raises
        :class:`~aprnb.models._training.DivergenceError`; the model then keeps the
        last good round.
        """
        self._validate_params()
        X, data = training_data(train)
        callbacks = as_callbacks(callback)
        dt = check_dtype(self.dtype)
        rng = check_random_state(self.random_state)
        n_threads = check_n_threads(self.n_threads)
        fp = fingerprint(X)
        tables, history = self._start(init, X, rng, dt)
        history = [dict(h, mode="bpr") for h in history]
        run = _Run(X, tables, rng, running_threads(n_threads), self.n_slices or n_threads)
        run.total_epochs = len(history) + self.epochs
        provenance = record(X, data, init, fp=fp)
        for cb in callbacks:
            cb.on_fit_start(self, X, run, callbacks)
        good = run.snapshot()
        self._commit(run, good, history, provenance)
        try:
            with tqdm(total=self.epochs, disable=not self.show_progress, desc="IRGAN",
                      unit="round", leave=False) as bar:
                for r in range(self.epochs):
                    stats = self._round(run, len(history) + 1)
                    if not (np.isfinite(stats["loss"]) and run.finite()):
                        run.restore(good)
                        raise DivergenceError(
                            f"IRGAN: training diverged in round {r + 1} (NaN or inf); the "
                            f"model keeps round {r}. Use smaller learning rates (now "
                            f"g={self.g_learning_rate}, d={self.d_learning_rate}) or a "
                            f"higher temperature")
                    good = run.snapshot()
                    history.append(stats)
                    self._commit(run, good, history, provenance)
                    bar.update(1)
                    if any(cb.on_epoch_end(stats["epoch"], stats, run) is False
                           for cb in list(callbacks)):
                        break
        except KeyboardInterrupt:
            warn_interrupted(self, history)
            raise
        for cb in callbacks:
            cb.on_fit_end(run)
        self._commit(run, run.snapshot(), history, provenance)
        return self

    def _commit(self, run, tables, history, provenance):
        (self.user_factors_, self.item_factors_, self.d_user_factors_, self.d_item_factors_,
         self.g_opt_users_, self.g_opt_items_, self.d_opt_users_, self.d_opt_items_) = tables
        self.history_ = history
        self._set_provenance(run.X, provenance)

    # -- one round -----------------------------------------------------------------------------
    def _round(self, run, epoch):
        t0 = time.perf_counter()
        adagrad = self.optimizer == "adagrad"
        d_loss = g_loss = g_reward = float("nan")
        # BLAS stays on one thread: on 2 cores its spinning pool and Numba's, taking turns
        # hundreds of times per epoch, made a 2-thread G epoch 3-8x slower than 1 thread
        with numba_threads(run.threads), single_threaded_blas():
            t1 = time.perf_counter()
            for _ in range(self.d_epochs):
                negs = self._generate(run)
                order = run.rng.permutation(len(run.users))
                kern = d_epoch_serial if run.threads == 1 else d_epoch_parallel
                d_loss = kern(run.PD, run.QD, run.GPd, run.GQd, run.users, run.items, negs,
                              order, self.d_learning_rate, self.d_reg, adagrad,
                              run.slices) / max(1, len(order))
            t2 = time.perf_counter()
            for _ in range(self.g_epochs):
                g_loss, g_reward = self._g_epoch(run, adagrad)
        t3 = time.perf_counter()
        loss = d_loss if self.d_epochs else g_loss
        return {"epoch": epoch, "loss": float(loss), "d_loss": float(d_loss),
                "g_loss": float(g_loss), "g_reward": float(g_reward), "seconds": t3 - t0,
                "d_seconds": t2 - t1, "g_seconds": t3 - t2, "mode": "irgan"}

    def _blocks(self, users):
        for lo in range(0, len(users), self.batch_users):
            yield users[lo:lo + self.batch_users]

    def _generate(self, run):
        """One item from G's softmax per training pair (aligned with ``run.users``)."""
        X = run.X
        negs = np.empty(len(run.items), dtype=np.int64)
        kern = sample_rows_serial if run.threads == 1 else sample_rows_parallel
        for blk in self._blocks(np.arange(X.shape[0], dtype=np.int64)):
            S = run.P[blk] @ run.Q.T
            counts = (X.indptr[blk + 1] - X.indptr[blk]).astype(np.int64)
            offsets = X.indptr[blk].astype(np.int64)
            kern(S, self.temperature, blk, counts, offsets, run.gen_states, run.slices, negs)
        return negs

    def _g_epoch(self, run, adagrad):
        """One G epoch: every user with training items, in blocks of ``batch_users``."""
        X = run.X
        kern = policy_rows_serial if run.threads == 1 else policy_rows_parallel
        step = apply_rows if run.threads == 1 else apply_rows_parallel
        kind = _REWARDS[self.reward]
        users = run.rng.permutation(run.active)
        loss = reward = 0.0
        all_items = np.arange(X.shape[1], dtype=np.int64)
        w = run.P.shape[1]
        for blk in self._blocks(users):
            S = run.P[blk] @ run.Q.T
            Gs = np.empty_like(S)
            lsum, rsum, _ = kern(S, self.temperature, blk, X.indptr, X.indices,
                                 self.g_samples, self.sample_lambda, run.PD, run.QD, kind,
                                 run.pol_states, run.slices, Gs)
            loss += lsum
            reward += rsum
            gP, gQ = g_block_grads(run.P, run.Q, blk, Gs, self.g_reg)
            step(run.P, run.GPg, blk, gP, w - 1, self.g_learning_rate, adagrad)
            step(run.Q, run.GQg, all_items, gQ, w, self.g_learning_rate, adagrad)
        n = max(1, len(users))
        return loss / n, reward / n

    # -- persistence ---------------------------------------------------------------------------
    def _arrays(self):
        arrays = super()._arrays()
        arrays.pop("opt_users", None)        # saved once, as the extra members g_opt_*
        arrays.pop("opt_items", None)
        return arrays

    def _check_loaded(self, path):
        P, Q = self.user_factors_, self.item_factors_
        w = P.shape[1]
        for name, ref in (("d_user_factors", P), ("d_item_factors", Q)):
            a = getattr(self, name + "_")
            if a.shape != ref.shape or a.dtype != ref.dtype or not np.all(np.isfinite(a)):
                raise ValueError(f"{path}: {name} has shape {a.shape} and dtype {a.dtype}, "
                                 f"expected {ref.shape} {ref.dtype} and finite values")
        adagrad = self.optimizer == "adagrad"
        for name, ref in (("g_opt_users", P), ("g_opt_items", Q), ("d_opt_users", P),
                          ("d_opt_items", Q)):
            a = getattr(self, name + "_")
            shape = ref.shape if adagrad else (0, w)
            if a.shape != shape or a.dtype != ref.dtype or not np.all(a > 0) \
                    or not np.all(np.isfinite(a)):
                raise ValueError(f"{path}: optimizer state {name} has shape {a.shape} and "
                                 f"dtype {a.dtype}, expected {shape} {ref.dtype} with "
                                 f"positive finite values")
