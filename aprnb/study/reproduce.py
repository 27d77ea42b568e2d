"""``python -m aprnb reproduce``: the APR paper's tables and figures on real data, with error bars.

For every data set and protocol (leave-one-out with HR/NDCG@100, and the data
set's own holdout split with Recall/NDCG@20):

1. **Selection on validation, never on test.** Settings are the paper's (64
   factors, per-triple Adagrad, learning rate 0.05, reg 0, init std 0.01,
   reg_adv 1). On a validation split carved out of the training data, with the
   first seed, the study chooses whether MF-BPR is reported after ``E`` or
   ``E + E_apr`` epochs, AMF's ``eps`` and VAT's ``eps``.
2. **Several training seeds.** For each seed, MF-BPR is trained ``E`` epochs
   on the full training data; MF-BPR continued, AMF, APR with random noise (the
   paper's ablation, at AMF's eps) and VAT (vulnerability-aware adversarial
   training, Zhang et al. 2024) all continue from it for ``E_apr`` epochs. Every
   arm is scored once on test, per user.
3. **Statistics.** Mean, sd and range over seeds per model; paired comparisons
   (:mod:`aprnb.stats`) of AMF against MF-BPR continued for the same epochs, of
   AMF against its random-noise ablation and of VAT against AMF: over seeds
   (relative gain per seed, t-test) and over users (seed-averaged per-user
   metrics: bootstrap interval, Wilcoxon and t-tests).
4. **Beyond accuracy** (coverage, Gini, ARP, APLT, novelty) for every model.
5. **Robustness** (leave-one-out): relative change of NDCG/HR@100 under the
   one-step adversary, a 10-step PGD adversary and random noise at eps 0.5, 1
   and 2, for MF-BPR, AMF and VAT, averaged over seeds.
6. **Figures** (first seed): MF-BPR NDCG@100 against eps, and the test curve of
   MF-BPR continued vs switched to APR (illustration only).

Seeds can run in parallel worker processes (``jobs``); with one thread per
process each seed is bitwise reproducible. Writes ``results.json``,
``results.md`` and PNG figures (matplotlib extra) to ``out``; the markdown and
figures are drawn by :mod:`aprnb.study.report`.
"""
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict
from functools import partial

import numpy as np

from .._threads import check_n_threads, max_threads
from .._validation import check_positive_int
from ..data import holdout_split, leave_one_out, merge, open_dataset
from ..models import APR, BPR, VAT, ItemPop
from ..stats import over_seeds, paired, paired_over_seeds
from . import systems as _systems
from ._seeds import PAPER, fit, run_seed, score
from .report import log, plot, write_markdown

#: AMF's and VAT's eps candidates, chosen on validation.
EPS_GRID = (0.5, 1.0)
#: (baseline, challenger) pairs of the paired comparisons.
COMPARISONS = (("MF-BPR (E + E_apr epochs)", "AMF"), ("APR, random noise", "AMF"),
               ("AMF", "VAT"), ("NeuMF (continued)", "NeuMF + APR"), ("NeuMF", "AMF"),
               ("IRGAN", "AMF"), ("CDAE", "AMF"))
PROTOCOLS = ("loo", "holdout")


def _tasks(train, test, seed, protocols, epochs, apr_epochs, every, systems=(), quick=False):
    """One task dict per protocol (see :func:`aprnb.study._seeds.run_seed`); the
    ``systems`` beyond MF (:mod:`aprnb.study.systems`) join leave-one-out, the
    protocol of the paper's table."""
    tasks = []
    if "loo" in protocols:
        tr, te = leave_one_out(merge(train, test), random_state=seed)
        tasks.append(dict(label="loo", train=tr, test=te, proto="loo", k=100,
                          metric="ndcg@100", curve=(te, "loo", 100, "ndcg@100", every),
                          systems=tuple(systems)))
    if "holdout" in protocols:
        tasks.append(dict(label="holdout", train=train, test=test, proto="holdout", k=20,
                          metric="ndcg@20"))
    for t in tasks:
        t.update(epochs=epochs, apr_epochs=apr_epochs, quick=quick)
    return tasks


def _val_score(model, train, valid, proto, k, n_threads, metric):
    """The validation metric of a system's candidate (module level: worker processes
    receive it)."""
    return score(model, train, valid, proto, k, n_threads)[0][metric]


def _val_end(cls, train, epochs, common, curve, init, kw):
    """The validation metric at the end of one validation fit (a worker task)."""
    return fit(cls, train, epochs, common, curve, init=init, **kw)[2][-1][1]


def _select(task, n_threads, seed, pool=None):
    """Step 1: MF-BPR's epochs, AMF's and VAT's eps, chosen on a validation split, and
    the systems' settings; with a ``pool``, every validation fit after the first
    MF-BPR runs in its worker processes.

    Only the end point of each validation run is used, so it is scored once.
    """
    proto, k, metric = task["proto"], task["k"], task["metric"]
    epochs, extra = task["epochs"], task["apr_epochs"]
    tr, va = (leave_one_out(task["train"], random_state=seed + 1) if proto == "loo"
              else holdout_split(task["train"], 0.2, random_state=seed + 1))
    common = dict(PAPER, n_threads=n_threads, random_state=seed, show_progress=False)

    b1, _, c1 = fit(BPR, tr, epochs, common, (va, proto, k, metric, epochs))
    curve = (va, proto, k, metric, extra)

    def queue(cls, **kw):           # a validation fit from b1, in the pool if there is one
        return _systems.submit(pool, _val_end, cls, tr, extra, common, curve, b1, kw)

    more = queue(BPR)
    amf = {e: queue(APR, eps=e, reg_adv=1.0) for e in EPS_GRID}
    vat = {e: queue(VAT, eps=e, reg_adv=1.0) for e in EPS_GRID}
    systems = None
    if task.get("systems"):         # queued behind the MF fits, and chosen while they run
        val_score = partial(_val_score, proto=proto, k=k, n_threads=n_threads, metric=metric)
        systems = _systems.select(task["systems"], tr, va, proto, k, metric, b1, n_threads,
                                  seed, task.get("quick", False), val_score, pool)
    v_e, v_more = c1[-1][1], more.result()
    sel = {"bpr_epochs": epochs + (extra if v_more > v_e else 0),
           "val_bpr": {epochs: v_e, epochs + extra: v_more},
           "val_amf": {e: f.result() for e, f in amf.items()},
           "val_vat": {e: f.result() for e, f in vat.items()}}
    sel["eps"] = max(sel["val_amf"], key=sel["val_amf"].get)
    sel["vat"] = {"eps": max(sel["val_vat"], key=sel["val_vat"].get), "reg_adv": 1.0}
    log(f"  [{task['label']}] validation {metric}: MF-BPR {sel['val_bpr']}, AMF "
        f"{sel['val_amf']}, VAT {sel['val_vat']} -> MF-BPR {sel['bpr_epochs']} epochs, "
        f"AMF eps {sel['eps']}, VAT eps {sel['vat']['eps']}")
    if systems is not None:
        sel["systems"] = systems
    return sel


@contextmanager
def _pool(jobs):
    """``jobs`` worker processes, or None for ``jobs == 1``. On an error (or Ctrl-C) the
    queued tasks are cancelled instead of run."""
    if jobs == 1:
        yield None
        return
    ctx = multiprocessing.get_context("spawn")      # no fork of a threaded parent
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _run_seeds(task, sel, seeds, n_threads, pool, random_seeds, robust_seeds):
    """``run_seed`` for every seed, in ``pool``'s worker processes if given; the
    random-noise arm for the first ``random_seeds`` seeds only, and the robustness
    tables for the first ``robust_seeds``."""
    tasks = [dict(task, random_noise=n < random_seeds, robustness=n < robust_seeds)
             for n in range(len(seeds))]
    if pool is None:
        return [run_seed(t, sel, s, n_threads, True, n == 0)
                for n, (t, s) in enumerate(zip(tasks, seeds))]
    futures = [pool.submit(run_seed, t, sel, s, n_threads, False, n == 0)
               for n, (t, s) in enumerate(zip(tasks, seeds))]
    return [f.result() for f in futures]


def _paired(runs, metrics):
    """The paired comparisons of :data:`COMPARISONS`, over seeds and over users."""
    out = []
    for a, b in COMPARISONS:
        row = {"a": a, "b": b}
        runs_ab = [r for r in runs if a in r["test"] and b in r["test"]]
        if not runs_ab:
            continue
        for m in metrics:
            over = paired_over_seeds([r["test"][a] for r in runs_ab],
                                     [r["test"][b] for r in runs_ab], m)
            # per user: the metric averaged over the seeds, then paired on the users
            ua = np.mean([r["per_user"][a][m] for r in runs_ab], axis=0)
            ub = np.mean([r["per_user"][b][m] for r in runs_ab], axis=0)
            row[m] = {"seeds": _plain(over), "users": _plain(paired(ua, ub))}
        out.append(row)
    return out


def _plain(obj):
    """A stats result (a dataclass) as a JSON-ready dict."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(obj).items()}


def _robustness(runs):
    """Mean, sd and range over seeds of every robustness cell (model, kind, eps, metric)."""
    cells = {}
    for r in runs:
        for name, rows in r.get("robustness", {}).items():
            for row in rows[1:]:
                for m, v in row.items():
                    if m.endswith(" change"):
                        cells.setdefault((name, row["kind"], row["eps"], m), []).append(v)
    return [dict(model=n, kind=kd, eps=e, metric=m, **_plain(over_seeds([{m: v} for v in vs])[m]))
            for (n, kd, e, m), vs in cells.items()]


def run_protocol(task, seeds, n_threads, jobs, random_seeds, robust_seeds=None):
    """Selection, the seeds, and the summary of one protocol of one data set."""
    robust_seeds = len(seeds) if robust_seeds is None else robust_seeds
    with _pool(jobs) as pool:
        sel = _select(task, n_threads, seeds[0], pool)
        pop = ItemPop().fit(task["train"])
        pop_scores = score(pop, task["train"], task["test"], task["proto"], task["k"],
                           n_threads)[0]
        t0 = time.perf_counter()
        runs = _run_seeds(task, sel, seeds, n_threads, pool, random_seeds, robust_seeds)
    names = dict.fromkeys(name for r in runs for name in r["test"])
    metrics = [m for m in runs[0]["test"]["AMF"] if m.split("@")[0] in ("hr", "recall", "ndcg")]
    out = {"protocol": task["label"], "metric": task["metric"], "epochs": task["epochs"],
           "apr_epochs": task["apr_epochs"], "seeds": list(seeds), "selection": sel,
           "itempop": pop_scores, "seconds_seeds": time.perf_counter() - t0,
           "test": {name: {m: _plain(s) for m, s in over_seeds(
               [r["test"][name] for r in runs if name in r["test"]]).items()} for name in names},
           "paired": _paired(runs, metrics),
           "runs": [{k: v for k, v in r.items() if k not in ("per_user", "users")}
                    for r in runs]}
    if task["label"] == "loo":
        out["curves"] = runs[0]["curves"]
        if "robustness" in runs[0]:
            out["robustness"] = _robustness(runs)
            out["eps_curve"] = runs[0]["eps_curve"]
    return out


def run_dataset(path, seeds, protocols, epochs, apr_epochs, n_threads, jobs, random_seeds,
                systems=(), quick=False, robust_seeds=None):
    ds = open_dataset(path, split="given")
    log(f"{ds.name}: {ds.train.shape[0]} users, {ds.train.shape[1]} items, "
        f"{ds.train.nnz} train / {ds.test.nnz} test")
    res = {"name": ds.name, "shape": list(ds.train.shape), "protocols": {}}
    every = max(1, apr_epochs // 5)
    for task in _tasks(ds.train, ds.test, seeds[0], protocols, epochs, apr_epochs, every,
                       systems, quick):
        res["protocols"][task["label"]] = run_protocol(task, seeds, n_threads, jobs,
                                                       random_seeds, robust_seeds)
    return res


def _command(paths, out, quick, n_threads, n_seeds, jobs, protocols, random_seeds, systems,
             robust_seeds):
    parts = ["python -m aprnb reproduce --data", *paths, "--out", out, "--seeds", str(n_seeds)]
    if tuple(s.name for s in systems) != tuple(s.name for s in _systems.SYSTEMS):
        parts += ["--systems", ",".join(s.name for s in systems) or "none"]
    if random_seeds < n_seeds:
        parts += ["--random-noise-seeds", str(random_seeds)]
    if robust_seeds < n_seeds:
        parts += ["--robustness-seeds", str(robust_seeds)]
    if jobs != 1:
        parts += ["--jobs", str(jobs)]
    if tuple(protocols) != PROTOCOLS:
        parts += ["--protocols", ",".join(protocols)]
    if quick:
        parts.append("--quick")
    if n_threads is not None:
        parts += ["--threads", str(n_threads)]
    return " ".join(parts)


def check_systems(systems):
    """``systems`` ("all", or a sequence of names of :data:`aprnb.study.systems.SYSTEMS`)
    as the tuple of those systems, in the table's order, with what they start from."""
    known = {s.name: s for s in _systems.SYSTEMS}
    if isinstance(systems, str) and systems == "all":
        return tuple(known.values())
    if isinstance(systems, str):
        systems = (systems,)
    names = tuple(systems)
    bad = [n for n in names if n not in known]
    if bad:
        raise ValueError(f"unknown system(s) {bad}; choose from {sorted(known)} or 'all'")
    for n in names:
        start = known[n].start
        if start not in (None, "MF-BPR") and start not in names:
            raise ValueError(f"system {n!r} starts from {start!r}; add {start!r} to systems")
    return tuple(s for s in known.values() if s.name in names)


def reproduce(paths, out="results", quick=False, n_threads=None, seed=0, epochs=None,
              apr_epochs=None, seeds=5, jobs=1, protocols=PROTOCOLS, random_noise_seeds=None,
              systems="all", robustness_seeds=None):
    """Run the whole study on each data folder in ``paths``; returns the results list.

    ``seeds`` training seeds ``seed, seed + 1, ...`` per trained model, run in
    ``jobs`` worker processes; ``n_threads`` threads each (default: the cores
    divided among the workers). ``protocols`` is a subset of ``("loo", "holdout")``.
    The random-noise arm, whose per-triple Gaussian draws make its epochs about 20x
    slower than APR's, is trained for the first ``random_noise_seeds`` seeds
    (default all; 0 leaves it out). Likewise the robustness tables and the eps figure
    (leave-one-out), for the first ``robustness_seeds`` seeds: each perturbed
    evaluation of a NeuMF costs minutes on Gowalla. ``systems``: the systems beyond MF
    (:mod:`aprnb.study.systems`) that join leave-one-out, "all" or a sequence of
    names (empty: none).
    """
    n_seeds = check_positive_int(seeds, "seeds")
    systems = check_systems(systems)
    random_seeds = (n_seeds if random_noise_seeds is None else
                    min(n_seeds, check_positive_int(random_noise_seeds, "random_noise_seeds",
                                                    0)))
    robust_seeds = (n_seeds if robustness_seeds is None else
                    min(n_seeds, check_positive_int(robustness_seeds, "robustness_seeds", 0)))
    jobs = check_positive_int(jobs, "jobs")
    protocols = tuple(protocols)
    if not protocols or any(p not in PROTOCOLS for p in protocols):
        raise ValueError(f"protocols must be a non-empty subset of {PROTOCOLS}, got "
                         f"{protocols!r}")
    if n_threads is not None:
        n_threads = check_n_threads(n_threads)
    elif jobs > 1:
        n_threads = max(1, max_threads() // jobs)
    for path in paths:                      # before anything is written or trained
        if not os.path.exists(path):
            raise FileNotFoundError(f"data folder {path} does not exist")
    command = _command(paths, out, quick, n_threads, n_seeds, jobs, protocols, random_seeds,
                       systems, robust_seeds)
    os.makedirs(out, exist_ok=True)
    epochs = epochs or (20 if quick else 500)
    apr_epochs = apr_epochs or (10 if quick else 250)
    seed_list = [seed + s for s in range(n_seeds)]
    results = []
    for path in paths:
        t0 = time.perf_counter()
        res = run_dataset(path, seed_list, protocols, epochs, apr_epochs, n_threads, jobs,
                          random_seeds, systems, quick, robust_seeds)
        res["seconds"] = time.perf_counter() - t0
        res["figures"] = plot(res, out)
        results.append(res)
        with open(os.path.join(out, "results.json"), "w") as fh:
            json.dump(results, fh, indent=1, default=float)
        write_markdown(results, os.path.join(out, "results.md"), command)
        log(f"{res['name']} done in {res['seconds']:.0f} s -> {out}/results.md")
    return results
