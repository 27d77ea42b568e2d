"""The training state of a factor model, and one epoch of it.

:class:`Training` prepares everything the epoch kernels need (factors,
optimizer state, the positives, the negative-sampling filter, the RNG streams)
once per ``fit``; :meth:`Training.epoch` runs one epoch, checks the factors,
and keeps the last good epoch so that a failure rolls back to it.

Threads and slices. An epoch's pairs are cut into ``n_slices`` slices, each
with its own RNG streams (:mod:`aprnb.kernels.epoch`). The slices run on
``min(n_threads, NUMBA_NUM_THREADS)`` threads: one thread runs them one after
another (bitwise reproducible with a seed); several run them at once, updating
the shared factors without locks (Hogwild). Results therefore depend on the
seed and ``n_slices``, and on ``n_threads`` only through Hogwild's races.
"""
import functools
import time
import warnings
from dataclasses import dataclass

import numpy as np

from .._memory import huge_page_aligned, huge_page_zeros, on_huge_pages
from .._threads import numba_threads, running_threads
from ..kernels import MODE_BPR, MODE_VAT, all_finite, epoch_parallel, epoch_serial
from ..kernels._rng import seed_states, shuffle_pairs
from ..kernels.batch import batch_parallel, batch_serial
from ..kernels.sampling import build_filter, sample_negatives
from ..kernels.vat import user_mean_losses, vulnerability_scale


class DivergenceError(FloatingPointError):
    """Training produced NaN or infinite factors; the model keeps its last good epoch."""


@dataclass(frozen=True)
class Phase:
    """A run of epochs with one kernel mode (a model's schedule is a list of them).

    ``reset``: restart the Adagrad accumulators when the phase starts.
    ``vul_lambda``: VAT's lambda, the upper bound of the per-user radius factor
    (``MODE_VAT`` only).
    """
    epochs: int
    mode: int = MODE_BPR
    eps: float = 0.0
    reg_adv: float = 0.0
    reset: bool = False
    vul_lambda: float = 0.0


def vat_scale(run, vul_lambda):
    """VAT's per-user radius factors ``c_u`` at the current parameters of ``run``.

    Every training pair gets one fresh uniform negative from ``run``'s own VAT
    stream (seeded from the fit's generator after the epoch streams, so that
    the epochs draw exactly what APR's would); :func:`user_mean_losses` and
    :func:`vulnerability_scale` (``aprnb/kernels/vat.py``) turn the clean losses
    into ``c_u``, in the factors' dtype. ``docs/derivations.md`` section 10.
    """
    if run.vat_states is None:
        run.vat_states = seed_states(run.rng, 1)
    X = run.X
    negs = sample_negatives(X.indptr, X.indices, run.users, X.shape[1], run.vat_states,
                            run.filt)
    loss, count = user_mean_losses(run.P, run.Q, run.users, run.items, negs, X.shape[0])
    scale = np.empty(X.shape[0], dtype=run.P.dtype)
    vulnerability_scale(loss, count, float(vul_lambda), scale)
    return scale


def warn_interrupted(model, history, phase=None):
    """Warn that ``model.fit`` was stopped by Ctrl-C and holds the epochs in ``history``
    (the caller re-raises the KeyboardInterrupt); ``phase``: stopped in a phase that
    commits nothing (such as pre-training), so the model is as it was before ``fit``."""
    holds = (f"during {phase}; the model is unchanged" if phase else
             f"; the model holds the {len(history)} completed epoch(s)")
    sep = " " if phase else ""
    warnings.warn(f"{type(model).__name__}.fit interrupted{sep}{holds}", RuntimeWarning,
                  stacklevel=3)


def warn_full_users(X, stacklevel):
    """Warn when some users of ``X`` have every item (no negatives: never trained)."""
    full = int(np.count_nonzero(np.diff(X.indptr) >= X.shape[1]))
    if full:
        warnings.warn(f"{full} user(s) interacted with every item; they have no negatives "
                      f"and are skipped in training", RuntimeWarning, stacklevel=stacklevel + 1)


def positives(X):
    """``(users, items)`` of every training pair, users with every item left out
    (:func:`warn_full_users` says so)."""
    deg = np.diff(X.indptr)
    full = deg >= X.shape[1]
    if not full.any():              # the usual case: every pair, no mask to apply
        return np.repeat(np.arange(X.shape[0], dtype=X.indices.dtype), deg), X.indices.copy()
    users = np.repeat(np.arange(X.shape[0], dtype=X.indices.dtype), np.where(full, 0, deg))
    return users, X.indices[np.repeat(~full, deg)]


def sampling_filter(X, threads):
    """The negative-sampling filter of ``X`` (huge-page aligned), built on ``threads``."""
    with numba_threads(threads):
        return build_filter(X.indptr, X.indices, X.shape[1], zeros=huge_page_zeros)


def _kernel(batch_size, threads):
    if batch_size > 1:
        return functools.partial(batch_serial if threads == 1 else batch_parallel,
                                 batch_size=batch_size)
    return epoch_serial if threads == 1 else epoch_parallel


class Training:
    """Prepared state of one ``fit``: the arrays the kernels update, and how to run them.

    Parameters
    ----------
    X : canonical CSR training matrix
    P, Q, GP, GQ : initial factors and Adagrad accumulators (GP/GQ are empty
        for SGD). Training updates them in place (copies are made only of
        arrays that do not start on a huge page), so pass arrays that nothing
        else holds.
    rng : numpy Generator (seeds the RNG streams)
    filt : the :func:`sampling_filter` of ``X``
    pairs : the :func:`positives` of ``X`` (the caller has warned about users who
        have interacted with every item: :func:`warn_full_users`)
    initial : callable
        Returns fresh copies of ``(P, Q, GP, GQ)`` as they were passed in; used
        to roll back a failure in the first epoch (see below).
    n_threads, n_slices : int (see the module docstring)
    lr, reg : float; adagrad : bool; initial_accumulator : float; batch_size : int

    Attributes ``P, Q, GP, GQ`` are the current parameters; ``threads`` the
    threads the kernels run on.

    The last good state (:meth:`parameters` with ``good=True``) is a second copy
    of the parameters, refreshed after every epoch. It is first made at the end
    of the first epoch, where the copy is needed anyway: until then the current
    arrays still are the starting state, and a failure during the first epoch
    puts it back from ``initial`` (:meth:`rollback`). Set-up therefore allocates
    and writes the tables once, not twice (for a million users and items at 64
    factors, 0.5 GB less to touch before the first epoch).
    """

    def __init__(self, X, P, Q, GP, GQ, rng, n_threads, n_slices, lr, reg, adagrad,
                 initial_accumulator=0.1, batch_size=1, *, filt, pairs, initial):
        self.X = X
        self.threads = running_threads(n_threads)
        self.users, self.items = pairs
        self.filt = filt
        self.P, self.Q, self.GP, self.GQ = (a if on_huge_pages(a) else huge_page_aligned(a)
                                            for a in (P, Q, GP, GQ))
        self.slices = n_slices
        self.states = seed_states(rng, n_slices)
        self.rng, self.vat_states = rng, None       # VAT's stream: drawn on first use
        self.kernel = _kernel(batch_size, self.threads)
        self.lr, self.reg, self.adagrad = lr, reg, adagrad
        self.initial_accumulator = initial_accumulator
        self._initial = initial
        self._good = None           # the last good epoch's copies, from the first epoch on
        self._changed = False       # the current arrays moved away from the last good state

    def snapshot(self):
        """A copy of the parameters (factors and optimizer state)."""
        return tuple(a.copy() for a in (self.P, self.Q, self.GP, self.GQ))

    def restore(self, snap):
        """Put the parameters of :meth:`snapshot` back, in place."""
        for a, b in zip((self.P, self.Q, self.GP, self.GQ), snap):
            np.copyto(a, b)

    def parameters(self, good=False):
        """``(P, Q, GP, GQ)``: the current arrays, or the last good epoch's.

        Before the first epoch has ended, the last good state is the starting
        state, which the current arrays hold (or get back from :meth:`rollback`).
        """
        if good and self._good is not None:
            return self._good
        return self.P, self.Q, self.GP, self.GQ

    def rollback(self):
        """After a failure in the first epoch, put the starting state back in place.

        Later, the last good state has copies of its own and nothing is needed.
        """
        if self._good is None and self._changed:
            self.restore(self._initial())
            self._changed = False

    def epoch(self, epoch, phase, first_of_phase):
        """Run epoch ``epoch`` (0-based) of ``phase``; returns its stats dict.

        Raises :class:`DivergenceError` (after rolling the parameters back to the
        last good epoch) when the loss or the factors are not finite.
        """
        dt = self.P.dtype.type
        self._changed = True        # from here on the arrays may differ from the start
        if self.adagrad and first_of_phase and phase.reset:
            self.GP.fill(self.initial_accumulator)
            self.GQ.fill(self.initial_accumulator)
        t0 = time.perf_counter()
        # VAT only: BPR and APR call the kernel exactly as before
        extra = {"scale": vat_scale(self, phase.vul_lambda)} if phase.mode == MODE_VAT else {}
        with numba_threads(self.threads):
            if epoch == 0 and self.slices > 1:      # after this, each slice reshuffles
                shuffle_pairs(self.users, self.items, self.states, 0)
            loss, count = self.kernel(
                self.P, self.Q, self.GP, self.GQ, self.filt, self.X.indptr, self.X.indices,
                self.users, self.items, self.states, self.lr, self.reg, dt(phase.eps),
                dt(phase.reg_adv), phase.mode, self.adagrad, self.slices,
                shuffle=epoch > 0 or self.slices == 1, **extra)
        seconds = time.perf_counter() - t0
        if not (np.isfinite(loss) and all_finite(self.P) and all_finite(self.Q)):
            if self._good is None:
                self.rollback()
            else:
                self.restore(self._good)
            raise DivergenceError(f"training diverged at epoch {epoch + 1} (NaN or inf in "
                                  f"the factors)")
        if self._good is None:
            self._good = self.snapshot()
        else:
            for a, b in zip(self._good, (self.P, self.Q, self.GP, self.GQ)):
                np.copyto(a, b)
        return {"epoch": epoch + 1, "loss": loss / max(1, count), "seconds": seconds,
                "mode": {MODE_BPR: "bpr", MODE_VAT: "vat"}.get(phase.mode, "apr")}
