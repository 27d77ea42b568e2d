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

Writes ``results.json``, ``results.md`` and PNG figures (matplotlib extra) to ``out``.
"""
import json
import os
import time

import numpy as np
from tqdm.auto import tqdm

from . import APR, BPR, ItemPop, evaluate, robustness
from .data import holdout_split, leave_one_out, merge, open_dataset

PAPER = dict(factors=64, learning_rate=0.05, reg=0.0, init_std=0.01, optimizer="adagrad")
EPS_GRID = (0.5, 1.0)
ROBUST_EPS = (0.5, 1.0, 2.0)
FIG_EPS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)


def _log(msg):
    tqdm.write(time.strftime("%H:%M:%S ") + msg)


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


def _fit(cls, train, epochs, common, init=None, curve=None, every=None, **kw):
    model = cls(epochs=epochs, **common, **kw)
    t0 = time.perf_counter()
    if curve is not None:
        test, proto, k = curve
        model.fit(train, init=init, validation=test, validation_protocol=proto,
                  validation_k=k, validation_every=every)
    else:
        model.fit(train, init=init)
    return model, time.perf_counter() - t0


def _curve(model, metric):
    return [(h["epoch"], h[metric]) for h in model.history_ if metric in h]


def run_protocol(label, train, test, proto, k, metric, epochs, apr_epochs, every, n_threads,
                 seed):
    """Validation-based selection, final training, test metrics and curves for one split."""
    common = dict(PAPER, n_threads=n_threads, random_state=seed, show_progress=True)
    ks = (k,)
    out = {"protocol": label, "metric": metric, "epochs": epochs, "apr_epochs": apr_epochs}

    # 1. selection on a validation split of the training data
    # Only the end point of each validation run is used, so it is scored once.
    tr_v, va = _validation(train, proto, seed)
    vcurve = (va, proto, k)
    b1, _ = _fit(BPR, tr_v, epochs, common, curve=vcurve, every=epochs)
    b2, _ = _fit(BPR, tr_v, apr_epochs, common, init=b1, curve=vcurve, every=apr_epochs)
    v_bpr_e, v_bpr_more = _curve(b1, metric)[-1][1], _curve(b2, metric)[-1][1]
    bpr_more = v_bpr_more > v_bpr_e
    sel = {"bpr_epochs": epochs + (apr_epochs if bpr_more else 0),
           "val_bpr": {epochs: v_bpr_e, epochs + apr_epochs: v_bpr_more}, "val_amf": {}}
    for eps in EPS_GRID:
        a, _ = _fit(APR, tr_v, apr_epochs, common, init=b1, curve=vcurve, every=apr_epochs,
                    eps=eps, reg_adv=1.0)
        sel["val_amf"][eps] = _curve(a, metric)[-1][1]
    eps_star = max(sel["val_amf"], key=sel["val_amf"].get)
    sel["eps"] = eps_star
    out["selection"] = sel
    _log(f"  [{label}] validation {metric}: MF-BPR {sel['val_bpr']}, AMF {sel['val_amf']} "
         f"-> MF-BPR {sel['bpr_epochs']} epochs, AMF eps {eps_star}")

    # 2. final models on the full training data (test curves for the figure only,
    #    drawn for leave-one-out; the holdout runs are scored once at the end)
    tcurve = (test, proto, k)
    if label != "loo":
        every = apr_epochs
    pop = ItemPop().fit(train)
    bf, t_b = _fit(BPR, train, epochs, common, curve=tcurve, every=every)
    bc, t_c = _fit(BPR, train, apr_epochs, common, init=bf, curve=tcurve, every=every)
    af, t_a = _fit(APR, train, apr_epochs, common, init=bf, curve=tcurve, every=every,
                   eps=eps_star, reg_adv=1.0)
    bpr_final = bc if bpr_more else bf
    out["curves"] = {"bpr": _curve(bf, metric) + _curve(bc, metric),
                     "amf": _curve(bf, metric)[-1:] + [(e + epochs, m)
                                                      for e, m in _curve(af, metric)],
                     "bpr_phase_end": epochs}
    out["curves"]["bpr"] = [(e if i < len(_curve(bf, metric)) else e + epochs, m)
                            for i, (e, m) in enumerate(out["curves"]["bpr"])]
    ev = {}
    for name, model in (("ItemPop", pop), ("MF-BPR", bpr_final), ("AMF", af),
                        ("MF-BPR (E epochs)", bf), ("MF-BPR (E + E_apr epochs)", bc)):
        res = evaluate(model, train, test, k=ks, protocol=proto, n_threads=n_threads)
        ev[name] = {m: res[m] for m in res if m != "n_users"}
    out["test"] = ev
    out["seconds"] = {"bpr_E": t_b, "bpr_more": t_c, "amf": t_a,
                      "bpr_epoch": float(np.median([h["seconds"] for h in bf.history_])),
                      "amf_epoch": float(np.median([h["seconds"] for h in af.history_]))}
    _log(f"  [{label}] test: " + ", ".join(f"{n} {v[metric]:.4f}" for n, v in ev.items()))
    return out, bpr_final, af


def run_dataset(path, epochs, apr_epochs, every, n_threads, seed):
    ds = open_dataset(path, split="given")
    name, train, test = ds.name, ds.train, ds.test
    _log(f"{name}: {train.shape[0]} users, {train.shape[1]} items, {train.nnz} train / "
         f"{test.nnz} test")
    res = {"name": name, "shape": list(train.shape), "protocols": {}}
    for label, tr, te, proto, k, metric in _protocols(name, train, test, seed):
        out, bpr, amf = run_protocol(label, tr, te, proto, k, metric, epochs, apr_epochs, every,
                                     n_threads, seed)
        if label == "loo":
            rob = {}
            for mname, model in (("MF-BPR", bpr), ("AMF", amf)):
                rep = robustness(model, tr, te, eps=ROBUST_EPS, kinds=("adversarial", "random"),
                                 k=100, random_state=seed, n_threads=n_threads)
                rob[mname] = [dict(r) for r in rep]
                _log(f"  [robustness] {mname}\n{rep}")
            fig = robustness(bpr, tr, te, eps=FIG_EPS[1:], kinds=("adversarial", "random"),
                             k=100, random_state=seed, n_threads=n_threads)
            out["robustness"] = rob
            out["eps_curve"] = [dict(r) for r in fig]
        res["protocols"][label] = out
    return res


def _pct(x):
    return f"{x:+.1%}"


def _r4(d):
    return "{" + ", ".join(f"{k}: {v:.4f}" for k, v in d.items()) + "}"


#: The APR paper's Gowalla numbers (its own preprocessing and time-based
#: leave-one-out split, so they frame ours rather than match them).
PAPER_GOWALLA = {"accuracy": {"ItemPop": (0.1560, 0.0428), "MF-BPR": (0.5072, 0.1878),
                              "AMF": (0.5763, 0.2212)},
                 "robustness": {"MF-BPR": (-0.263, -0.530, -0.780),
                                "AMF": (-0.029, -0.132, -0.292)}}


def write_markdown(results, path, command):
    L = ["# Reproduction results", "", f"Generated by `{command}` on "
         f"{time.strftime('%Y-%m-%d %H:%M')}.", ""]
    for r in results:
        L += [f"## {r['name']} ({r['shape'][0]} users, {r['shape'][1]} items)", ""]
        for label, p in r["protocols"].items():
            m = p["metric"]
            k = m.split("@")[1]
            names = ("hr", "ndcg") if label == "loo" else ("recall", "ndcg")
            sel = p["selection"]
            L += [f"### Accuracy, {label} ({'leave-one-out, full ranking' if label == 'loo' else 'holdout split of the files, full ranking'})",
                  "", f"MF-BPR {p['epochs']} epochs, then AMF or MF-BPR {p['apr_epochs']} more. "
                  f"Selected on validation: MF-BPR reported after {sel['bpr_epochs']} epochs; "
                  f"AMF eps = {sel['eps']} (validation {m}: MF-BPR by epochs "
                  f"{_r4(sel['val_bpr'])}, AMF by eps {_r4(sel['val_amf'])}).", "",
                  f"| model | {names[0].upper()}@{k} | NDCG@{k} |", "|---|---|---|"]
            for name, v in p["test"].items():
                L.append(f"| {name} | {v[f'{names[0]}@{k}']:.4f} | {v[f'ndcg@{k}']:.4f} |")
            b, a = p["test"]["MF-BPR"], p["test"]["AMF"]
            L += ["", f"AMF vs reported MF-BPR: {names[0].upper()} "
                  f"{_pct(a[f'{names[0]}@{k}'] / b[f'{names[0]}@{k}'] - 1)}, NDCG "
                  f"{_pct(a[f'ndcg@{k}'] / b[f'ndcg@{k}'] - 1)}.", ""]
            if label == "loo" and r["name"] == "gowalla":
                L += ["The paper's Gowalla (HR@100 / NDCG@100, its own split): " + ", ".join(
                    f"{n} {h:.4f} / {g:.4f}" for n, (h, g) in PAPER_GOWALLA["accuracy"].items())
                    + ".", ""]
            if "robustness" in p:
                L += ["### Robustness (leave-one-out): relative change of NDCG@100", "",
                      "| model | noise | eps=0.5 | eps=1.0 | eps=2.0 |", "|---|---|---|---|---|"]
                for mname, rows in p["robustness"].items():
                    for kind in ("adversarial", "random"):
                        ch = [x["ndcg@100 change"] for x in rows if x["kind"] == kind]
                        L.append(f"| {mname} | {kind} | " + " | ".join(_pct(c) for c in ch)
                                 + " |")
                if r["name"] == "gowalla":
                    for mname, ch in PAPER_GOWALLA["robustness"].items():
                        L.append(f"| paper's {mname} (its Gowalla) | adversarial | "
                                 + " | ".join(_pct(c) for c in ch) + " |")
                L.append("")
        for fig in r.get("figures", []):
            L += [f"![{os.path.basename(fig)}]({os.path.basename(fig)})", ""]
    with open(path, "w") as fh:
        fh.write("\n".join(L))


def plot(result, out):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        _log("matplotlib is not installed (pip install 'aprnb[plot]'): figures skipped")
        return []
    files = []
    p = result["protocols"]["loo"]
    clean = [x for x in p["eps_curve"] if x["kind"] == "clean"][0]["ndcg@100"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for kind, style in (("adversarial", "o-"), ("random", "s--")):
        xs = [0.0] + [x["eps"] for x in p["eps_curve"] if x["kind"] == kind]
        ys = [clean] + [x["ndcg@100"] for x in p["eps_curve"] if x["kind"] == kind]
        ax.plot(xs, ys, style, label=f"{kind} noise")
    ax.set_xlabel("eps (per-row L2 norm of the perturbation)")
    ax.set_ylabel("NDCG@100")
    ax.set_title(f"MF-BPR under perturbation, {result['name']}")
    ax.legend()
    fig.tight_layout()
    f1 = os.path.join(out, f"{result['name']}_eps.png")
    fig.savefig(f1, dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    c = p["curves"]
    ax.plot(*zip(*c["bpr"]), label="MF-BPR continued")
    ax.plot(*zip(*c["amf"]), label="switched to APR (AMF)")
    ax.axvline(c["bpr_phase_end"], color="grey", lw=0.8, ls=":")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test NDCG@100 (illustration only)")
    ax.set_title(f"BPR then APR, {result['name']}")
    ax.legend()
    fig.tight_layout()
    f2 = os.path.join(out, f"{result['name']}_training.png")
    fig.savefig(f2, dpi=120)
    plt.close(fig)
    return files + [f1, f2]


def render(json_path, command):
    """Re-render ``results.md`` (and the figures) from a ``results.json`` of a run."""
    out = os.path.dirname(os.path.abspath(json_path))
    with open(json_path) as fh:
        results = json.load(fh)
    for res in results:
        res["figures"] = plot(res, out)
    write_markdown(results, os.path.join(out, "results.md"), command)
    return results


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
        _log(f"{res['name']} done in {res['seconds']:.0f} s -> {out}/results.md")
    return results
