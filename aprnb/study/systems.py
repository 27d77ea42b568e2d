"""The paper's other systems: CDAE, IRGAN, NeuMF and APR on NeuMF, beside MF-BPR and AMF.

The APR paper's accuracy table compares six systems (ItemPop, MF-BPR, CDAE,
IRGAN, NeuMF, AMF). :mod:`aprnb.study.reproduce` trains MF-BPR and AMF (and
their ablations); this module adds the others to the leave-one-out protocol, with
the same discipline:

1. **Selection on validation.** Each system has a small grid of candidate
   settings (:data:`SYSTEMS`). With the first seed, every candidate is trained
   on the validation split's training part and scored on its held-out items; the
   best by the protocol's metric is kept. IRGAN starts from the validation
   MF-BPR, as the paper starts it from a trained MF-BPR; APR on NeuMF starts from
   the selected NeuMF.
2. **Several seeds.** For each seed, every system is trained on the full training
   data with the selected settings (IRGAN from that seed's MF-BPR, APR on NeuMF
   from that seed's NeuMF, next to NeuMF continued for the same epochs: the pair
   that says whether APR helps NeuMF) and scored once on test, per user, so
   that the paired statistics of :mod:`aprnb.study.reproduce` apply.

A system is described by data, not code: the class (by its name in
:mod:`aprnb.models`), fixed parameters, the candidates, the model it starts from
and how many epochs it trains. ``quick`` runs shrink the epochs.
"""
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field

from .. import models
from .report import log, settings_label


@dataclass(frozen=True)
class System:
    """One row of the table: how to train it and what to choose on validation.

    ``start``: None (trained from scratch), ``"MF-BPR"`` (``fit(init=)`` the
    seed's MF-BPR trained ``E`` epochs) or the name of another system (its
    trained model of the same seed). ``continued``: also train the start system
    for the same epochs and report it under this name (the fair baseline of a
    warm-started arm).
    """
    name: str
    cls: str
    params: dict
    epochs: int
    quick_epochs: int
    grid: tuple = ({},)
    start: str = None
    continued: str = None
    extra: dict = field(default_factory=dict)


#: The systems beyond MF. Each class's defaults are the settings its author chose on a
#: Last.fm validation split (docs/derivations.md, sections 11-13); the grids add one
#: alternative each, chosen again on the study's own validation split.
_NEUMF = dict(factors=64, layers=(64, 32, 16, 8), negatives=8, learning_rate=0.05,
              batch_size=256, reset_optimizer=False)
SYSTEMS = (
    System("CDAE", "CDAE", {}, epochs=50, quick_epochs=3, grid=({}, {"hidden": 50})),
    System("IRGAN", "IRGAN", {}, epochs=10, quick_epochs=1,
           grid=({}, {"g_learning_rate": 0.001}), start="MF-BPR"),
    # NCF's pre-training (GMF and MLP alone, fused) against none; the fused NeuMF
    # overfits Last.fm within 1-2 epochs, so those candidates stop early
    # (docs/results.md: the sweep on the validation split behind these candidates)
    System("NeuMF", "NeuMF", _NEUMF, epochs=9, quick_epochs=2,
           grid=({}, {"negatives": 16, "pretrain_epochs": 5, "epochs": 1},
                 {"negatives": 16, "pretrain_epochs": 5, "epochs": 2})),
    # both NeuMF arms keep the Adagrad state of the NeuMF they continue (a fair pair)
    System("NeuMF + APR", "NeuMF", dict(_NEUMF, adversarial=True, reg_adv=1.0), epochs=5,
           quick_epochs=1, grid=({"eps": 0.05}, {"eps": 0.2}, {"eps": 0.5}), start="NeuMF",
           continued="NeuMF (continued)"),
)


#: Settings of a fresh fit only: a system that continues another one does not inherit them.
_FRESH_ONLY = ("epochs", "pretrain_epochs")


def make_model(system, quick, n_threads, seed, cand):
    """The unfitted model of ``system`` with candidate settings ``cand`` (which may set
    ``epochs``; a quick run caps them, and any pre-training, at ``quick_epochs``)."""
    cls = getattr(models, system.cls)
    params = {**system.params, "epochs": system.epochs, **cand}
    if quick:
        params["epochs"] = min(params["epochs"], system.quick_epochs)
        if params.get("pretrain_epochs"):
            params["pretrain_epochs"] = min(params["pretrain_epochs"], system.quick_epochs)
    return cls(**params, n_threads=n_threads, random_state=seed, show_progress=False)


def select(systems, train, valid, proto, k, metric, bpr, n_threads, seed, quick, score,
           pool=None):
    """Step 1: the candidate of each system that scores best on validation.

    ``bpr``: the MF-BPR trained on ``train`` (the start of IRGAN-like systems);
    ``score(model, train, test)``: the validation metric (picklable when ``pool``
    is given). ``pool``: an executor (worker processes) that fits the candidates
    side by side; None fits them one by one here. A system's candidates start as
    soon as the system it continues is chosen, so IRGAN's candidates need not wait
    for NeuMF's. Every candidate is fit with ``seed`` alone, so with one thread per
    fit (bitwise reproducible) the choice does not depend on ``pool``; ties go to the
    earlier candidate. Returns ``{name:
    {"params": chosen, "val": {candidate label: value}}}``, in the order of
    ``systems``.
    """
    chosen, fitted, running, todo = {}, {"MF-BPR": bpr}, {}, list(systems)
    while todo or running:
        for system in [s for s in todo if s.start is None or s.start in fitted]:
            todo.remove(system)
            init = fitted.get(system.start) if system.start else None
            cands = [_inherited(system, chosen, own) for own in system.grid]
            running[system.name] = (system, cands, [submit(
                pool, _fit_candidate, system, quick, n_threads, seed, cand, train, init,
                valid, score) for cand in cands])
        if not running:
            raise ValueError(f"systems {[s.name for s in todo]} start from systems that "
                             "are not selected")
        busy = [f for _, _, futs in running.values() for f in futs if not f.done()]
        if all(any(f in busy for f in futs) for _, _, futs in running.values()):
            wait(busy, return_when=FIRST_COMPLETED)     # (only unfinished: no busy loop)
        for name in [n for n, (_, _, futs) in running.items() if all(f.done() for f in futs)]:
            system, cands, futs = running.pop(name)
            vals, best = {}, None
            for own, cand, fut in zip(system.grid, cands, futs):
                v, model = fut.result()
                vals[settings_label(cand)] = v
                if best is None or v > best[0]:
                    best = (v, own, model)
            fitted[name] = best[2]
            chosen[name] = {"params": best[1], "val": vals}
            log(f"  [{proto}] validation {metric} of {name}: {vals} -> {best[1]}")
    return {s.name: chosen[s.name] for s in systems}


def _fit_candidate(system, quick, n_threads, seed, cand, train, init, valid, score):
    """One candidate fit on ``train`` and scored on ``valid``: ``(value, model)``."""
    model = make_model(system, quick, n_threads, seed, cand).fit(train, init=init)
    return score(model, train, valid), model


def submit(pool, fn, *args):
    """``pool.submit(fn, *args)``, or a future of ``fn(*args)`` run now if ``pool`` is None."""
    if pool is not None:
        return pool.submit(fn, *args)
    fut = Future()
    fut.set_result(fn(*args))
    return fut


def _inherited(system, chosen, own):
    """A candidate of a system that continues another one: the settings chosen for that
    one, then its own (the same network, trained on)."""
    base = chosen.get(system.start, {}).get("params", {})
    return {**_continuing(base), **own}


def _continuing(params):
    """``params`` without the settings of a fresh fit (:data:`_FRESH_ONLY`)."""
    return {k: v for k, v in params.items() if k not in _FRESH_ONLY}


def train(systems, chosen, train_data, bf, n_threads, seed, quick):
    """Step 2 for one seed: ``({name: fitted model}, {name: seconds})``.

    ``bf``: this seed's MF-BPR after ``E`` epochs (the start of ``start="MF-BPR"``).
    """
    fitted, seconds = {"MF-BPR": bf}, {}
    for system in systems:
        init = fitted.get(system.start) if system.start else None
        cand = _inherited(system, chosen, chosen[system.name]["params"])
        t0 = time.perf_counter()
        fitted[system.name] = make_model(system, quick, n_threads, seed, cand).fit(
            train_data, init=init)
        seconds[system.name] = time.perf_counter() - t0
        if system.continued:
            base = next(s for s in systems if s.name == system.start)
            t0 = time.perf_counter()
            more = make_model(base, quick, n_threads, seed,
                              _continuing(chosen[base.name]["params"]))
            more.set_params(epochs=system.quick_epochs if quick else system.epochs)
            fitted[system.continued] = more.fit(train_data, init=init)
            seconds[system.continued] = time.perf_counter() - t0
    del fitted["MF-BPR"]
    return fitted, seconds
