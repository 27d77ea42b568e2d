"""``python -m aprnb reproduce``: the APR paper's tables and figures on real data.

For every data set and both protocols (leave-one-out with HR/NDCG@100, and the
data set's own holdout split with Recall/NDCG@20):

1. Settings are the paper's (64 factors, per-triple Adagrad, learning rate
   0.05, reg 0, init std 0.01, reg_adv 1). What is *chosen* -- whether MF-BPR
   is reported after ``E`` or ``E + E_apr`` epochs and AMF's ``eps`` -- is chosen
   on a validation split carved out of the training data, never on test.
2. The chosen configurations are retrained on the full training data, AMF
   starting from the MF-BPR trained ``E`` epochs (as in the paper), and
   evaluated once on test.
3. Robustness: relative change of NDCG@100 (leave-one-out) under adversarial and
   random perturbations at eps 0.5, 1 and 2, MF-BPR vs AMF.
4. Figures: MF-BPR NDCG@100 against eps (adversarial vs random), and the test
   curve of MF-BPR continued as BPR vs switched to APR (for illustration only;
   nothing is selected on it).

Writes ``results.json``, ``results.md`` and PNG figures (matplotlib extra) to ``out``;
the markdown and the figures are drawn by :mod:`aprnb.study.report`.
"""
import json
import os
import time

import numpy as np

from ..data import holdout_split, leave_one_out, merge, open_dataset
from ..evaluation import evaluate
from ..models import APR, BPR, ItemPop, Validation
from ..perturbation import robustness
from .report import log, plot, write_markdown

PAPER = dict(factors=64, learning_rate=0.05, reg=0.0, init_std=0.01, optimizer="adagrad")
EPS_GRID = (0.5, 1.0)
ROBUST_EPS = (0.5, 1.0, 2.0)
FIG_EPS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)


def _protocols(name, train, test, seed):
    """(protocol label, train, test, eval protocol, k, metric) per protocol."""
    full = merge(train, test)
    tr_loo, te_loo = leave_one_out(full, random_state=seed)
    return [("loo", tr_loo, te_loo, "loo", 100, "ndcg@100"),
            ("holdout", train, test, "holdout", 20, "ndcg@20")]


def _validation(train, protocol, seed):
    if protocol == "loo":
        return leave_one_out(train, random_state=seed + 1)
    return holdout_split(train, 0.2, random_state=seed + 1)


def _fit_with_curve(cls, train, epochs, common, curve, every, init=None, **kw):
    """Fit ``cls(epochs=epochs, **common, **kw)`` on ``train`` (from ``init``), scoring
    ``curve = (test, protocol, k, metric)`` every ``every`` epochs.

    Returns ``(model, seconds, [(epoch, metric value), ...])``. The only place that
    asks ``fit`` for a learning curve.
    """
    test, proto, k, metric = curve
    model = cls(epochs=epochs, **common, **kw)
    t0 = time.perf_counter()
    model.fit(train, init=init, callback=Validation(test, k=k, protocol=proto, metric=metric,
                                                    every=every))
    seconds = time.perf_counter() - t0
    return model, seconds, [(h["epoch"], h[metric]) for h in model.history_ if metric in h]


def _select(label, train, proto, k, metric, epochs, apr_epochs, common, seed):
    """Step 1: MF-BPR's epochs and AMF's eps, chosen on a validation split of ``train``.

    Only the end point of each validation run is used, so it is scored once.
    """
    tr_v, va = _validation(train, proto, seed)
    vcurve = (va, proto, k, metric)
    b1, _, c1 = _fit_with_curve(BPR, tr_v, epochs, common, vcurve, epochs)
    _, _, c2 = _fit_with_curve(BPR, tr_v, apr_epochs, common, vcurve, apr_epochs, init=b1)
    v_bpr_e, v_bpr_more = c1[-1][1], c2[-1][1]
    bpr_more = v_bpr_more > v_bpr_e
    sel = {"bpr_epochs": epochs + (apr_epochs if bpr_more else 0),
           "val_bpr": {epochs: v_bpr_e, epochs + apr_epochs: v_bpr_more}, "val_amf": {}}
    for eps in EPS_GRID:
        _, _, ca = _fit_with_curve(APR, tr_v, apr_epochs, common, vcurve, apr_epochs,
                                   init=b1, eps=eps, reg_adv=1.0)
        sel["val_amf"][eps] = ca[-1][1]
    sel["eps"] = max(sel["val_amf"], key=sel["val_amf"].get)
    log(f"  [{label}] validation {metric}: MF-BPR {sel['val_bpr']}, AMF {sel['val_amf']} "
        f"-> MF-BPR {sel['bpr_epochs']} epochs, AMF eps {sel['eps']}")
    return sel, bpr_more


def _curves(c_bf, c_bc, c_af, epochs):
    """The figure's curves: MF-BPR continued, and AMF from the end of MF-BPR's E epochs."""
    bpr = [(e if i < len(c_bf) else e + epochs, m) for i, (e, m) in enumerate(c_bf + c_bc)]
    amf = c_bf[-1:] + [(e + epochs, m) for e, m in c_af]
    return {"bpr": bpr, "amf": amf, "bpr_phase_end": epochs}


def run_protocol(label, train, test, proto, k, metric, epochs, apr_epochs, every, n_threads,
                 seed):
    """Validation-based selection, final training, test metrics and curves for one split."""
    common = dict(PAPER, n_threads=n_threads, random_state=seed, show_progress=True)
    out = {"protocol": label, "metric": metric, "epochs": epochs, "apr_epochs": apr_epochs}
    sel, bpr_more = _select(label, train, proto, k, metric, epochs, apr_epochs, common, seed)
    out["selection"] = sel

    # 2. final models on the full training data (test curves for the figure only,
    #    drawn for leave-one-out; the holdout runs are scored once at the end)
    tcurve = (test, proto, k, metric)
    if label != "loo":
        every = apr_epochs
    pop = ItemPop().fit(train)
    bf, t_b, c_bf = _fit_with_curve(BPR, train, epochs, common, tcurve, every)
    bc, t_c, c_bc = _fit_with_curve(BPR, train, apr_epochs, common, tcurve, every, init=bf)
    af, t_a, c_af = _fit_with_curve(APR, train, apr_epochs, common, tcurve, every, init=bf,
                                    eps=sel["eps"], reg_adv=1.0)
    bpr_final = bc if bpr_more else bf
    out["curves"] = _curves(c_bf, c_bc, c_af, epochs)
    ev = {}
    for name, model in (("ItemPop", pop), ("MF-BPR", bpr_final), ("AMF", af),
                        ("MF-BPR (E epochs)", bf), ("MF-BPR (E + E_apr epochs)", bc)):
        res = evaluate(model, train, test, k=(k,), protocol=proto, n_threads=n_threads)
        ev[name] = {m: res[m] for m in res if m != "n_users"}
    out["test"] = ev
    out["seconds"] = {"bpr_E": t_b, "bpr_more": t_c, "amf": t_a,
                      "bpr_epoch": float(np.median([h["seconds"] for h in bf.history_])),
                      "amf_epoch": float(np.median([h["seconds"] for h in af.history_]))}
    log(f"  [{label}] test: " + ", ".join(f"{n} {v[metric]:.4f}" for n, v in ev.items()))
    return out, bpr_final, af


def _robustness(tr, te, bpr, amf, n_threads, seed):
    """Step 3 (leave-one-out): the robustness tables and the eps curve of the figure."""
    rob = {}
    for mname, model in (("MF-BPR", bpr), ("AMF", amf)):
        rep = robustness(model, tr, te, eps=ROBUST_EPS, kinds=("adversarial", "random"),
                         k=100, random_state=seed, n_threads=n_threads)
        rob[mname] = [dict(r) for r in rep]
        log(f"  [robustness] {mname}\n{rep}")
    fig = robustness(bpr, tr, te, eps=FIG_EPS[1:], kinds=("adversarial", "random"),
                     k=100, random_state=seed, n_threads=n_threads)
    return rob, [dict(r) for r in fig]


def run_dataset(path, epochs, apr_epochs, every, n_threads, seed):
    ds = open_dataset(path, split="given")
    name, train, test = ds.name, ds.train, ds.test
    log(f"{name}: {train.shape[0]} users, {train.shape[1]} items, {train.nnz} train / "
        f"{test.nnz} test")
    res = {"name": name, "shape": list(train.shape), "protocols": {}}
    for label, tr, te, proto, k, metric in _protocols(name, train, test, seed):
        out, bpr, amf = run_protocol(label, tr, te, proto, k, metric, epochs, apr_epochs, every,
                                     n_threads, seed)
        if label == "loo":
            out["robustness"], out["eps_curve"] = _robustness(tr, te, bpr, amf, n_threads,
                                                              seed)
        res["protocols"][label] = out
    return res


def reproduce(paths, out="results", quick=False, n_threads=None, seed=0, epochs=None,
              apr_epochs=None):
    """Run the whole study on each data folder in ``paths``; returns the results list."""
    os.makedirs(out, exist_ok=True)
    epochs = epochs or (20 if quick else 500)
    apr_epochs = apr_epochs or (10 if quick else 250)
    every = max(1, apr_epochs // 5)
    results = []
    command = "python -m aprnb reproduce --data " + " ".join(paths) + f" --out {out}" + \
        (" --quick" if quick else "") + \
        (f" --threads {n_threads}" if n_threads is not None else "")
    for path in paths:
        t0 = time.perf_counter()
        res = run_dataset(path, epochs, apr_epochs, every, n_threads, seed)
        res["seconds"] = time.perf_counter() - t0
        res["figures"] = plot(res, out)
        results.append(res)
        with open(os.path.join(out, "results.json"), "w") as fh:
            json.dump(results, fh, indent=1, default=float)
        write_markdown(results, os.path.join(out, "results.md"), command)
        log(f"{res['name']} done in {res['seconds']:.0f} s -> {out}/results.md")
    return results
