"""Ray evaluation at 1 and 2 workers against local: ``aprnb.evaluate(..., backend="ray")``.

A synthetic set (``bench.scaling.synthetic``: geometric user degrees, Zipf(0.8) items,
one interaction in twenty held out; default 200,000 users x 50,000 items, about 20
training interactions per user) and seeded random 64-wide float32 factors (the cost of
an evaluation does not depend on how the factors were trained). Every user with a test
item is evaluated under ``--protocol`` (default holdout, top-20).

Contenders, each warmed up once (JIT caches, Ray workers) and then timed ``--repeat``
times (median [min-max], wall clock of the whole ``evaluate`` call):

* local, at each of ``--threads`` (default 1 and 2; ``n_threads``, BLAS threads limited
  to the same);
* Ray with as many worker CPUs: a fresh local Ray each (``ray.init(num_cpus=w)``, shut
  down after), tasks of one thread.

The local contenders are interleaved round by round; the Ray ones run one after
the other (a Ray cluster per worker count). Each Ray result is checked against the local
one: every metric and every per-user value must be equal (``==``). The throughput
column counts the ``2 * users * items * factors`` flops of the scores.
"""
import sys

import numpy as np

from . import common
from .common import Section, Stats
from .scaling import synthetic

SIZE = (200_000, 50_000, 4_000_000)
QUICK_SIZE = (50_000, 20_000, 1_000_000)


def factors(n_users, n_items, d, seed):
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((n_users, d))).astype(np.float32), \
        (0.1 * rng.standard_normal((n_items, d))).astype(np.float32)


def same(got, ref):
    """Every metric and per-user value equal, bit for bit."""
    if set(got) != set(ref) or not np.array_equal(got["users"], ref["users"]):
        return False
    per = all(np.array_equal(got["per_user"][m], v) for m, v in ref["per_user"].items())
    return per and all(got[m] == v for m, v in ref.items() if m not in ("users", "per_user"))


def time_ray(workers, call, repeat, ref):
    """Stats of ``call(backend="ray")`` on a fresh local Ray of ``workers`` CPUs, and
    whether every result equalled ``ref``."""
    import ray
    ray.init(num_cpus=workers, include_dashboard=False, logging_level="error",
             log_to_driver=False)
    try:
        print(f"  warm-up  ray {workers}", file=sys.stderr, flush=True)
        equal = same(call(backend="ray"), ref)
        st = Stats()
        for r in range(repeat):
            t, res = common.time_call(call, backend="ray")
            st.add(t)
            equal &= same(res, ref)
            print(f"  round {r + 1}/{repeat}  ray {workers}: {t:.2f} s", file=sys.stderr,
                  flush=True)
    finally:
        ray.shutdown()
    return st, equal


def run(args):
    import aprnb
    n_users, n_items, nnz = QUICK_SIZE if args.quick else (args.users, args.items,
                                                           args.users * args.degree)
    repeat = 3 if args.quick else args.repeat
    X, T = synthetic(n_users, n_items, nnz, args.seed)
    P, Q = factors(n_users, n_items, args.factors, args.seed)
    kw = dict(k=[20], protocol=args.protocol, per_user=True)
    if args.protocol == "loo":        # one test item per user: the first of each row
        T = T.tocsr()
        T.data[np.arange(T.nnz) != np.repeat(T.indptr[:-1], np.diff(T.indptr))] = 0
        T.eliminate_zeros()

    def call(**extra):
        return aprnb.evaluate((P, Q), X, T, **kw, **extra)

    def local(n):
        def go():
            with common.blas_threads(n):
                return common.time_call(call, n_threads=n)[0]
        return go

    counts = common.thread_list(args.threads)
    ref = call(n_threads=1)
    print(f"  {n_users} x {n_items}, {X.nnz} train interactions, {ref['n_users']} users "
          f"evaluated", file=sys.stderr, flush=True)
    res = common.interleave({f"local {n}": local(n) for n in counts}, repeat)
    rows = {f"local, {n} thread{'s' * (n > 1)}": (res[f"local {n}"]["wall"], "reference", n)
            for n in counts}
    for w in counts:
        st, equal = time_ray(w, call, repeat, ref)
        rows[f"Ray, {w} worker CPU{'s' * (w > 1)}"] = (st, "yes" if equal else "NO", w)
    flop = 2.0 * ref["n_users"] * n_items * args.factors
    base = next(iter(rows.values()))[0].median
    first = next(iter(rows))
    table = [[name, st.fmt_s(), common.ratio(base, st.median), f"{flop / st.median / 1e9:.1f}",
              f"{flop / st.median / 1e9 / cores:.1f}", equal]
             for name, (st, equal, cores) in rows.items()]
    return [Section(f"Ray evaluation at {' and '.join(map(str, counts))} workers against "
                    f"local ({args.protocol}, "
                    f"top-20, {n_users:,} users x {n_items:,} items, {args.factors} factors)",
                    ["contender", "s [min-max]", f"speed-up vs {first}", "GFLOP/s",
                     "GFLOP/s per core", "equal to local"], table,
                    [f"{ref['n_users']:,} users evaluated, {X.nnz:,} training interactions; "
                     f"warm-up + {repeat} timed calls each; local calls interleaved, each "
                     f"Ray worker count on a fresh local Ray.",
                     "equal to local: every metric and per-user value `==` the local "
                     "1-thread result."])], None


def main(argv=None):
    p = common.common_argparser(__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=SIZE[0])
    p.add_argument("--items", type=int, default=SIZE[1])
    p.add_argument("--degree", type=int, default=SIZE[2] // SIZE[0],
                   help="mean training interactions per user")
    p.add_argument("--factors", type=int, default=64)
    p.add_argument("--protocol", default="holdout", choices=["holdout", "loo"])
    p.add_argument("--repeat", type=int, default=5)
    common.script_main(__doc__, run, argv, parser=p)


if __name__ == "__main__":
    main()
