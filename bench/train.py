"""Training speed on Gowalla: ms per epoch and triples per second, aprnb vs peers.

Contenders (64 factors, plain SGD, lr 0.05, reg 0 unless said otherwise), each
fitted in this process, interleaved round by round (the order rotates every
round), after one untimed warm-up fit each:

* aprnb ``BPR`` and ``APR(eps=0.5, reg_adv=1)`` per triple (Hogwild with >1 thread);
* aprnb ``APR(optimizer="adagrad")`` per triple, and
  ``APR(batch_size=512, optimizer="adagrad")``: the official code's mini-batch
  semantics on the batch kernel (Hogwild over batches with >1 thread) -- the
  like-for-like row for the PyTorch AMF; their ratio is the mini-batch mode's cost;
* implicit's CPU BPR (``implicit.cpu.bpr.BayesianPersonalizedRanking``,
  ``verify_negative_samples=True``). implicit 0.7 appends an item-bias column to
  the ``factors`` it is given (user column fixed at 1), so ``factors=64`` trains
  64 latent dimensions in 65-wide rows (same model capacity as ours) and
  ``factors=63`` trains 64-wide rows (same memory traffic and flops as ours);
  both are timed, the ratio uses ``factors=64``;
* cornac's BPR (``k=64``, ``use_bias=False``; cornac forces one thread whenever a
  seed is given, so its multi-thread run is unseeded);
* AMF in PyTorch (``bench/torch_amf.py``): the official mini-batch 512 / Adagrad
  semantics, timed on a prefix of an epoch's mini-batches and extrapolated.

Per epoch we report the *kernel* time (aprnb: ``history_[e]["seconds"]``, which
covers the shuffle and the epoch kernel; implicit: the elapsed time its callback
receives; cornac: its ``_fit_sgd`` call) and the *wall* time between consecutive
epoch callbacks (adds the per-epoch finiteness check, snapshot copy and
progress-bar bookkeeping). The first epoch of every fit is dropped. Triples per
second = training interactions (810,128) / kernel seconds.
"""
import sys
import time

import numpy as np

from . import common
from .common import Section, Stats, ratio


def _aprnb_runner(X, cls, n_threads, epochs, seed, **kw):
    def run():
        stamps = []
        params = dict(factors=64, learning_rate=0.05, reg=0.0, optimizer="sgd", epochs=epochs,
                      n_threads=n_threads, random_state=seed, show_progress=False)
        params.update(kw)
        m = cls(**params)
        t0 = time.perf_counter()
        m.fit(X, callback=lambda e, s: stamps.append(time.perf_counter()))
        kern = [h["seconds"] for h in m.history_]
        setup = (stamps[0] - t0) - kern[0]
        return {"kernel": kern[1:], "wall": list(np.diff(stamps)), "setup": [setup]}
    return run


def _implicit_runner(X, factors, n_threads, epochs, seed):
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    def run():
        stamps, elapsed = [], []

        def cb(epoch, el, *rest):
            stamps.append(time.perf_counter())
            elapsed.append(el)
        m = BayesianPersonalizedRanking(factors=factors, learning_rate=0.05,
                                        regularization=0.0, iterations=epochs,
                                        num_threads=n_threads, verify_negative_samples=True,
                                        random_state=seed)
        t0 = time.perf_counter()
        m.fit(X, show_progress=False, callback=cb)
        if not (np.isfinite(m.user_factors).all() and np.isfinite(m.item_factors).all()):
            print("[bench] warning: implicit BPR factors are not finite", file=sys.stderr)
        return {"kernel": elapsed[1:], "wall": list(np.diff(stamps)),
                "setup": [(stamps[0] - t0) - elapsed[0]]}
    return run


def _cornac_dataset(X):
    from cornac.data import Dataset
    u = np.repeat(np.arange(X.shape[0], dtype=np.int64), np.diff(X.indptr))
    return Dataset(X.shape[0], X.shape[1], {k: k for k in range(X.shape[0])},
                   {k: k for k in range(X.shape[1])},
                   (u, X.indices.astype(np.int64), np.ones(len(u), dtype=np.float32)), seed=0)


def _cornac_runner(cds, n_threads, epochs, seed):
    from cornac.models import BPR

    def run():
        m = BPR(k=64, max_iter=epochs, learning_rate=0.05, lambda_reg=0.0, use_bias=False,
                num_threads=n_threads, seed=seed if n_threads == 1 else None)
        kern, ends = [], []
        inner = m._fit_sgd

        def timed(*a, **k):            # per-epoch timing without touching cornac's code
            t = time.perf_counter()
            out = inner(*a, **k)
            kern.append(time.perf_counter() - t)
            ends.append(time.perf_counter())
            return out
        m._fit_sgd = timed
        t0 = time.perf_counter()
        m.fit(cds)
        if len(kern) != epochs:
            raise RuntimeError("cornac's BPR no longer calls _fit_sgd once per epoch")
        return {"kernel": kern[1:], "wall": list(np.diff(ends)), "setup": [ends[0] - t0 - kern[0]]}
    return run


class _TorchWorker:
    """``python -m bench.torch_amf --serve`` in a child process (see ``torch_amf._serve``)."""

    def __init__(self):
        import json
        import subprocess
        self._json = json
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.torch_amf", "--serve"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     cwd=str(common.REPO_DIR))
        ready = self.proc.stdout.readline()
        if not ready:
            raise RuntimeError("the PyTorch worker process failed to start")

    def epoch(self, **req):
        self.proc.stdin.write(self._json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the PyTorch worker process died")
        return self._json.loads(line)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def _torch_runner(worker, mode, n_threads, n_batches, seed):
    def run():
        r = worker.epoch(mode=mode, n_threads=n_threads, n_batches=n_batches, seed=seed)
        return {"kernel": [r["epoch"]], "wall": [r["epoch"]], "batches": [float(r["batches"])]}
    return run


class _Contenders:
    """Named timing callables and, per name, ``(peer label, threads, note)``."""

    def __init__(self):
        self.fns, self.meta = {}, {}

    def add(self, name, peer, t, fn, note=""):
        self.fns[name] = fn
        self.meta[name] = (peer, t, note)


def _add_aprnb(c, X, threads, epochs, seed):
    import aprnb
    for t in threads:
        c.add(f"aprnb BPR t{t}", "aprnb BPR", t, _aprnb_runner(X, aprnb.BPR, t, epochs, seed))
        c.add(f"aprnb APR t{t}", "aprnb APR eps=0.5", t,
              _aprnb_runner(X, aprnb.APR, t, epochs, seed, eps=0.5, reg_adv=1.0))
        c.add(f"aprnb APR ada t{t}", "aprnb APR eps=0.5 Adagrad", t,
              _aprnb_runner(X, aprnb.APR, t, epochs, seed, eps=0.5, reg_adv=1.0,
                            optimizer="adagrad"))
        c.add(f"aprnb APR mb512 t{t}", "aprnb APR batch 512 Adagrad (official semantics)", t,
              _aprnb_runner(X, aprnb.APR, t, max(2, epochs // 2), seed, eps=0.5, reg_adv=1.0,
                            batch_size=512, optimizer="adagrad"),
              "Hogwild over batches" if t > 1 else "")


def _add_peers(c, X, threads, epochs, seed):
    if common.optional_import("implicit", "implicit BPR peer") is not None:
        for t in threads:
            c.add(f"implicit f64 t{t}", "implicit BPR factors=64 (65-wide rows)", t,
                  _implicit_runner(X, 64, t, epochs, seed))
            c.add(f"implicit f63 t{t}", "implicit BPR factors=63 (64-wide rows)", t,
                  _implicit_runner(X, 63, t, epochs, seed))
    if common.optional_import("cornac", "cornac BPR peer") is not None:
        cds = _cornac_dataset(X)
        for t in threads:
            c.add(f"cornac t{t}", "cornac BPR k=64", t,
                  _cornac_runner(cds, t, max(3, epochs // 2), seed), "unseeded" if t > 1 else "")


def _add_torch(c, threads, quick, seed):
    """PyTorch AMF rows (a worker process); returns the worker, or None without torch."""
    if common.optional_import("torch", "PyTorch AMF peer") is None:
        return None
    worker = _TorchWorker()
    nb_sparse, nb_dense = (40, 8) if quick else (150, 20)
    for t in threads:
        c.add(f"torch sparse t{t}", "PyTorch AMF, sparse grads (bench/torch_amf.py)", t,
              _torch_runner(worker, "sparse", t, nb_sparse, seed))
        c.add(f"torch dense t{t}", "PyTorch AMF, dense TF-graph port", t,
              _torch_runner(worker, "dense", t, nb_dense, seed))
    return worker


def measure(X, threads, epochs, rounds, args):
    """Interleave every contender; ``(contenders, {name: {metric: Stats}})``."""
    c = _Contenders()
    _add_aprnb(c, X, threads, epochs, args.seed)
    _add_peers(c, X, threads, epochs, args.seed)
    worker = _add_torch(c, threads, args.quick, args.seed)
    try:
        res = common.interleave(c.fns, rounds=rounds, warmup=1)
    finally:
        if worker is not None:
            worker.close()
    return c, res


def _med(res, name, metric="kernel"):
    return res[name][metric].median if name in res and metric in res[name] else float("nan")


def epoch_section(X, c, res, epochs, rounds):
    nnz, rows = X.nnz, []
    for name in c.fns:
        peer, t, note = c.meta[name]
        k = res[name]["kernel"]
        w = res[name].get("wall", Stats())
        s = res[name].get("setup", Stats())
        if "batches" in res[name]:
            nb = res[name]["batches"]
            note = (f"{nb.min:.0f}" + (f"-{nb.max:.0f}" if nb.max != nb.min else "")
                    + " of 1583 batches timed, extrapolated")
        rows.append([peer, t, k.fmt_ms(), w.fmt_ms(), f"{nnz / k.median / 1e6:.2f}",
                     f"{1e3 * s.median:.0f}" if s.n else "", note])
    return Section(f"Training epoch on Gowalla ({X.shape[0]} users x {X.shape[1]} items, "
                   f"{nnz} triples/epoch, 64 factors)",
                   ["contender", "threads", "kernel ms/epoch median [min-max]",
                    "wall ms/epoch", "M triples/s", "fit setup ms", "note"], rows,
                   [f"{rounds} interleaved rounds x {epochs} epochs per fit (first epoch of "
                    f"each fit dropped); aprnb mini-batch and cornac fits use fewer epochs.",
                    "kernel: aprnb history_ seconds (shuffle + epoch kernel) / implicit "
                    "callback elapsed / cornac _fit_sgd call; wall: between epoch callbacks.",
                    "PyTorch rows: median mini-batch time x 1583 batches + one epoch of "
                    "negative sampling (numpy, vectorised rejection), measured in a child "
                    "process of its own (no other OpenMP runtime on its cores)."])


def _ratio_rows_at(c, res, t):
    """Peer, APR/BPR and PyTorch ratios at ``t`` threads."""
    ours_b, ours_a = f"aprnb BPR t{t}", f"aprnb APR t{t}"
    rows = []
    for peer in (f"implicit f64 t{t}", f"implicit f63 t{t}", f"cornac t{t}"):
        if peer in res:
            rows.append([f"aprnb BPR / {c.meta[peer][0]}", t, ratio(_med(res, ours_b),
                                                                    _med(res, peer)),
                         ratio(_med(res, ours_b, "wall"), _med(res, peer, "wall")),
                         "<= 0.25x" if "f64" in peer else ""])
    rows.append(["aprnb APR / aprnb BPR", t, ratio(_med(res, ours_a), _med(res, ours_b)),
                 ratio(_med(res, ours_a, "wall"), _med(res, ours_b, "wall")), "<= 1.3x"])
    for tm in (f"torch sparse t{t}", f"torch dense t{t}"):
        if tm in res:
            rows.append([f"{c.meta[tm][0]} / aprnb APR", t, ratio(_med(res, tm),
                                                                  _med(res, ours_a)),
                         ratio(_med(res, tm, "wall"), _med(res, ours_a, "wall")), ">= 100x"])
            rows.append([f"{c.meta[tm][0]} / aprnb APR mini-batch 512", t,
                         ratio(_med(res, tm), _med(res, f"aprnb APR mb512 t{t}")), "", ""])
    mb, ada = f"aprnb APR mb512 t{t}", f"aprnb APR ada t{t}"
    rows.append(["aprnb APR mini-batch 512 / per-triple (both Adagrad)", t,
                 ratio(_med(res, mb), _med(res, ada)), ratio(_med(res, mb, "wall"),
                                                             _med(res, ada, "wall")),
                 "<= 1.5x at 2 threads"])
    return rows


def _fastest_torch_rows(c, res, threads):
    rows = []
    for kind in ("sparse", "dense"):
        runs = {t: _med(res, f"torch {kind} t{t}") for t in threads
                if f"torch {kind} t{t}" in res}
        if runs:
            tb = min(runs, key=runs.get)
            for t in threads:
                rows.append([f"{c.meta[f'torch {kind} t{tb}'][0]} at its fastest "
                             f"({tb} threads) / aprnb APR", t,
                             ratio(runs[tb], _med(res, f"aprnb APR t{t}")), "", ">= 100x"])
    return rows


def ratios_section(c, res, threads):
    rows = [r for t in threads for r in _ratio_rows_at(c, res, t)]
    rows += _fastest_torch_rows(c, res, threads)
    if len(threads) > 1:
        a, b = threads[0], threads[-1]
        for what in ("BPR", "APR"):
            lo, hi = f"aprnb {what} t{a}", f"aprnb {what} t{b}"
            rows.append([f"aprnb {what} speed-up t{a} -> t{b}", "",
                         ratio(_med(res, lo), _med(res, hi)),
                         ratio(_med(res, lo, "wall"), _med(res, hi, "wall")), ""])
    return Section("Training ratios (medians)",
                   ["ratio", "threads", "kernel", "wall", "target"], rows)


def run(args):
    X = common.load_gowalla().train
    threads = common.thread_list(args.threads)
    epochs = 3 if args.quick else 6
    rounds = args.rounds or (2 if args.quick else 3)
    c, res = measure(X, threads, epochs, rounds, args)
    return [epoch_section(X, c, res, epochs, rounds), ratios_section(c, res, threads)], res


def main(argv=None):
    common.script_main(__doc__, run, argv,
                       parser=common.common_argparser(__doc__.splitlines()[0], rounds=True))


if __name__ == "__main__":
    main()
