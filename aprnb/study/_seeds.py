"""One training seed of the study: the trained arms, their test scores and robustness.

:func:`run_seed` is a module-level function of plain arguments so that
:func:`aprnb.study.reproduce.reproduce` can run seeds in worker processes
(``--jobs``). Every arm of one seed starts from the same MF-BPR trained ``E``
epochs with that seed, so that the comparisons between arms are paired twice:
on the same users, and on the same training seed.
"""
import time

import numpy as np

from ..evaluation import evaluate
from ..models import APR, BPR, VAT, Validation
from ..perturbation import robustness
from . import systems as _systems
from .report import log

#: The paper's settings (64 factors, per-triple Adagrad, lr 0.05, reg 0, std 0.01).
PAPER = dict(factors=64, learning_rate=0.05, reg=0.0, init_std=0.01, optimizer="adagrad")
#: Perturbation sizes of the robustness tables and of the eps figure.
ROBUST_EPS = (0.5, 1.0, 2.0)
FIG_EPS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
#: One-step (the paper's), multi-step (PGD, 10 steps) and random noise.
ATTACKS = ("adversarial", "pgd", "random")
#: The arms that the robustness tables perturb.
ROBUST_MODELS = ("MF-BPR", "AMF", "VAT")
#: Arms beyond MF that the robustness tables perturb (one-step and random noise only),
#: when the study trains them.
ROBUST_SYSTEMS = ("NeuMF (continued)", "NeuMF + APR")


def fit(cls, train, epochs, common, curve=None, init=None, **kw):
    """Fit ``cls(epochs=epochs, **common, **kw)`` on ``train`` from ``init``.

    ``curve = (test, protocol, k, metric, every)`` scores ``test`` every
    ``every`` epochs (for a figure or for validation). Returns ``(model, seconds,
    [(epoch, value), ...])``.
    """
    model = cls(epochs=epochs, **common, **kw)
    callback = None
    if curve is not None:
        test, proto, k, metric, every = curve
        callback = Validation(test, k=k, protocol=proto, metric=metric, every=every)
    t0 = time.perf_counter()
    model.fit(train, init=init, callback=callback)
    seconds = time.perf_counter() - t0
    points = [] if curve is None else [(h["epoch"], h[curve[3]]) for h in model.history_
                                       if curve[3] in h]
    return model, seconds, points


def score(model, train, test, proto, k, n_threads):
    """Test scores of one model: the aggregate dict and the per-user arrays.

    Full-ranking protocols add the beyond-accuracy metrics.
    """
    res = evaluate(model, train, test, k=(k,), protocol=proto, n_threads=n_threads,
                   per_user=True, beyond_accuracy=proto in ("loo", "holdout"))
    agg = {m: float(v) for m, v in res.items() if m not in ("per_user", "users", "n_users")}
    return agg, res["users"], res["per_user"]


def _arms(task, sel, common):
    """Train the arms of one seed; returns ``{name: model}``, seconds and curves."""
    train, epochs, extra = task["train"], task["epochs"], task["apr_epochs"]
    curve = task.get("curve")
    bf, t_b, c_bf = fit(BPR, train, epochs, common, curve)
    bc, t_c, c_bc = fit(BPR, train, extra, common, curve, init=bf)
    af, t_a, c_af = fit(APR, train, extra, common, curve, init=bf, eps=sel["eps"],
                        reg_adv=1.0)
    vt, t_v, _ = fit(VAT, train, extra, common, init=bf, **sel["vat"])
    arms = {"MF-BPR": bc if sel["bpr_epochs"] > epochs else bf, "AMF": af,
            "MF-BPR (E epochs)": bf, "MF-BPR (E + E_apr epochs)": bc, "VAT": vt}
    seconds = {"bpr_E": t_b, "bpr_more": t_c, "amf": t_a, "vat": t_v}
    if task.get("random_noise", True):
        arms["APR, random noise"], seconds["apr_random"], _ = fit(
            APR, train, extra, common, init=bf, eps=sel["eps"], reg_adv=1.0, noise="random")
    seconds.update({
        "bpr_epoch": float(np.median([h["seconds"] for h in bf.history_])),
        "amf_epoch": float(np.median([h["seconds"] for h in af.history_])),
        "vat_epoch": float(np.median([h["seconds"] for h in vt.history_]))})
    curves = None
    if curve is not None:
        bpr = c_bf + [(e + epochs, m) for e, m in c_bc]
        curves = {"bpr": bpr, "amf": c_bf[-1:] + [(e + epochs, m) for e, m in c_af],
                  "bpr_phase_end": epochs}
    return arms, seconds, curves


def run_seed(task, sel, seed, n_threads, show_progress=False, first=False):
    """Train and score every arm of one protocol with training seed ``seed``.

    Parameters
    ----------
    task : dict
        ``label, train, test, proto, k, metric, epochs, apr_epochs`` and,
        optionally, ``curve = (test, protocol, k, metric, every)`` (a test curve
        for the figure, drawn for the first seed only; nothing is selected on it),
        ``random_noise`` (default True: also train the random-noise arm) and
        ``robustness`` (default True: leave-one-out perturbs the models).
    sel : dict
        The configuration chosen on validation (:func:`reproduce._select`).
    seed : int
    n_threads : int or None
    show_progress : bool
    first : bool
        The first seed also draws the figures' curves.

    Returns
    -------
    dict
        ``seed``, ``test`` (model -> metrics), ``users`` and ``per_user`` (model ->
        metric -> array, for the paired statistics), ``seconds``, and for
        leave-one-out ``robustness`` (model -> report rows, unless the task's
        ``robustness`` is False) and, for the first
        seed, ``eps_curve`` and ``curves``.
    """
    common = dict(PAPER, n_threads=n_threads, random_state=seed, show_progress=show_progress)
    if not first:
        task = dict(task, curve=None)
    arms, seconds, curves = _arms(task, sel, common)
    train, test, proto, k = task["train"], task["test"], task["proto"], task["k"]
    if task.get("systems"):
        more, secs = _systems.train(task["systems"], sel["systems"], train,
                                    arms["MF-BPR (E epochs)"], n_threads, seed,
                                    task.get("quick", False))
        arms.update(more)
        seconds.update({f"system {n}": v for n, v in secs.items()})
    out = {"seed": seed, "test": {}, "per_user": {}, "seconds": seconds}
    for name, model in arms.items():
        out["test"][name], out["users"], out["per_user"][name] = score(
            model, train, test, proto, k, n_threads)
    if curves is not None:
        out["curves"] = curves
    if task["label"] == "loo" and task.get("robustness", True):
        out["robustness"] = {
            name: [dict(r) for r in robustness(arms[name], train, test, eps=ROBUST_EPS,
                                               kinds=ATTACKS, k=k, random_state=seed,
                                               n_threads=n_threads)]
            for name in ROBUST_MODELS}
        for name in ROBUST_SYSTEMS:
            if name in arms:
                out["robustness"][name] = [dict(r) for r in robustness(
                    arms[name], train, test, eps=ROBUST_EPS, kinds=("adversarial", "random"),
                    k=k, random_state=seed, n_threads=n_threads)]
        if first:
            out["eps_curve"] = [dict(r) for r in robustness(
                arms["MF-BPR"], train, test, eps=FIG_EPS, kinds=("adversarial", "random"),
                k=k, random_state=seed, n_threads=n_threads)]
    m = task["metric"]
    log(f"  [{task['label']} seed {seed}] test {m}: " + ", ".join(
        f"{n} {v[m]:.4f}" for n, v in out["test"].items()))
    return out
