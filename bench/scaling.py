"""Scaling: BPR epoch time and evaluation cost on synthetic sets up to 20M interactions.

``aprnb.data.make_synthetic`` loops over users in Python, which is too slow for
millions of users, so the sets are drawn with vectorised numpy (seeded;
``aprnb.benchmark.synthetic_split``, which ``aprnb bench`` uses too): user degrees
are geometric around the mean degree (at least 2), items follow a Zipf(0.8)
popularity law over a random permutation of the catalogue, duplicates are merged.
One interaction in twenty goes to a test matrix (for the evaluation rows). Sizes
default to 1M, 5M, 10M and 20M interactions with up to 1M users and 1M items; the
largest set needs about 2.5 GB of RAM in total.

Per size: a fresh ``aprnb.BPR`` (64 factors, SGD, 2 threads by default) is fitted
for a few epochs (the first dropped), reporting the median kernel and wall time
per epoch and triples per second, and the same for ``APR(eps=0.5)`` (kernel time
and the APR/BPR ratio; ``--no-apr`` skips it); then ``aprnb.evaluate`` (holdout, top-20) on a
seeded subset of users, alongside the bare matmul of the same user blocks, with
the cost per user and the extrapolation to all users.
"""
import sys
import time

import numpy as np

from aprnb.benchmark import bare_matmul, default_block_rows
from aprnb.benchmark import synthetic_split as synthetic

from . import common
from .common import Section, Stats

#: (n_users, n_items, target interactions)
SIZES = [(50_000, 50_000, 1_000_000), (250_000, 250_000, 5_000_000),
         (500_000, 500_000, 10_000_000), (1_000_000, 1_000_000, 22_000_000)]
QUICK_SIZES = [(50_000, 50_000, 1_000_000), (1_000_000, 1_000_000, 22_000_000)]


def fit_epochs(X, n_threads, epochs, seed, model="BPR"):
    import aprnb
    stamps = []
    m = getattr(aprnb, model)(factors=64, learning_rate=0.05, epochs=epochs, optimizer="sgd",
                              n_threads=n_threads, random_state=seed, show_progress=False)
    t0 = time.perf_counter()
    m.fit(X, callback=lambda e, s: stamps.append(time.perf_counter()))
    kern = [h["seconds"] for h in m.history_]
    return m, Stats(kern[1:]), Stats(np.diff(stamps)), (stamps[0] - t0) - kern[0]


def warm_up(n_threads, seed):
    """JIT warm-up on a small set so that no row pays compilation."""
    import aprnb
    Xw, Tw = synthetic(2000, 1000, 20_000, seed)
    aprnb.BPR(epochs=1, n_threads=n_threads, optimizer="sgd", show_progress=False).fit(Xw)
    aprnb.evaluate(aprnb.BPR(epochs=1, optimizer="sgd", show_progress=False).fit(Xw), Xw, Tw,
                   k=[20], n_threads=n_threads)


def fit_row(X, n_threads, epochs, args):
    """``(BPR model, table row)``: BPR (and APR unless ``--no-apr``) epochs on ``X``."""
    with common.PeakRSS() as pk:
        m, kern, wall, setup = fit_epochs(X, n_threads, epochs, args.seed)
    row = [f"{X.shape[0]:,}", f"{X.shape[1]:,}", f"{X.nnz:,}", kern.fmt_ms(0),
           wall.fmt_ms(0), f"{X.nnz / kern.median / 1e6:.2f}", f"{1e3 * setup:.0f}",
           f"{pk.increase:.0f}"]
    if not args.no_apr:
        _, akern, _, _ = fit_epochs(X, n_threads, epochs, args.seed, model="APR")
        row += [akern.fmt_ms(0), f"{akern.median / kern.median:.2f}x"]
    return m, row


def eval_row(m, X, T, n_threads, n_eval, seed):
    """evaluate on a seeded user subset vs the bare matmul, extrapolated to all users."""
    import aprnb
    rng = np.random.default_rng(seed)
    has_test = np.flatnonzero(np.diff(T.indptr) > 0)
    users = np.sort(rng.choice(has_test, size=min(n_eval, len(has_test)), replace=False))
    P, Q = m.user_factors_, m.item_factors_
    ev, mm = Stats(), Stats()
    with common.blas_threads(n_threads):
        for _ in range(2):
            ev.add(common.time_call(aprnb.evaluate, (P, Q), X, T, k=[20], users=users,
                                    n_threads=n_threads)[0])
            mm.add(common.time_call(bare_matmul, P, Q, users,
                                    default_block_rows(X.shape[1], P.itemsize))[0])
    per_user = ev.median / len(users)
    return [f"{X.shape[0]:,}", f"{X.shape[1]:,}", len(users), f"{ev.median:.2f}",
            f"{mm.median:.2f}", f"{ev.median / mm.median:.2f}x", f"{1e3 * per_user:.2f}",
            f"{per_user * len(has_test):.0f}"]


def sections(rows_fit, rows_eval, n_threads, epochs, no_apr):
    fit = Section(f"Scaling: BPR epoch on synthetic data (64 factors, SGD, {n_threads} threads)",
                  ["users", "items", "train interactions", "kernel ms/epoch [min-max]",
                   "wall ms/epoch", "M triples/s", "fit setup ms", "fit peak RSS +MB"]
                  + ([] if no_apr else ["APR kernel ms/epoch", "APR / BPR"]),
                  rows_fit,
                  [f"{epochs} epochs per fit, first dropped; Zipf(0.8) item popularity, "
                   f"geometric user degrees; generated with numpy (seeded)."])
    evs = Section(f"Scaling: evaluate (holdout top-20) on a user subset, {n_threads} threads",
                  ["users", "items", "users evaluated", "aprnb s", "bare matmul s",
                   "aprnb / matmul", "ms per user", "extrapolated s for all test users"],
                  rows_eval, ["median of 2 calls each; BLAS threads limited to the same "
                              "count."])
    return [fit, evs]


def run(args):
    sizes = QUICK_SIZES if args.quick else SIZES
    if args.max_nnz:
        sizes = [s for s in sizes if s[2] <= args.max_nnz]
    n_threads = common.thread_list(args.threads)[-1]
    epochs = 2 if args.quick else 3
    n_eval = 500 if args.quick else args.eval_users
    warm_up(n_threads, args.seed)
    rows_fit, rows_eval = [], []
    for n_users, n_items, nnz in sizes:
        t_gen, (X, T) = common.time_call(synthetic, n_users, n_items, nnz, args.seed)
        print(f"  {n_users} x {n_items}: {X.nnz} train interactions "
              f"(generated in {t_gen:.1f} s)", file=sys.stderr, flush=True)
        m, row = fit_row(X, n_threads, epochs, args)
        rows_fit.append(row)
        rows_eval.append(eval_row(m, X, T, n_threads, n_eval, args.seed))
        del m, X, T
    return sections(rows_fit, rows_eval, n_threads, epochs, args.no_apr), None


def main(argv=None):
    p = common.common_argparser(__doc__.splitlines()[0])
    p.set_defaults(threads="2")
    p.add_argument("--eval-users", type=int, default=2000)
    p.add_argument("--no-apr", action="store_true", help="skip the APR(eps=0.5) epochs")
    p.add_argument("--max-nnz", type=int, default=None,
                   help="skip sizes with more target interactions than this")
    common.script_main(__doc__, run, argv, parser=p)


if __name__ == "__main__":
    main()
