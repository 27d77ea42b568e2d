"""Full-ranking top-20 evaluation for every Gowalla user: aprnb vs implicit vs a bare matmul.

All three score the same factors (a seeded aprnb BPR fit), so they compute the same
dot products ``P[u] . Q[i]``:

* ``aprnb.evaluate((P, Q), train, test, k=[20], protocol="holdout")``: blocks of
  users, one BLAS matmul per block, then a parallel Numba pass that skips the
  training items, keeps the top 20 and computes recall/precision/ndcg/hr@20;
* ``implicit.evaluation.ranking_metrics_at_k(model, train, test, K=20)`` with
  ``model`` an ``implicit.cpu.bpr.BayesianPersonalizedRanking`` whose
  ``user_factors``/``item_factors`` are set to ``P``/``Q``. Its ``recommend`` scores
  with a plain dot product of the stored rows, so with our 64-wide factors (no
  bias column: implicit's own fits append one, we do not) the scores are exactly
  ``P @ Q.T``; the run checks this (top-20 items and scores of 200 users against
  aprnb's, and both ndcg@20 values);
* the bare matmul: ``P[block] @ Q.T`` over the same user blocks as aprnb (about
  64 MB of scores each), with no exclusion, selection or metrics: the floor.

Each thread count limits both the Numba threads and the BLAS threads (threadpoolctl)
for every contender. The contenders are interleaved round by round after a
warm-up call each. The profile section replays aprnb's block loop with its
internal pieces (through ``bench/_hooks.py``, skipped if they moved) to split the time
between the matmul and the selection kernel.
"""
import sys

import numpy as np

from aprnb.benchmark import bare_matmul, default_block_rows

from . import _hooks, common
from .common import Section, ratio


def trained_model(X, seed, epochs):
    import aprnb
    return aprnb.BPR(factors=64, epochs=epochs, random_state=seed, optimizer="sgd",
                     show_progress=False).fit(X)


def implicit_model(P, Q, n_threads):
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    m = BayesianPersonalizedRanking(factors=P.shape[1], num_threads=n_threads)
    m.user_factors, m.item_factors = P, Q
    return m


def check_same_scores(model, X, n_check=200):
    """implicit's recommend and aprnb's ``recommend`` agree on items and scores."""
    P, Q = model.user_factors_, model.item_factors_
    users = np.arange(min(n_check, P.shape[0]))
    ids, scores = implicit_model(P, Q, 1).recommend(users, X[users], N=20)
    ours_ids, ours_scores = model.recommend(users, k=20, exclude=X)
    direct = np.take_along_axis(P[users] @ Q.T, ours_ids, axis=1)
    return {"item agreement": float((ids == ours_ids).mean()),
            "max |score diff|": float(np.abs(scores - ours_scores).max()),
            "max |aprnb score - P@Q.T|": float(np.abs(ours_scores - direct).max())}


MEMORY_CHILD = r"""
import json
import numpy as np, scipy.sparse as sp
from bench import common, evaluate as E
which, t = {which!r}, {t}
ds = common.load_gowalla()
X, T = ds.train, ds.test
f = np.load({path!r})
P, Q = f["P"], f["Q"]
users = np.flatnonzero(np.diff(T.indptr) > 0)
rows = E.default_block_rows(Q.shape[0], P.itemsize)
keep = np.zeros(T.shape[0]); keep[users[:10]] = 1
T10 = sp.csr_matrix(sp.diags(keep) @ T)

def call(test, us):
    if which == "aprnb":
        import aprnb
        aprnb.evaluate((P, Q), X, test, k=[20], n_threads=t)
    elif which == "implicit":
        from implicit.evaluation import ranking_metrics_at_k
        ranking_metrics_at_k(E.implicit_model(P, Q, t), X, test, K=20, show_progress=False,
                             num_threads=t)
    else:
        E.bare_matmul(P, Q, us, rows)

with common.blas_threads(t):
    call(T10, users[:10])
    with common.PeakRSS() as pk:
        call(T, users)
print(json.dumps({{"increase": pk.increase, "exact": pk.exact}}))
"""


def _memory_probe(path, which, t):
    """Peak RSS increase (MB) of one full call in a fresh ``python -c`` (repo root cwd)."""
    import json
    _, proc = common.run_python(MEMORY_CHILD.format(which=which, t=t, path=path))
    if proc.returncode != 0:
        print(f"[bench] memory probe {which} t{t} failed: {proc.stderr[-500:]}",
              file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])["increase"]


def memory_in_subprocesses(P, Q, threads, have_implicit):
    """``{contender name: peak RSS increase MB}`` measured in fresh subprocesses."""
    import tempfile
    from pathlib import Path
    out = {}
    with tempfile.TemporaryDirectory(prefix="aprnb-bench-") as d:
        path = str(Path(d) / "factors.npz")
        np.savez(path, P=P, Q=Q)
        for t in threads:
            for which, name in (("aprnb", f"aprnb evaluate t{t}"),
                                ("implicit", f"implicit ranking_metrics_at_k t{t}"),
                                ("bare", f"bare matmul t{t}")):
                if which == "implicit" and not have_implicit:
                    continue
                mb = _memory_probe(path, which, t)
                if mb is not None:
                    out[name] = mb
    return out


def _contenders(ctx, t, metrics):
    """The timed calls at ``t`` threads: aprnb, implicit (if installed), bare matmul."""
    import aprnb
    P, Q, X, T = ctx["P"], ctx["Q"], ctx["X"], ctx["T"]

    def ours():
        with common.blas_threads(t):
            dt, r = common.time_call(aprnb.evaluate, (P, Q), X, T, k=[20],
                                     protocol="holdout", n_threads=t)
        metrics["aprnb"] = r
        return dt

    def imp():
        from implicit.evaluation import ranking_metrics_at_k
        model = implicit_model(P, Q, t)
        with common.blas_threads(t):
            dt, r = common.time_call(ranking_metrics_at_k, model, X, T, K=20,
                                     show_progress=False, num_threads=t)
        metrics["implicit"] = r
        return dt

    def bare():
        with common.blas_threads(t):
            return common.time_call(bare_matmul, P, Q, ctx["users"], ctx["rows"])[0]
    out = {f"aprnb evaluate t{t}": ours}
    if ctx["have_implicit"]:
        out[f"implicit ranking_metrics_at_k t{t}"] = imp
    out[f"bare matmul t{t}"] = bare
    return out


def measure_profile(ctx, quick):
    """``{1: (BLAS s, kernels s)}`` from the serial replay (empty if the hooks moved)."""
    with common.blas_threads(1):
        samples = []
        for _ in range(2 if quick else 3):
            s = _hooks.evaluation_profile(ctx["P"], ctx["Q"], ctx["X"], ctx["T"])
            if s is None:
                return {}
            samples.append(s)
    return {1: (float(np.median([s[0] for s in samples])),
                float(np.median([s[1] for s in samples])))}


def measure_tile_sweep(ctx, t, quick):
    """``(tiles, interleave result)``: users per block x MB per score tile, or None."""
    import aprnb
    default = _hooks.tile_defaults()
    if default is None:
        return None
    tiles = [default] + ([(512, 4)] if quick else [(256, 2), (512, 4), (2048, 16), (4096, 64)])
    fns = {}
    for bs, mb in tiles:
        def ev_bs(bs=bs, mb=mb):
            with _hooks.tile_bytes(mb), common.blas_threads(t):
                return common.time_call(aprnb.evaluate, (ctx["P"], ctx["Q"]), ctx["X"],
                                        ctx["T"], k=[20], n_threads=t, block_size=bs)[0]
        fns[f"evaluate tile {bs} {mb}"] = ev_bs
    return tiles, common.interleave(fns, rounds=1 if quick else 2, warmup=0)


def setup(args):
    """Data, trained factors and the facts every section needs."""
    ds = common.load_gowalla()
    X, T = ds.train, ds.test
    model = trained_model(X, args.seed, 5 if args.quick else 20)
    P, Q = model.user_factors_, model.item_factors_
    have_implicit = common.optional_import("implicit", "implicit ranking_metrics_at_k") \
        is not None
    if common.optional_import("threadpoolctl", "BLAS thread limits") is None:
        print("[bench] BLAS thread count cannot be limited: the 1-thread rows use all BLAS "
              "threads", file=sys.stderr)
    return {"X": X, "T": T, "P": P, "Q": Q, "model": model, "have_implicit": have_implicit,
            "users": np.flatnonzero(np.diff(T.indptr) > 0),
            "rows": default_block_rows(Q.shape[0], P.itemsize),
            "threads": common.thread_list(args.threads), "rounds": 2 if args.quick else 5}


def scores_section(ctx, names, res, mem):
    users, Q = ctx["users"], ctx["Q"]
    rows_out = []
    for name in names:
        st = res[name]["wall"]
        rows_out.append([name, st.fmt_s(3), f"{1e6 * st.median / len(users):.1f}",
                         f"{mem[name]:.0f}" if name in mem else "n/a"])
    tiles = _hooks.tile_defaults()
    tile_note = (f"aprnb scores tiles of {tiles[0]} users x {tiles[1]} MB. " if tiles else "")
    return Section(f"Full-ranking top-20, all {len(users)} Gowalla users with test items "
                   f"({Q.shape[0]} items, 64 factors)",
                   ["contender", "seconds median [min-max]", "us/user",
                    "peak RSS increase MB"], rows_out,
                   [f"{ctx['rounds']} interleaved rounds after one warm-up call each; Numba "
                    f"and BLAS threads both limited to the thread count.",
                    f"bare matmul: P[block] @ Q.T over blocks of {ctx['rows']} users (64 MB "
                    f"of float32 scores, a new array per block); {tile_note}The score matrix "
                    f"for all users would be {len(users) * Q.shape[0] * 4 / 2**30:.1f} GB.",
                    "peak RSS increase: one full call in a fresh subprocess (data and "
                    "factors loaded, a 10-user warm-up call first so JIT/cache loading is "
                    "excluded), kernel high-water mark reset just before the call."])


def _speedup_rows(res, threads):
    if len(threads) < 2:
        return []
    lo, hi = threads[0], threads[-1]
    return [[f"{n} speed-up t{lo} -> t{hi}", "",
             ratio(res[f"{n} t{lo}"]["wall"].median, res[f"{n} t{hi}"]["wall"].median), ""]
            for n in ("aprnb evaluate", "implicit ranking_metrics_at_k", "bare matmul")
            if f"{n} t{lo}" in res]


def ratios_section(ctx, res, prof):
    rows = []
    for t in ctx["threads"]:
        a = res[f"aprnb evaluate t{t}"]["wall"].median
        b = res[f"bare matmul t{t}"]["wall"].median
        if f"implicit ranking_metrics_at_k t{t}" in res:
            i = res[f"implicit ranking_metrics_at_k t{t}"]["wall"].median
            rows.append(["aprnb / implicit", t, ratio(a, i), "<= 0.35x"])
        rows.append(["aprnb / bare matmul", t, ratio(a, b), "<= 1.5x"])
        if t in prof:
            mm, sel = prof[t]
            rows.append([f"aprnb profile (serial replay): BLAS tiles {mm:.2f} s + "
                         f"kernels {sel:.2f} s", t, f"kernels {100 * sel / (mm + sel):.0f}%",
                         ""])
    rows += _speedup_rows(res, ctx["threads"])
    return Section("Evaluation ratios (medians)", ["ratio", "threads", "value", "target"], rows)


def checks_section(ctx, metrics):
    rows = [["aprnb ndcg@20", f"{metrics['aprnb']['ndcg@20']:.6f}"],
            ["aprnb recall@20", f"{metrics['aprnb']['recall@20']:.6f}"]]
    if ctx["have_implicit"]:
        rows.append(["implicit ndcg@20", f"{metrics['implicit']['ndcg']:.6f}"])
        rows.append(["implicit 'precision' (= hits / min(20, |test_u|))",
                     f"{metrics['implicit']['precision']:.6f}"])
        for k, v in check_same_scores(ctx["model"], ctx["X"]).items():
            rows.append([f"first 200 users, {k}", f"{v:.3g}"])
    return Section("Evaluation cross-check (same factors, same scores)", ["check", "value"],
                   rows)


def sweep_section(ctx, res, sweep):
    tiles, sw = sweep
    t0 = ctx["threads"][0]
    bare = res[f"bare matmul t{t0}"]["wall"].median
    rows = [[bs, mb, f"{sw[f'evaluate tile {bs} {mb}']['wall'].median:.2f}",
             ratio(sw[f"evaluate tile {bs} {mb}"]["wall"].median, bare)] for bs, mb in tiles]
    return Section(f"Evaluation tile sweep ({t0} thread(s); default {tiles[0][0]} users, "
                   f"{tiles[0][1]} MB tiles)",
                   ["users per block", "tile MB", "aprnb s", "aprnb / bare matmul"], rows,
                   ["median of the sweep rounds (interleaved, no separate warm-up); the "
                    "first row is the default."])


def run(args):
    ctx = setup(args)
    metrics, contenders = {}, {}
    for t in ctx["threads"]:
        contenders.update(_contenders(ctx, t, metrics))
    res = common.interleave(contenders, rounds=ctx["rounds"], warmup=1)
    mem = memory_in_subprocesses(ctx["P"], ctx["Q"], ctx["threads"], ctx["have_implicit"])
    prof = measure_profile(ctx, args.quick)
    sweep = measure_tile_sweep(ctx, ctx["threads"][0], args.quick)
    sections = [scores_section(ctx, contenders, res, mem), ratios_section(ctx, res, prof)]
    if sweep is not None:
        sections.append(sweep_section(ctx, res, sweep))
    sections.append(checks_section(ctx, metrics))
    return sections, res


def main(argv=None):
    common.script_main(__doc__, run, argv)


if __name__ == "__main__":
    main()
