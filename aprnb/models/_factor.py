"""Matrix factorisation trained by the epoch kernels: parameters, start, fit loop.

``fit`` reads as: check the parameters and the data, prepare the training state
(:class:`aprnb.models._training.Training`), run the model's schedule of epochs
(:meth:`FactorModel._phases`) with the callbacks after each, and commit the
result; a failure or Ctrl-C commits the last good epoch instead.
"""
import concurrent.futures
import copy

import numpy as np
from tqdm.auto import tqdm

from .._memory import huge_page_aligned, huge_page_zeros
from .._provenance import fingerprint, record
from .._threads import check_n_threads, numba_threads, running_threads
from .._validation import (check_dtype, check_factors, check_float,
                           check_positive_int, check_random_state)
from ..kernels.normal import fill_normal
from ._base import BaseRecommender, training_data
from ._training import (DivergenceError, Phase, Training, positives, sampling_filter,
                        warn_full_users, warn_interrupted)
from .callbacks import as_callbacks


#: Tables of more numbers than this are drawn on Numba's threads (:func:`normal_factors`).
PARALLEL_DRAW = 1 << 22


def normal_factors(rng, rows, cols, std, dt, block_draws=1 << 20, n_threads=1):
    """A ``(rows, cols)`` table of N(0, std^2) numbers in dtype ``dt``, seeded by ``rng``.

    Up to :data:`PARALLEL_DRAW` numbers (every data set of ``docs/results.md``:
    Gowalla's item table at 64 factors holds 2.6M) it is exactly
    ``(rng.standard_normal((rows, cols)) * std).astype(dt)``, drawn a block of
    ``block_draws`` numbers at a time (the generator fills row-major, in order,
    whatever the blocks), without the two float64 temporaries of the whole table.

    A larger table would spend longer in numpy's one serial stream than in the
    rest of the fit's set-up (128M numbers, about 1.8 s, for a million users and
    a million items at 64 factors). It is drawn by
    :func:`aprnb.kernels.normal.fill_normal` on ``n_threads`` Numba threads,
    straight into a huge-page-aligned table, with a 64-bit key drawn from
    ``rng``. The numbers depend on ``rng`` and the table's shape only, not on
    ``n_threads``.
    """
    dt = np.dtype(dt)
    if rows * cols > PARALLEL_DRAW:
        out = huge_page_zeros((rows, cols), dt)
        with numba_threads(n_threads):
            return fill_normal(out, int(rng.integers(0, 2**63)), std)
    out = huge_page_zeros((rows, cols), dt)
    step = max(1, block_draws // max(1, cols))
    for lo in range(0, rows, step):
        z = rng.standard_normal((min(step, rows - lo), cols))
        z *= std
        out[lo:lo + len(z)] = z
    return out


class FactorModel(BaseRecommender):
    """Matrix factorisation trained with per-triple (or mini-batch) SGD or Adagrad."""

    # -- parameters ---------------------------------------------------------------------
    def _validate_params(self):
        check_positive_int(self.factors, "factors")
        check_float(self.learning_rate, "learning_rate", 0.0, low_inclusive=False)
        check_float(self.reg, "reg", 0.0)
        check_positive_int(self.epochs, "epochs", 0)
        check_float(self.init_std, "init_std", 0.0)
        self._check_common()
        check_positive_int(self.batch_size, "batch_size")
        if not isinstance(self.reset_optimizer, bool):
            raise TypeError(f"reset_optimizer must be True or False, got "
                            f"{self.reset_optimizer!r}")

    def _phases(self):
        """The schedule: a list of :class:`~aprnb.models._training.Phase` (BPR: one)."""
        return [Phase(self.epochs)]

    # -- the starting point -----------------------------------------------------------------
    def _warm_start(self, init, shape):
        """``init`` checked: None, or the arrays ``(P0, Q0, optimizer state or None)``."""
        if init is None:
            if self.init_std == 0:
                raise ValueError("init_std=0 starts every factor at zero, where every BPR "
                                 "gradient is exactly zero: nothing would train. Use a "
                                 "positive init_std (the paper's 0.01), or warm-start with "
                                 "init=")
            return None
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
        return P0, Q0, state

    def _initial_factors(self, source, shape, rng, dt):
        """``(P, Q, optimizer state or None)`` to start from: drawn, or copied from the
        :meth:`_warm_start` arrays ``source`` (into huge-page-aligned tables)."""
        if source is None:
            t = running_threads(check_n_threads(self.n_threads))
            P = normal_factors(rng, shape[0], self.factors, self.init_std, dt, n_threads=t)
            Q = normal_factors(rng, shape[1], self.factors, self.init_std, dt, n_threads=t)
            return P, Q, None
        P0, Q0, state = source
        return (huge_page_aligned(np.asarray(P0, dtype=dt)),
                huge_page_aligned(np.asarray(Q0, dtype=dt)), state)

    def _optimizer_state(self, state, P, Q, dt):
        """Adagrad accumulators: carried over from ``init`` or fresh (empty for SGD)."""
        if self.optimizer != "adagrad":   # unused by the SGD kernels; not views of P/Q,
            return (np.empty((0, P.shape[1]), dtype=dt),   # which would keep them alive
                    np.empty((0, Q.shape[1]), dtype=dt))
        if state is not None and not self.reset_optimizer:
            GP, GQ = state
            if GP.shape == P.shape and GQ.shape == Q.shape:
                return (huge_page_aligned(np.asarray(GP, dtype=dt)),
                        huge_page_aligned(np.asarray(GQ, dtype=dt)))
        GP, GQ = huge_page_zeros(P.shape, dt), huge_page_zeros(Q.shape, dt)
        GP.fill(self.initial_accumulator)
        GQ.fill(self.initial_accumulator)
        return GP, GQ

    def _training(self, X, init):
        """The prepared :class:`~aprnb.models._training.Training` for ``fit``."""
        dt = check_dtype(self.dtype)
        if self.batch_size > X.nnz:
            raise ValueError(f"batch_size={self.batch_size} exceeds the {X.nnz} training "
                             f"pairs of an epoch; pass batch_size <= {X.nnz} (1 for "
                             f"per-triple updates)")
        rng = check_random_state(self.random_state)
        n_threads = check_n_threads(self.n_threads)
        source = self._warm_start(init, X.shape)
        again = copy.deepcopy(rng)          # to draw the same start again (Training.rollback)

        def start(rng):
            P, Q, state = self._initial_factors(source, X.shape, rng, dt)
            return (P, Q) + self._optimizer_state(state, P, Q, dt)

        # The fingerprint of X (hashlib releases the GIL) and the training pairs
        # are made on a worker thread while this one builds the filter and draws
        # the initial factors on Numba's threads (one parallel region at a time:
        # Numba's workqueue layer allows no more).
        warn_full_users(X, stacklevel=3)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            fp = pool.submit(fingerprint, X)
            pairs = pool.submit(positives, X)
            filt = sampling_filter(X, running_threads(n_threads))
            P, Q, GP, GQ = start(rng)
            fp, pairs = fp.result(), pairs.result()
        run = Training(X, P, Q, GP, GQ, rng, n_threads, self.n_slices or n_threads,
                       dt(self.learning_rate), dt(self.reg), self.optimizer == "adagrad",
                       self.initial_accumulator, self.batch_size, filt=filt, pairs=pairs,
                       initial=lambda: start(copy.deepcopy(again)))
        run.fingerprint = fp
        return run

    # -- fit ----------------------------------------------------------------------------------
    def fit(self, train, init=None, callback=None):
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
        callback : callable, Callback or list of them, optional
            Called after every epoch, in order (:mod:`aprnb.models.callbacks`):
            a function ``f(epoch, stats)`` gets a copy of the epoch's dict (loss,
            seconds, validation metric) and stops training by returning
            ``False``; :class:`~aprnb.models.callbacks.Validation` scores
            held-out data into ``history_``;
            :class:`~aprnb.models.callbacks.EarlyStopping` stops and restores the
            best epoch.

        Returns
        -------
        self
        """
        self._validate_params()
        X, data = training_data(train)
        callbacks = as_callbacks(callback)
        run = self._training(X, init)
        phases = self._phases()
        run.total_epochs = sum(p.epochs for p in phases)
        for cb in callbacks:
            cb.on_fit_start(self, X, run, callbacks)
        history = []
        run.provenance = record(X, data, init, fp=run.fingerprint)
        self._commit(run, history, good=True)
        try:
            self._run_phases(run, phases, callbacks, history)
        except DivergenceError as e:
            raise DivergenceError(f"{type(self).__name__}: {e}; the model keeps epoch "
                                  f"{len(history)}. Use a smaller learning_rate (now "
                                  f"{self.learning_rate}) or a larger reg") from None
        except KeyboardInterrupt:
            warn_interrupted(self, history)
            raise
        for cb in callbacks:
            cb.on_fit_end(run)
        self._commit(run, history)
        return self

    def _run_phases(self, run, phases, callbacks, history):
        """The epoch loop; after each epoch the last good state is committed.

        Any exception (a divergence, Ctrl-C) leaves the model with that state: in
        the first epoch, the starting state, which :meth:`Training.rollback` puts back.
        """
        try:
            self._epochs(run, phases, callbacks, history)
        except BaseException:
            run.rollback()
            raise

    def _epochs(self, run, phases, callbacks, history):
        epoch = 0
        with tqdm(total=run.total_epochs, disable=not self.show_progress,
                  desc=type(self).__name__, unit="epoch", leave=False) as bar:
            for phase in phases:
                for e in range(phase.epochs):
                    stats = run.epoch(epoch, phase, first_of_phase=e == 0)
                    epoch += 1
                    history.append(stats)
                    self._commit(run, history, good=True)
                    bar.update(1)
                    bar.set_postfix(loss=f"{stats['loss']:.4f}")
                    stop = [cb.on_epoch_end(epoch, stats, run) for cb in callbacks]
                    if any(s is False for s in stop):
                        return

    def _commit(self, run, history, good=False):
        """Make the current (or last good) parameters the model's fitted state."""
        P, Q, GP, GQ = run.parameters(good)
        self.user_factors_, self.item_factors_ = P, Q
        self.optimizer_state_ = (GP, GQ) if self.optimizer == "adagrad" else None
        self.history_ = history
        self._set_provenance(run.X, run.provenance)
