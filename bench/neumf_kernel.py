"""The NeuMF kernels alone: training epoch (us per sample) and scorer (us per 1000 pairs).

Synthetic data at the study's shapes (``factors=64, layers=(64, 32, 16, 8)``,
rows 96 wide, batch 256, float32, Adagrad): ``--users x --items`` rows and
``--samples`` (user, item, label) samples drawn uniformly, a quarter positive.

* *train*: one epoch of ``epoch_serial`` (1 thread) / ``epoch_parallel``
  (2 threads), clean and adversarial (``eps=0.5, reg_adv=1``), every call from
  fresh copies of the same starting parameters. Reported in us per sample.
* *score*: ``NeuMFScorer.tile`` of a block of ``--block`` users x all items
  (GMF matmul + MLP kernel), reported in us per 1000 pairs (one thread, as the
  evaluation runs one tile per worker thread).

With ``--before REF`` (e.g. ``3e66ad4``) the kernel module and the scorer of
that git commit are loaded from ``git show`` into a throw-away package and
timed interleaved with the checkout's: every contender runs once per round,
the order rotating, after one untimed warm-up call (JIT, caches); median
[min-max] over ``--repeat`` rounds. The script also prints how far the two
versions' outputs (``P``, ``Q``, ``theta``, loss of the last call) are apart,
beside how far one version's 1-thread and 2-thread outputs are (the rounding
yardstick: float32 adversarial training amplifies rounding a lot).

Run from the repository root::

    NUMBA_CACHE_DIR=/tmp/nbcache python -m bench.neumf_kernel --before 3e66ad4
"""
import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from .common import REPO_DIR, Stats, blas_threads, hardware_report

FACTORS, LAYERS = 64, (64, 32, 16, 8)


def load_before(ref):
    """``(kernel module, NeuMFScorer class)`` of commit ``ref``, from ``git show``."""
    def show(path):
        return subprocess.run(["git", "-C", str(REPO_DIR), "show", f"{ref}:{path}"],
                              capture_output=True, text=True, check=True).stdout
    cache = os.environ.get("NUMBA_CACHE_DIR") or tempfile.gettempdir()
    d = os.path.join(cache, f"neumf_before_{ref}")
    os.makedirs(d, exist_ok=True)
    kname = f"_neumf_kernels_{ref}"
    src = show("aprnb/kernels/neumf.py")
    for m in ("_intrinsics", "_jit", "_math"):
        src = src.replace(f"from .{m} import", f"from aprnb.kernels.{m} import")
    src = src.replace('"neumf_epoch_serial"', f'"neumf_epoch_serial_{ref}"')
    src = src.replace('"neumf_epoch_parallel"', f'"neumf_epoch_parallel_{ref}"')
    ssrc = show("aprnb/models/_neumf_scorer.py")
    ssrc = ssrc.replace("from ..kernels.neumf import", f"from {kname} import")
    ssrc = ssrc.replace("from ..reference.neumf import", "from aprnb.reference.neumf import")
    mods = []
    for name, text in ((kname, src), (f"_neumf_scorer_{ref}", ssrc)):
        path = os.path.join(d, name + ".py")
        if not os.path.exists(path) or open(path).read() != text:
            with open(path, "w") as fh:
                fh.write(text)
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
        mods.append(mod)
    return mods[0], mods[1].NeuMFScorer


def problem(n_users, n_items, n_samples, seed):
    from aprnb.models.neumf import _structure, glorot_dense
    from aprnb.reference.neumf import branch_mask, weight_mask
    rng = np.random.default_rng(seed)
    W = FACTORS + LAYERS[0] // 2
    dt = np.float32
    P = (rng.normal(size=(n_users, W)) * 0.01).astype(dt)
    Q = (rng.normal(size=(n_items, W)) * 0.01).astype(dt)
    theta = glorot_dense(rng, FACTORS, LAYERS, dt)
    users = rng.integers(0, n_users, n_samples).astype(np.int64)
    items = rng.integers(0, n_items, n_samples).astype(np.int64)
    labels = (rng.random(n_samples) < 0.25).astype(np.int8)
    dims, offs, aoff, _ = _structure(FACTORS, LAYERS)
    wmask = weight_mask(FACTORS, LAYERS).astype(dt)
    gmask = branch_mask(FACTORS, LAYERS).astype(dt)
    return dict(P=P, Q=Q, theta=theta, users=users, items=items, labels=labels, dims=dims,
                offs=offs, aoff=aoff, wmask=wmask, gmask=gmask)


def train_fn(mod, pb, threads, adversarial, keep):
    from aprnb._threads import numba_threads
    dt = np.float32
    kern = mod.epoch_serial if threads == 1 else mod.epoch_parallel

    def run():
        P, Q, theta = pb["P"].copy(), pb["Q"].copy(), pb["theta"].copy()
        GP, GQ = np.full(P.shape, 0.1, dt), np.full(Q.shape, 0.1, dt)
        Gth = np.full((1, theta.shape[0]), 0.1, dt)
        with numba_threads(threads):
            t0 = time.perf_counter()
            loss = kern(P, Q, theta, GP, GQ, Gth, pb["users"], pb["items"], pb["labels"], 256,
                        threads, pb["dims"], pb["offs"], pb["aoff"], FACTORS, LAYERS[0] // 2,
                        pb["wmask"], pb["gmask"], dt(0.05), dt(0.0), True, dt(0.5), dt(1.0),
                        adversarial)
            sec = time.perf_counter() - t0
        keep[:] = [P, Q, theta, loss]
        return sec
    return run


def score_fn(cls, pb, block, keep):
    S = cls(pb["P"], pb["Q"], pb["theta"], FACTORS, LAYERS)
    users = np.arange(block, dtype=np.int64)
    out = np.empty((block, S.n_items), dtype=np.float32)

    def run():
        t0 = time.perf_counter()
        S.tile(S.rows(users), slice(0, S.n_items), out)
        sec = time.perf_counter() - t0
        keep[:] = [out.copy()]
        return sec
    return run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=30000)
    ap.add_argument("--items", type=int, default=40000)
    ap.add_argument("--samples", type=int, default=200_000)
    ap.add_argument("--block", type=int, default=64, help="users per scored tile")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--before", default=None, help="git commit to compare against")
    ap.add_argument("--only", default="train,score")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import aprnb.kernels.neumf as new_mod
    from aprnb.models._neumf_scorer import NeuMFScorer
    rep = hardware_report()
    try:
        model = [ln.split(":", 1)[1].strip() for ln in subprocess.run(
            ["lscpu"], capture_output=True, text=True).stdout.splitlines()
            if ln.startswith("Model name")][0]
    except Exception:
        model = rep["cpu"]
    print(f"# cpu: {model}; os.cpu_count() = {os.cpu_count()}; numba threads "
          f"{rep['numba_threads']} ({rep['numba_threading_layer']}); numba {rep['numba']}; "
          f"aprnb commit {rep['aprnb']}; load avg {os.getloadavg()}")
    versions = {"new": (new_mod, NeuMFScorer)}
    if args.before:
        versions = {"old": load_before(args.before), **versions}
    pb = problem(args.users, args.items, args.samples, args.seed)
    threads = [int(t) for t in args.threads.split(",")]
    only = args.only.split(",")
    contenders, keeps, work = {}, {}, {}
    for v, (mod, cls) in versions.items():
        if "train" in only:
            for adv in (False, True):
                for t in threads:
                    name = f"train {'adv' if adv else 'clean'} t{t} {v}"
                    keeps[name] = []
                    contenders[name] = train_fn(mod, pb, t, adv, keeps[name])
                    work[name] = (args.samples, 1e6, "us/sample")
        if "score" in only:
            name = f"score t1 {v}"
            keeps[name] = []
            contenders[name] = score_fn(cls, pb, args.block, keeps[name])
            work[name] = (args.block * args.items / 1000, 1e6, "us/1000 pairs")

    with blas_threads(1):
        for name, fn in contenders.items():
            print(f"  warm-up {name}", file=sys.stderr, flush=True)
            fn()
        names = list(contenders)
        stats = {n: Stats() for n in names}
        for r in range(args.repeat):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                stats[name].add(contenders[name]())
            print(f"  round {r + 1}/{args.repeat} done; load {os.getloadavg()[0]:.2f}",
                  file=sys.stderr, flush=True)
    print(f"# {args.samples} samples, {args.users} x {args.items}, factors={FACTORS}, "
          f"layers={LAYERS}, batch 256, float32, adagrad; score block {args.block} users x "
          f"{args.items} items; {args.repeat} rounds; load avg after {os.getloadavg()}")
    for name in names:
        n, scale, unit = work[name]
        st = Stats([scale * s / n for s in stats[name].samples])
        line = f"{name:28s} {st.median:9.3f} [{st.min:.3f}-{st.max:.3f}] {unit}"
        old = name.replace(" new", " old")
        if name.endswith(" new") and old in stats:
            line += f"   speed-up x{stats[old].median / stats[name].median:.2f}"
        print(line)

    def maxdiff(a, b):
        d = [float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y))))
             for x, y in zip(a, b)]
        return ", ".join(f"{v:.2e}" for v in d)
    # Rounding differences do not stay small: float32 adversarial training amplifies
    # them (the per-part gradient normalisation), and a pre-activation within
    # rounding of zero switches a ReLU, a discrete change of that sample's gradient
    # (seen once in clean training at the default sizes: 3e66ad4 on 1 vs 2 threads
    # differs by 1.4e-3 in P from batch 758 on). So old vs new is printed beside the
    # yardstick of one version on 1 vs 2 threads (P, Q, theta, loss).
    for name in names:
        t2 = name.replace(" t1 ", " t2 ")
        if name.startswith("train") and " t1 " in name and t2 in keeps:
            print(f"# max |1 thread - 2 threads| {name}: {maxdiff(keeps[name], keeps[t2])}")
        if name.endswith(" new") and name.replace(" new", " old") in keeps:
            print(f"# max |old - new| {name[:-4]}: "
                  f"{maxdiff(keeps[name.replace(' new', ' old')], keeps[name])}")


if __name__ == "__main__":
    main()
