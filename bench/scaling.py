"""Scaling: fit set-up, BPR/APR epochs, memory and evaluation from 1M to 100M interactions.

Synthetic sets, drawn with vectorised numpy (seeded; ``aprnb.data.make_synthetic``
loops over users in Python, far too slow here): user degrees are log-normal
(sigma 1, a heavy tail of active users, at least 2, at most half the catalogue)
around a mean of about 50, items follow a Zipf(0.8) popularity law over a random
permutation of the catalogue, duplicates are merged, and one interaction in
twenty goes to a test matrix. The ladder grows users and items with the
interactions, up to 2M users x 500k items x ~100M (``SIZES``); ``20.7M`` is the
older 1M x 1M set with geometric degrees (the set-up target of issue 15).

Every size runs in a fresh subprocess, so that its peak memory is its own. Per
size: the generation time; the fit set-up (a ``BPR(epochs=0)`` fit: validation,
filter, initial factors, provenance) over ``--setup-runs`` fits, and its
steps timed one by one; ``--runs`` fits of BPR and APR(eps=0.5) (64 factors, SGD;
``--adagrad`` adds BPR with Adagrad) of ``--epochs`` epochs each, the first
dropped: kernel seconds per epoch, wall seconds per epoch (adds the finiteness
check and snapshot copy), triples/s and nanoseconds per interaction (flat if the
epoch is linear in nnz); the peak resident set during the first BPR fit (kernel
high-water mark, reset at the fit's start; it includes the data and the
interpreter) per training interaction; then ``aprnb.evaluate`` (holdout, top-20)
on a seeded sample of users, with users/s.
"""
import json
import subprocess
import sys
import time

import numpy as np

from aprnb.benchmark import synthetic_split as synthetic

from . import _hooks, common
from .common import Section, Stats

#: name -> (n_users, n_items, target interactions before the test split and dedup,
#: log-normal sigma of the user degrees, or None for the older geometric degrees)
SIZES = {"1M": (20_000, 5_000, 1_230_000, 1.0),
         "10M": (200_000, 50_000, 11_250_000, 1.0),
         "20.7M": (1_000_000, 1_000_000, 22_000_000, None),
         "30M": (600_000, 150_000, 33_000_000, 1.0),
         "100M": (2_000_000, 500_000, 108_000_000, 1.0)}
DEFAULT_SIZES = "1M,10M,20.7M,30M,100M"


# -- one size, in a child process -------------------------------------------------------
def _model(name, epochs, n_threads, seed):
    import aprnb
    cls, opt = {"BPR": ("BPR", "sgd"), "APR": ("APR", "sgd"),
                "BPR-adagrad": ("BPR", "adagrad")}[name]
    return getattr(aprnb, cls)(factors=64, learning_rate=0.05, epochs=epochs, optimizer=opt,
                               n_threads=n_threads, random_state=seed, show_progress=False)


def _fit_times(X, name, epochs, n_threads, seed):
    """``(kernel s/epoch, wall s/epoch)``: medians over the epochs after the first."""
    stamps = []
    m = _model(name, epochs, n_threads, seed)
    m.fit(X, callback=lambda e, s: stamps.append(time.perf_counter()))
    kern = [h["seconds"] for h in m.history_][1:]
    return float(np.median(kern)), float(np.median(np.diff(stamps))), m


def _setup_steps(X, n_threads, seed):
    """Seconds of each set-up step, run one after another (``fit`` computes the
    fingerprint on a worker thread while the filter and the draw run)."""
    names = {"validate": ("aprnb._validation", "check_interactions"),
             "positives": ("aprnb.models._training", "positives"),
             "filter": ("aprnb.models._training", "sampling_filter"),
             "initial draw": ("aprnb.models._factor", "normal_factors"),
             "fingerprint": ("aprnb._provenance", "fingerprint")}
    fns = {k: _hooks.internal(mod, name, "scaling set-up steps") for k, (mod, name) in
           names.items()}
    if any(f is None for f in fns.values()):
        return {}
    out = {}
    out["validate"], C = common.time_call(fns["validate"], X)
    out["positives"] = common.time_call(fns["positives"], C)[0]
    out["filter"] = common.time_call(fns["filter"], C, n_threads)[0]
    rng = np.random.default_rng(seed)
    draw = fns["initial draw"]
    t, P = common.time_call(draw, rng, C.shape[0], 64, 0.01, np.float32, n_threads=n_threads)
    t2, Q = common.time_call(draw, rng, C.shape[1], 64, 0.01, np.float32, n_threads=n_threads)
    out["initial draw"] = t + t2
    del P, Q
    out["fingerprint"] = common.time_call(fns["fingerprint"], C)[0]
    return out


def _evaluate(m, X, T, n_threads, n_eval, seed):
    import aprnb
    rng = np.random.default_rng(seed)
    has_test = np.flatnonzero(np.diff(T.indptr) > 0)
    users = np.sort(rng.choice(has_test, size=min(n_eval, len(has_test)), replace=False))
    ev = Stats()
    with common.blas_threads(n_threads):
        for _ in range(2):
            ev.add(common.time_call(aprnb.evaluate, m, X, T, k=[20], users=users,
                                    n_threads=n_threads)[0])
    return {"eval_users": len(users), "eval_s": ev.median}


def measure_size(name, runs, setup_runs, epochs, n_threads, n_eval, seed, models):
    """All figures of one size (a JSON-able dict); run it in a fresh process."""
    # JIT warm-up / cache load, on a set large enough for the parallel set-up paths
    # (the filter fill above PARALLEL_FILL pairs, the draw above PARALLEL_DRAW numbers)
    Xw, _ = synthetic(70_000, 1000, 140_000, seed)
    for mod in models:
        _model(mod, 1, n_threads, seed).fit(Xw)
    n_users, n_items, nnz, sigma = SIZES[name]
    t_gen, (X, T) = common.time_call(synthetic, n_users, n_items, nnz, seed, sigma=sigma)
    out = {"name": name, "users": n_users, "items": n_items, "nnz": int(X.nnz), "gen_s": t_gen,
           "rss_data_mb": common.current_rss_mb(), "threads": n_threads}
    print(f"  {name}: {n_users:,} x {n_items:,}, {X.nnz:,} train (generated in {t_gen:.1f} s)",
          file=sys.stderr, flush=True)
    out["setup_s"] = [common.time_call(_model("BPR", 0, n_threads, seed).fit, X)[0]
                      for _ in range(setup_runs)]
    out["steps"] = _setup_steps(X, n_threads, seed)
    for mod in models:
        kern, wall = [], []
        for r in range(runs):
            with common.PeakRSS() as pk:
                k, w, m = _fit_times(X, mod, epochs, n_threads, seed + r)
            kern.append(k)
            wall.append(w)
            if r == 0:
                out[f"{mod}_peak_mb"], out[f"{mod}_base_mb"] = pk.peak, pk.base
            if mod == "BPR" and r == runs - 1:
                out.update(_evaluate(m, X, T, n_threads, n_eval, seed))
            del m
        out[f"{mod}_kernel_s"], out[f"{mod}_wall_s"] = kern, wall
    return out


def _child(name, args, models):
    """Run :func:`measure_size` in a fresh interpreter; its dict."""
    code = (f"import json; from bench.scaling import measure_size; print('@@' + json.dumps("
            f"measure_size({name!r}, {args.runs}, {args.setup_runs}, {args.epochs}, "
            f"{args.n_threads}, {args.eval_users}, {args.seed}, {models!r})))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(common.REPO_DIR),
                          stdout=subprocess.PIPE, text=True)
    if proc.returncode:
        raise RuntimeError(f"size {name} failed (exit {proc.returncode})")
    return json.loads(proc.stdout.split("@@")[-1])


# -- the tables ---------------------------------------------------------------------------
def _s(xs):
    return Stats(xs).fmt_s(2)


def _scaling_row(r, models):
    nnz = r["nnz"]
    b = Stats(r["BPR_kernel_s"])
    row = [r["name"], f"{r['users']:,} x {r['items']:,}", f"{nnz:,}", _s(r["setup_s"]),
           _s(r["BPR_kernel_s"]), f"{nnz / b.median / 1e6:.2f}", f"{1e9 * b.median / nnz:.0f}"]
    for mod in models[1:]:
        a = Stats(r[f"{mod}_kernel_s"])
        row += [_s(r[f"{mod}_kernel_s"]), f"{1e9 * a.median / nnz:.0f}"]
    peak = max(r[f"{m}_peak_mb"] for m in models) * 2**20
    row += [f"{peak / 2**30:.2f}", f"{peak / nnz:.0f}",
            f"{(r['BPR_peak_mb'] - r['BPR_base_mb']) * 2**20 / nnz:.0f}"]
    return row


def _time_row(r):
    st = r["steps"]
    wall, kern = Stats(r["BPR_wall_s"]).median, Stats(r["BPR_kernel_s"]).median
    steps = [f"{st[k]:.2f}" if k in st else "n/a" for k in
             ("validate", "positives", "filter", "initial draw", "fingerprint")]
    return ([r["name"], f"{r['gen_s']:.1f}"] + steps
            + [f"{kern:.2f}", f"{1e3 * (wall - kern):.0f}", f"{r['eval_s']:.2f}",
               f"{r['eval_users'] / r['eval_s']:,.0f}"])


def sections(results, args, models):
    """The scaling table and the where-the-time-goes table."""
    apr = [f"{m} s/epoch [min-max]" for m in models[1:]]
    per = [f"{m} ns/interaction" for m in models[1:]]
    head = (["size", "users x items", "train interactions",
             "fit set-up s [min-max]", "BPR s/epoch [min-max]", "BPR M triples/s",
             "BPR ns/interaction"] + [x for pair in zip(apr, per) for x in pair]
            + ["peak RSS GB", "peak bytes/interaction", "fit overhead bytes/interaction"])
    notes = [f"{args.n_threads} threads, 64 factors, SGD lr 0.05; set-up = wall time of "
             f"BPR(epochs=0).fit, {args.setup_runs} fits; epochs: {args.runs} fits of "
             f"{args.epochs} epochs, per fit the median kernel time of the epochs after the "
             f"first, then median [min-max] over the fits.",
             "ns/interaction = epoch seconds / train interactions (constant if the epoch is "
             "linear in nnz). Peak RSS: the process's high-water mark during the first fit "
             "of each model (reset at its start; includes the train and test matrices and "
             "the interpreter); fit overhead = that peak minus the RSS before the BPR fit.",
             "Each size runs in a fresh process."]
    fit = Section("Scaling: fit set-up, epochs and memory from 1M to 100M interactions",
                  head, [_scaling_row(r, models) for r in results], notes)
    where = Section(
        "Scaling: where the time goes (seconds; BPR)",
        ["size", "generate", "validate", "positives", "filter", "initial draw",
         "fingerprint", "BPR epoch kernel", "per-epoch Python ms",
         "evaluate s", "evaluate users/s"],
        [_time_row(r) for r in results],
        ["Set-up steps timed one after another, once, after the set-up fits (fit computes "
         "the fingerprint on a worker thread while the filter and the draw run, so fit's "
         "set-up is less than their sum). Per-epoch Python = wall - kernel per epoch (the "
         "finiteness check and the copy of the last good epoch; the first epoch, which is "
         "not in the median, also allocates that copy). evaluate: holdout top-20 over all items on "
         f"a seeded sample of up to {args.eval_users} test users, median of 2 calls."])
    return [fit, where]


def run(args):
    names = ["1M"] if args.quick else [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [n for n in names if n not in SIZES]
    if unknown:
        raise SystemExit(f"unknown size(s) {unknown}; choose from {list(SIZES)}")
    if args.max_nnz:
        names = [n for n in names if SIZES[n][2] <= args.max_nnz]
    args.n_threads = common.thread_list(args.threads)[-1]
    if args.setup_runs is None:
        args.setup_runs = args.runs
    if args.runs < 1 or args.setup_runs < 1 or args.epochs < 2:
        raise SystemExit("--runs and --setup-runs must be >= 1 and --epochs >= 2 (the first "
                         "epoch of each fit is dropped)")
    models = ["BPR"] + ([] if args.no_apr else ["APR"])
    models += ["BPR-adagrad"] if args.adagrad else []
    t0 = time.perf_counter()
    results = [_child(n, args, models) for n in names]
    print(f"  total {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return sections(results, args, models), results


def main(argv=None):
    p = common.common_argparser(__doc__.splitlines()[0])
    p.set_defaults(threads="2")
    p.add_argument("--sizes", default=DEFAULT_SIZES,
                   help=f"comma-separated sizes from {list(SIZES)} (default: all)")
    p.add_argument("--max-nnz", type=int, default=None,
                   help="skip sizes with more target interactions than this")
    p.add_argument("--runs", type=int, default=5, help="fits per model and size")
    p.add_argument("--setup-runs", type=int, default=None,
                   help="set-up fits per size (default: --runs)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per fit (the first dropped)")
    p.add_argument("--eval-users", type=int, default=2000)
    p.add_argument("--no-apr", action="store_true", help="skip the APR(eps=0.5) fits")
    p.add_argument("--adagrad", action="store_true", help="add BPR with Adagrad")
    common.script_main(__doc__, run, argv, parser=p)


if __name__ == "__main__":
    main()
