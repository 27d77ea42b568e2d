"""CDAE: the Collaborative Denoising Auto-Encoder (Wu et al., WSDM 2016).

The model, its loss and the gradients are in :mod:`aprnb.kernels.cdae` and
``docs/derivations.md`` section 11; this module checks the parameters, holds
the training state (:class:`_CDAERun`) and runs the epochs.
"""
import time

import numpy as np
from tqdm.auto import tqdm

from .._provenance import fingerprint, record
from .._threads import check_n_threads, numba_threads, running_threads
from .._validation import (check_dtype, check_float, check_positive_int,
                           check_random_state)
from ..kernels._rng import seed_states
from ..kernels.cdae import cdae_encode, cdae_epoch_parallel, cdae_epoch_serial
from ._base import BaseRecommender, training_data
from ._factor import normal_factors
from ._training import DivergenceError, warn_full_users, warn_interrupted
from .callbacks import as_callbacks

#: The trainable tables, in kernel order: input weights W (n_items, H), user nodes
#: V (n_users, H), hidden bias b (H,), output weights W' (n_items, H), output biases
#: b' (n_items,).
TABLES = ("weights_in", "user_nodes", "bias_hidden", "weights_out", "bias_out")
#: Their Adagrad accumulators (empty arrays under SGD).
ACCUMULATORS = tuple("acc_" + n for n in TABLES)


def _shapes(n_users, n_items, hidden):
    return ((n_items, hidden), (n_users, hidden), (hidden,), (n_items, hidden), (n_items,))


def ranking_factors(tables, X):
    """``(user_factors, item_factors)``: ``[z_u, 1]`` uncorrupted and ``[W'_i, b'_i]``."""
    W, V, b, Wp, bp = tables
    P = np.empty((V.shape[0], W.shape[1] + 1), dtype=W.dtype)
    cdae_encode(W, V, b, X.indptr, X.indices, P)
    Q = np.ascontiguousarray(np.column_stack([Wp, bp]))
    return P, Q


class _CDAERun:
    """Training state of one ``fit`` (what the callbacks see as ``run``).

    ``P``/``Q`` are the current ranking factors (refreshed after every epoch and
    by :meth:`restore`); ``tables``/``accs`` the trained arrays, updated in place.
    """

    def __init__(self, X, tables, accs, rng, threads, lr, reg, q, negatives, adagrad):
        self.X = X
        self.tables, self.accs = tables, accs
        self.threads = running_threads(threads)
        self.slices = threads
        self.states = seed_states(rng, threads)
        self.users = rng.permutation(X.shape[0]).astype(X.indices.dtype)
        self.kernel = cdae_epoch_serial if self.threads == 1 else cdae_epoch_parallel
        self.lr, self.reg, self.q = lr, reg, q
        self.negatives, self.adagrad = negatives, adagrad
        self.total_epochs = 0
        self._refresh()
        self._good = self.snapshot()

    def _refresh(self):
        self.P, self.Q = ranking_factors(self.tables, self.X)

    def snapshot(self):
        """Copies of the tables and the accumulators."""
        return tuple(a.copy() for a in self.tables + self.accs)

    def restore(self, snap):
        """Put a :meth:`snapshot` back in place (and recompute ``P``/``Q``)."""
        for a, s in zip(self.tables + self.accs, snap):
            np.copyto(a, s)
        self._refresh()

    def parameters(self):
        """The last good epoch's ``(tables, accumulators, P, Q)``."""
        n = len(self.tables)
        return self._good[:n], self._good[n:], self.P, self.Q

    def epoch(self, epoch):
        """Run epoch ``epoch`` (0-based); its stats dict. Rolls back and raises
        :class:`DivergenceError` when the loss or a table is not finite."""
        dt = self.tables[0].dtype.type
        t0 = time.perf_counter()
        with numba_threads(self.threads):
            loss, count = self.kernel(*self.tables, *self.accs, self.X.indptr, self.X.indices,
                                      self.users, self.states, dt(self.lr), dt(self.reg),
                                      float(self.q), self.negatives, self.adagrad, self.slices,
                                      True)
        seconds = time.perf_counter() - t0
        if not (np.isfinite(loss) and all(np.all(np.isfinite(a)) for a in self.tables)):
            self.restore(self._good)
            raise DivergenceError(f"training diverged at epoch {epoch + 1} (NaN or inf in "
                                  f"the weights)")
        self._refresh()
        for a, s in zip(self._good, self.tables + self.accs):
            np.copyto(a, s)
        return {"epoch": epoch + 1, "loss": loss / max(1, count), "seconds": seconds}


class CDAE(BaseRecommender):
    """Collaborative Denoising Auto-Encoder (Wu et al., WSDM 2016), log loss.

    User ``u``'s training row is corrupted by drop-out (each item dropped with
    probability ``corruption``, kept ones scaled by ``1 / (1 - corruption)``)
    and encoded with a user node: ``z_u = sigmoid(W^T y~_u + V_u + b)``; the
    output ``sigmoid(W'_i . z_u + b'_i)`` is fitted with the log loss to 1 on
    the user's items and 0 on sampled negatives. One step trains one user;
    an epoch visits every user once, in random order.

    Ranking is a dot product: at test time nothing is dropped and the score
    ``[z_u, 1] . [W'_i, b'_i]`` (the logit) ranks as the output does, so
    ``user_factors_``/``item_factors_`` have width ``hidden + 1`` and the
    library's evaluation and ``recommend`` apply unchanged.

    The defaults were tuned on a validation split of Last.fm leave-one-out (a
    second leave-one-out of the training part; the test items never seen):
    ``hidden=100, corruption=0.5, negatives=10, learning_rate=0.05, reg=0.01,
    epochs=50`` with Adagrad. On the test split they reach HR@100 0.576 against
    MF-BPR's 0.559 (3 seeds; ``docs/derivations.md`` section 11.6).

    Parameters
    ----------
    hidden : int, default 100
        Width H of the hidden layer (the paper's default is 50; 100 was better
        on Last.fm).
    corruption : float in [0, 1), default 0.5
        Drop-out probability ``q`` of each input entry.
    negatives : int, default 10
        Negatives per positive: a user with ``n`` training items gets
        ``min(negatives * n, n_items - n)`` distinct uniform negatives, drawn
        afresh at every step (the paper samples negatives in proportion to the
        observed items). The cost of an epoch grows with ``1 + negatives``.
    learning_rate : float, default 0.05
    reg : float, default 0.01
        L2 coefficient on the rows a step touches (``V_u``, the kept ``W_i``,
        the target ``W'_t``); the biases are not regularised.
    epochs : int, default 50
    optimizer : {"adagrad", "sgd"}, default "adagrad"
        Per-element Adagrad (accumulators start at ``initial_accumulator``) or
        constant-rate SGD.
    init_std : float, default 0.01
        Standard deviation of the Gaussian start of ``W``, ``V`` and ``W'``
        (the biases start at zero).
    initial_accumulator : float, default 0.1
    n_threads : int or None
        Threads (None: all of Numba's). The users are cut into one slice per
        thread, each with its own random streams; several threads update the
        shared tables without locks (Hogwild; see :mod:`aprnb.kernels.cdae`).
        ``1`` with a ``random_state`` is bitwise reproducible.
    random_state : None, int or numpy.random.Generator
    dtype : numpy.float32 or numpy.float64, default float32
    show_progress : bool, default True

    Attributes
    ----------
    user_factors_ : ndarray (n_users, hidden + 1)
        ``[z_u, 1]``, the uncorrupted hidden layer.
    item_factors_ : ndarray (n_items, hidden + 1)
        ``[W'_i, b'_i]``.
    weights_in_, user_nodes_, bias_hidden_, weights_out_, bias_out_ : ndarray
        The trained tables ``W``, ``V``, ``b``, ``W'``, ``b'``.
    acc_weights_in_, ... : ndarray
        Their Adagrad accumulators (empty under SGD). All ten are saved in
        the model file, so a loaded model can continue training
        (``fit(train, init=loaded)``).
    history_ : list of dict
        Per epoch: ``epoch``, the mean log ``loss`` per target, ``seconds``.
    """

    _extra_members = TABLES + ACCUMULATORS
    _no_perturbation = ("its ranking tables [z_u, 1] and [W'_i, b'_i] are the encoder's "
                        "output and the decoder, with a constant column; moving them is no "
                        "attack on what CDAE trains")

    def __init__(self, hidden=100, corruption=0.5, negatives=10, learning_rate=0.05, reg=0.01,
                 epochs=50, optimizer="adagrad", init_std=0.01, initial_accumulator=0.1,
                 n_threads=None, random_state=None, dtype=np.float32, show_progress=True):
        self.hidden = hidden
        self.corruption = corruption
        self.negatives = negatives
        self.learning_rate = learning_rate
        self.reg = reg
        self.epochs = epochs
        self.optimizer = optimizer
        self.init_std = init_std
        self.initial_accumulator = initial_accumulator
        self.n_threads = n_threads
        self.random_state = random_state
        self.dtype = dtype
        self.show_progress = show_progress

    @classmethod
    def _width(cls, params):
        hidden = params.get("hidden")
        return hidden + 1 if isinstance(hidden, int) else None

    # -- parameters -----------------------------------------------------------------------
    def _validate_params(self):
        check_positive_int(self.hidden, "hidden")
        check_float(self.corruption, "corruption", 0.0, 1.0, high_inclusive=False)
        check_positive_int(self.negatives, "negatives")
        check_float(self.learning_rate, "learning_rate", 0.0, low_inclusive=False)
        check_float(self.reg, "reg", 0.0)
        check_positive_int(self.epochs, "epochs", 0)
        check_float(self.init_std, "init_std", 0.0)
        self._check_common()

    # -- the starting point -----------------------------------------------------------------
    def _warm_start(self, init, n_users, n_items):
        """``init`` checked: None, or a fitted CDAE with tables of the right shapes."""
        if init is None:
            if self.init_std == 0:
                raise ValueError("init_std=0 starts W, V and W' at zero, where the hidden "
                                 "units are all equal and stay so; use a positive init_std "
                                 "(0.01), or warm-start with init=")
            return None
        if not isinstance(init, CDAE):
            raise TypeError(f"init must be None or a fitted (or loaded) CDAE, whose five "
                            f"tables the fit continues from; got {type(init).__name__}")
        init._check_fitted()
        tables = tuple(getattr(init, n + "_", None) for n in TABLES)
        want = _shapes(n_users, n_items, self.hidden)
        got = tuple(getattr(t, "shape", None) for t in tables)
        if got != want:
            raise ValueError(f"init has tables of shapes {got}, but train of shape "
                             f"{(n_users, n_items)} with hidden={self.hidden} needs {want}")
        accs = tuple(getattr(init, n + "_", None) for n in ACCUMULATORS)
        if not all(a is not None and a.shape == s for a, s in zip(accs, want)):
            accs = None
        return tables, accs

    def _start(self, source, n_users, n_items, rng, dt):
        """Fresh copies of the tables and accumulators to train in place."""
        shapes = _shapes(n_users, n_items, self.hidden)
        if source is None:
            t = running_threads(check_n_threads(self.n_threads))
            W = normal_factors(rng, n_items, self.hidden, self.init_std, dt, n_threads=t)
            V = normal_factors(rng, n_users, self.hidden, self.init_std, dt, n_threads=t)
            Wp = normal_factors(rng, n_items, self.hidden, self.init_std, dt, n_threads=t)
            tables = (np.array(W), np.array(V), np.zeros(self.hidden, dt), np.array(Wp),
                      np.zeros(n_items, dt))
            accs = None
        else:
            tables = tuple(np.array(a, dtype=dt) for a in source[0])
            accs = source[1]
        if self.optimizer != "adagrad":
            return tables, tuple(np.empty((0,) + s[1:], dt) for s in shapes)
        if accs is not None:
            return tables, tuple(np.array(a, dtype=dt) for a in accs)
        return tables, tuple(np.full(s, self.initial_accumulator, dt) for s in shapes)

    # -- fit --------------------------------------------------------------------------------
    def fit(self, train, init=None, callback=None):
        """Fit on a binary interaction matrix.

        Parameters
        ----------
        train : Dataset, sparse matrix or dense array, shape (n_users, n_items)
        init : fitted or loaded CDAE, optional
            Warm start from its tables (copied; ``init`` is never modified) and,
            with Adagrad, its accumulators.
        callback : callable, Callback or list of them, optional
            As for :meth:`aprnb.BPR.fit`; ``run.P``/``run.Q`` are the current
            ranking factors.

        Returns
        -------
        self
        """
        self._validate_params()
        X, data = training_data(train)
        callbacks = as_callbacks(callback)
        dt = check_dtype(self.dtype)
        rng = check_random_state(self.random_state)
        source = self._warm_start(init, *X.shape)
        warn_full_users(X, stacklevel=2)
        tables, accs = self._start(source, *X.shape, rng, dt)
        run = _CDAERun(X, tables, accs, rng, check_n_threads(self.n_threads),
                       self.learning_rate, self.reg, self.corruption, self.negatives,
                       self.optimizer == "adagrad")
        run.total_epochs = self.epochs
        for cb in callbacks:
            cb.on_fit_start(self, X, run, callbacks)
        history = []
        run.provenance = record(X, data, init, fp=fingerprint(X))
        self._commit(run, history)
        try:
            self._epochs(run, callbacks, history)
        except DivergenceError as e:
            self._commit(run, history)
            raise DivergenceError(f"CDAE: {e}; the model keeps epoch {len(history)}. Use a "
                                  f"smaller learning_rate (now {self.learning_rate}) or a "
                                  f"larger reg") from None
        except KeyboardInterrupt:
            self._commit(run, history)
            warn_interrupted(self, history)
            raise
        for cb in callbacks:
            cb.on_fit_end(run)
        run._good = run.snapshot()       # an EarlyStopping restore is the final state
        self._commit(run, history)
        return self

    def _epochs(self, run, callbacks, history):
        with tqdm(total=run.total_epochs, disable=not self.show_progress, desc="CDAE",
                  unit="epoch", leave=False) as bar:
            for e in range(run.total_epochs):
                stats = run.epoch(e)
                history.append(stats)
                self._commit(run, history)
                bar.update(1)
                bar.set_postfix(loss=f"{stats['loss']:.4f}")
                stop = [cb.on_epoch_end(e + 1, stats, run) for cb in callbacks]
                if any(s is False for s in stop):
                    return

    def _commit(self, run, history):
        """Make copies of the last good state the model's fitted state."""
        tables, accs, P, Q = run.parameters()
        for name, a in zip(TABLES + ACCUMULATORS, tables + accs):
            setattr(self, name + "_", a.copy())
        self.user_factors_, self.item_factors_ = P.copy(), Q.copy()
        self.history_ = history
        self._set_provenance(run.X, run.provenance)

    # -- model files ----------------------------------------------------------------------
    def _check_loaded(self, path):
        n_users, n_items = self.user_factors_.shape[0], self.item_factors_.shape[0]
        dt = self.user_factors_.dtype
        shapes = _shapes(n_users, n_items, self.hidden)
        adagrad = self.optimizer == "adagrad"
        for name, shape in zip(TABLES, shapes):
            a = getattr(self, name + "_")
            if a.shape != shape or a.dtype != dt or not np.all(np.isfinite(a)):
                raise ValueError(f"{path}: CDAE table {name!r} has shape {a.shape} and dtype "
                                 f"{a.dtype}, or non-finite values; the factors need {shape} "
                                 f"{dt}, finite")
        for name, shape in zip(ACCUMULATORS, shapes):
            a = getattr(self, name + "_")
            need = shape if adagrad else (0,) + shape[1:]
            if a.shape != need or a.dtype != dt or not np.all(a > 0):
                raise ValueError(f"{path}: CDAE accumulator {name!r} has shape {a.shape} and "
                                 f"dtype {a.dtype}, or non-positive values; optimizer="
                                 f"{self.optimizer!r} needs {need} {dt}, positive")
        Q = np.column_stack([self.weights_out_, self.bias_out_])
        if not np.array_equal(Q, self.item_factors_):
            raise ValueError(f"{path}: CDAE item_factors are not [weights_out, bias_out]")
