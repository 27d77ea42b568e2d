"""Start-up cost: cold JIT compilation vs warm loading from Numba's on-disk cache.

Each measurement is a fresh ``python -c`` subprocess with ``NUMBA_CACHE_DIR``
pointing at a temporary directory. The child times, in order: ``import aprnb``,
a first tiny ``BPR`` fit (default threads, so the parallel epoch kernel), a first
``evaluate`` (holdout, parallel top-K kernel) and, reported separately, a first
tiny ``APR`` fit. The first child of a fresh cache directory compiles everything
(cold); the following children of the same directory load the cache (warm).
``process wall`` also counts interpreter start-up and the imports of numpy,
scipy and numba. Target: warm import + first fit + first evaluate < 3 s.
"""
import json
import os
import statistics
import tempfile
from pathlib import Path

from . import common
from .common import Section

CHILD = r"""
import json, time
t0 = time.perf_counter()
import numpy as np
t_np = time.perf_counter()
import aprnb
t1 = time.perf_counter()
X = aprnb.data.make_synthetic(300, 200, 5, 10, random_state=0)
t2 = time.perf_counter()
train, test = aprnb.data.leave_one_out(X, random_state=0)
m = aprnb.BPR(factors=16, epochs=2, random_state=0, show_progress=False).fit(train)
t3 = time.perf_counter()
r = aprnb.evaluate(m, train, test, k=[20])
t4 = time.perf_counter()
a = aprnb.APR(factors=16, epochs=2, random_state=0, show_progress=False).fit(train)
t5 = time.perf_counter()
print(json.dumps({"import_numpy": t_np - t0, "import_aprnb": t1 - t_np,
                  "first_bpr_fit": t3 - t2, "first_evaluate": t4 - t3,
                  "first_apr_fit": t5 - t4, "data": t2 - t1}))
"""


def child(cache_dir):
    env = dict(os.environ)
    env["NUMBA_CACHE_DIR"] = str(cache_dir)
    env.pop("NUMBA_DISABLE_JIT", None)
    wall, proc = common.run_python(CHILD, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"start-up child failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_wall"] = wall
    out["target_path"] = out["import_aprnb"] + out["first_bpr_fit"] + out["first_evaluate"]
    return out


def run(args):
    n_cold = 1 if args.quick else 2
    n_warm = 2 if args.quick else 5
    colds, warms = [], []
    for _ in range(n_cold):   # each cold run gets its own empty cache directory
        with tempfile.TemporaryDirectory(prefix="aprnb-numba-cache-") as d:
            colds.append(child(d))
            for _ in range(n_warm if not warms else 0):
                warms.append(child(d))
            cache_mb = sum(f.stat().st_size for f in Path(d).rglob("*") if f.is_file()) / 2**20
    keys = [("import_aprnb", "import aprnb"), ("first_bpr_fit", "first BPR fit (tiny)"),
            ("first_evaluate", "first evaluate (tiny)"),
            ("target_path", "import + BPR fit + evaluate"),
            ("first_apr_fit", "first APR fit (tiny), extra"),
            ("process_wall", "process wall (interpreter, numpy, everything)")]
    rows = []
    for key, label in keys:
        c = statistics.median(r[key] for r in colds)
        w = [r[key] for r in warms]
        rows.append([label, f"{c:.2f}", f"{statistics.median(w):.2f} "
                     f"[{min(w):.2f}-{max(w):.2f}]",
                     "< 3 s" if key == "target_path" else ""])
    warm_target = statistics.median(r["target_path"] for r in warms)
    sec = Section("Start-up: cold JIT compile vs warm cache load (seconds)",
                  ["phase", f"cold (median of {n_cold})",
                   f"warm median [min-max] of {n_warm}", "target"], rows,
                  [f"fresh NUMBA_CACHE_DIR per cold run; cache size {cache_mb:.1f} MB.",
                   f"warm import + first fit + first evaluate = {warm_target:.2f} s: "
                   f"{'meets' if warm_target < 3 else 'misses'} the < 3 s target.",
                   "numpy import alone (in the child): "
                   f"{statistics.median(r['import_numpy'] for r in warms):.2f} s warm."])
    return [sec], {"cold": colds, "warm": warms}


def main(argv=None):
    common.script_main(__doc__, run, argv)


if __name__ == "__main__":
    main()
