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
internal pieces to split the time between the matmul and the selection kernel.
"""
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import Section, ratio  # noqa: E402


def trained_factors(X, seed, epochs):
    import aprnb
    m = aprnb.BPR(factors=64, epochs=epochs, random_state=seed, optimizer="sgd",
                  show_progress=False).fit(X)
    return m.user_factors_, m.item_factors_


def default_block_rows(n_items, itemsize=4):
    import aprnb.evaluation as ev
    return max(16, ev.DEFAULT_BLOCK_BYTES // (n_items * itemsize))


def bare_matmul(P, Q, users, rows):
    for lo in range(0, len(users), rows):
        S = P[users[lo:lo + rows]] @ Q.T
    return S


def implicit_model(P, Q, n_threads):
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    m = BayesianPersonalizedRanking(factors=P.shape[1], num_threads=n_threads)
    m.user_factors, m.item_factors = P, Q
    return m


def check_same_scores(P, Q, X, T, n_check=200):
    """implicit's recommend and aprnb's top_k agree on items and scores."""
    import aprnb.evaluation as ev
    users = np.arange(min(n_check, P.shape[0]))
    ids, scores = implicit_model(P, Q, 1).recommend(users, X[users], N=20)
    ours_ids, ours_scores = ev.top_k(P, Q, users, 20, exclude=X)
    direct = np.take_along_axis(P[users] @ Q.T, ours_ids, axis=1)
    return {"item agreement": float((ids == ours_ids).mean()),
            "max |score diff|": float(np.abs(scores - ours_scores).max()),
            "max |aprnb score - P@Q.T|": float(np.abs(ours_scores - direct).max())}


def profile_aprnb(P, Q, X, T, k=20):
    """Replay aprnb.evaluate's tiled holdout loop on one thread, timing BLAS and kernels apart."""
    import aprnb.evaluation as ev
    from aprnb.kernels.topk import holdout_finish, push_tile
    users = np.flatnonzero(np.diff(T.indptr) > 0)
    rows, bufs = ev._tile_buffers(Q.shape[0], P.dtype, None, len(users), 1)
    buf = bufs[0]
    ks = np.asarray([k], dtype=np.int64)
    ex_ptr, ex_idx = X.indptr.astype(np.int64), X.indices.astype(np.int64)
    te_ptr, te_idx = T.indptr.astype(np.int64), T.indices.astype(np.int64)
    t_mm = t_sel = 0.0
    for lo in range(0, len(users), rows):
        b = users[lo:lo + rows]
        n = len(b)
        Pb = P[b]
        hs = np.full((n, k), -np.inf, dtype=P.dtype)
        hi = np.full((n, k), -1, dtype=np.int64)
        sizes = np.zeros(n, dtype=np.int64)
        ex_pos = ex_ptr[b].copy()
        cols = buf.size // n
        for c in range(0, Q.shape[0], cols):
            c2 = min(Q.shape[0], c + cols)
            S = buf[:n * (c2 - c)].reshape(n, c2 - c)
            t0 = time.perf_counter()
            np.matmul(Pb, Q[c:c2].T, out=S)
            t1 = time.perf_counter()
            push_tile(S, b, c, ex_ptr, ex_idx, ex_pos, k, hs, hi, sizes)
            t_sel += time.perf_counter() - t1
            t_mm += t1 - t0
        t1 = time.perf_counter()
        holdout_finish(b, hs, hi, sizes, te_ptr, te_idx, ks, np.zeros((n, 1, 4)))
        t_sel += time.perf_counter() - t1
    return t_mm, t_sel


MEMORY_CHILD = r"""
import json, sys
sys.path.insert(0, {bench!r})
import numpy as np, scipy.sparse as sp
import common, evaluate as E
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


def memory_in_subprocesses(P, Q, threads, have_implicit):
    """``{contender name: peak RSS increase MB}`` measured in fresh subprocesses."""
    import json
    import tempfile
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
                code = MEMORY_CHILD.format(bench=str(common.BENCH_DIR), which=which, t=t,
                                           path=path)
                _, proc = common.run_python(code)
                if proc.returncode != 0:
                    print(f"[bench] memory probe {name} failed: {proc.stderr[-500:]}",
                          file=sys.stderr)
                    continue
                out[name] = json.loads(proc.stdout.strip().splitlines()[-1])["increase"]
    return out


def run(args):
    import aprnb
    ds = common.load_gowalla()
    X, T = ds.train, ds.test
    threads = common.thread_list(args.threads)
    rounds = 2 if args.quick else 5
    P, Q = trained_factors(X, args.seed, 5 if args.quick else 20)
    users = np.flatnonzero(np.diff(T.indptr) > 0)
    rows = default_block_rows(Q.shape[0], P.itemsize)
    have_implicit = common.optional_import("implicit", "implicit ranking_metrics_at_k") \
        is not None
    if common.optional_import("threadpoolctl", "BLAS thread limits") is None:
        print("[bench] BLAS thread count cannot be limited: the 1-thread rows use all BLAS "
              "threads", file=sys.stderr)

    metrics = {}
    contenders = {}
    for t in threads:
        def ours(t=t):
            with common.blas_threads(t):
                dt, r = common.time_call(aprnb.evaluate, (P, Q), X, T, k=[20],
                                         protocol="holdout", n_threads=t)
            metrics["aprnb"] = r
            return dt
        contenders[f"aprnb evaluate t{t}"] = ours
        if have_implicit:
            from implicit.evaluation import ranking_metrics_at_k

            def imp(t=t):
                model = implicit_model(P, Q, t)
                with common.blas_threads(t):
                    dt, r = common.time_call(ranking_metrics_at_k, model, X, T, K=20,
                                             show_progress=False, num_threads=t)
                metrics["implicit"] = r
                return dt
            contenders[f"implicit ranking_metrics_at_k t{t}"] = imp

        def bare(t=t):
            with common.blas_threads(t):
                return common.time_call(bare_matmul, P, Q, users, rows)[0]
        contenders[f"bare matmul t{t}"] = bare

    res = common.interleave(contenders, rounds=rounds, warmup=1)

    mem = memory_in_subprocesses(P, Q, threads, have_implicit)

    prof = {}
    try:
        with common.blas_threads(1):
            samples = [profile_aprnb(P, Q, X, T) for _ in range(2 if args.quick else 3)]
        prof[1] = (float(np.median([s[0] for s in samples])),
                   float(np.median([s[1] for s in samples])))
    except (ImportError, AttributeError, TypeError) as exc:   # aprnb internals moved
        print(f"[bench] evaluate profile skipped: {exc}", file=sys.stderr)

    # Tile sweep (first thread count): users per block x bytes of one score tile.
    import aprnb.evaluation as ev
    t0 = threads[0]
    tiles = [(ev.TILE_ROWS, ev.TILE_BYTES >> 20)] + (
        [(512, 4)] if args.quick else [(256, 2), (512, 4), (2048, 16), (4096, 64)])
    sweep_fns = {}
    for bs, mb in tiles:
        def ev_bs(bs=bs, mb=mb):
            old = ev.TILE_BYTES
            ev.TILE_BYTES = mb << 20
            try:
                with common.blas_threads(t0):
                    return common.time_call(aprnb.evaluate, (P, Q), X, T, k=[20],
                                            n_threads=t0, block_size=bs)[0]
            finally:
                ev.TILE_BYTES = old
        sweep_fns[f"evaluate tile {bs} {mb}"] = ev_bs
    sweep = common.interleave(sweep_fns, rounds=1 if args.quick else 2, warmup=0)

    rows_out = []
    for name in contenders:
        st = res[name]["wall"]
        rows_out.append([name, st.fmt_s(3), f"{1e6 * st.median / len(users):.1f}",
                         f"{mem[name]:.0f}" if name in mem else "n/a"])
    scores = Section(f"Full-ranking top-20, all {len(users)} Gowalla users with test items "
                     f"({Q.shape[0]} items, 64 factors)",
                     ["contender", "seconds median [min-max]", "us/user",
                      "peak RSS increase MB"], rows_out,
                     [f"{rounds} interleaved rounds after one warm-up call each; Numba and "
                      f"BLAS threads both limited to the thread count.",
                      f"bare matmul: P[block] @ Q.T over blocks of {rows} users (64 MB of "
                      f"float32 scores, a new array per block); aprnb scores tiles of "
                      f"{ev.TILE_ROWS} users x {ev.TILE_BYTES >> 20} MB. The score matrix for "
                      f"all users would be {len(users) * Q.shape[0] * 4 / 2**30:.1f} GB.",
                      "peak RSS increase: one full call in a fresh subprocess (data and "
                      "factors loaded, a 10-user warm-up call first so JIT/cache loading is "
                      "excluded), kernel high-water mark reset just before the call."])

    ratio_rows = []
    for t in threads:
        a = res[f"aprnb evaluate t{t}"]["wall"].median
        b = res[f"bare matmul t{t}"]["wall"].median
        if f"implicit ranking_metrics_at_k t{t}" in res:
            i = res[f"implicit ranking_metrics_at_k t{t}"]["wall"].median
            ratio_rows.append(["aprnb / implicit", t, ratio(a, i), "<= 0.35x"])
        ratio_rows.append(["aprnb / bare matmul", t, ratio(a, b), "<= 1.5x"])
        if t not in prof:
            continue
        mm, sel = prof[t]
        ratio_rows.append([f"aprnb profile (serial replay): BLAS tiles {mm:.2f} s + "
                           f"kernels {sel:.2f} s", t, f"kernels {100 * sel / (mm + sel):.0f}%",
                           ""])
    if len(threads) > 1:
        lo, hi = threads[0], threads[-1]
        for n in ("aprnb evaluate", "implicit ranking_metrics_at_k", "bare matmul"):
            if f"{n} t{lo}" in res:
                ratio_rows.append([f"{n} speed-up t{lo} -> t{hi}", "",
                                   ratio(res[f"{n} t{lo}"]["wall"].median,
                                         res[f"{n} t{hi}"]["wall"].median), ""])
    ratios = Section("Evaluation ratios (medians)", ["ratio", "threads", "value", "target"],
                     ratio_rows)

    check_rows = [["aprnb ndcg@20", f"{metrics['aprnb']['ndcg@20']:.6f}"],
                  ["aprnb recall@20", f"{metrics['aprnb']['recall@20']:.6f}"]]
    if have_implicit:
        check_rows.append(["implicit ndcg@20", f"{metrics['implicit']['ndcg']:.6f}"])
        check_rows.append(["implicit 'precision' (= hits / min(20, |test_u|))",
                           f"{metrics['implicit']['precision']:.6f}"])
        for k, v in check_same_scores(P, Q, X, T).items():
            check_rows.append([f"first 200 users, {k}", f"{v:.3g}"])
    checks = Section("Evaluation cross-check (same factors, same scores)", ["check", "value"],
                     check_rows)
    bare = res[f"bare matmul t{t0}"]["wall"].median
    sweep_rows = [[bs, mb, f"{sweep[f'evaluate tile {bs} {mb}']['wall'].median:.2f}",
                   ratio(sweep[f"evaluate tile {bs} {mb}"]["wall"].median, bare)]
                  for bs, mb in tiles]
    blocks = Section(f"Evaluation tile sweep ({t0} thread(s); default {ev.TILE_ROWS} users, "
                     f"{ev.TILE_BYTES >> 20} MB tiles)",
                     ["users per block", "tile MB", "aprnb s", "aprnb / bare matmul"],
                     sweep_rows,
                     ["median of the sweep rounds (interleaved, no separate warm-up); the "
                      "first row is the default."])
    return [scores, ratios, blocks, checks], res


def main(argv=None):
    common.script_main(__doc__, run, argv)


if __name__ == "__main__":
    main()
