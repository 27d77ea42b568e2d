"""Diagnostics: where an aprnb epoch goes, against bench-local plain loops (Gowalla, 1 thread).

The plain loops are minimal Numba loops written here (not aprnb code) that run the
per-triple plain-SGD arithmetic on **precomputed** triples (shuffled positives,
negatives drawn once), with no sampling, no loss, no bookkeeping and no
prefetching:

* ``BPR plain loop``: dot product, one ``exp``, three-row update;
* ``APR plain loop``: the closed-form APR step (three reductions, two guarded
  norms, two ``exp``, the perturbed update);
* ``BPR plain loop + loss``: the same plus ``softplus`` per triple;
* ``BPR plain loop, user-sorted``: the same triples in CSR (user-major) order,
  which shows what memory locality alone is worth;
* ``BPR plain loop, popularity-weighted negatives``: negatives drawn as implicit
  does (the item of a random stored interaction);
* ``uniform negative sampling``: aprnb's ``sample_negatives`` for one epoch
  (filter + exact rejection, no prefetching).

These are *not* lower bounds: a plain loop waits for memory on every triple,
and aprnb's epoch (which also samples, shuffles and sums the loss) is faster
than the plain loop because it prefetches the rows of the next triples while it
updates the current one. All rows run interleaved in one process, one thread,
median of the rounds.
"""
import math
import sys
from pathlib import Path

import numpy as np
from numba import njit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import Section, ratio  # noqa: E402

_FM = {"reassoc", "contract"}   # the same fast-math subset aprnb uses


@njit(fastmath=_FM)
def bpr_plain(P, Q, us, its, js, lr, with_loss):
    d = P.shape[1]
    acc = 0.0
    for t in range(us.shape[0]):
        u, i, j = us[t], its[t], js[t]
        x = P.dtype.type(0.0)
        for f in range(d):
            x += P[u, f] * (Q[i, f] - Q[j, f])
        s = P.dtype.type(1.0 / (1.0 + math.exp(min(x, 50.0))))
        if with_loss:
            acc += max(-x, 0.0) + math.log1p(math.exp(-abs(x)))
        g = lr * s
        for f in range(d):
            pu, qi, qj = P[u, f], Q[i, f], Q[j, f]
            P[u, f] = pu + g * (qi - qj)
            Q[i, f] = qi + g * pu
            Q[j, f] = qj - g * pu
    return acc


@njit(fastmath=_FM)
def apr_plain(P, Q, us, its, js, lr, eps):
    d = P.shape[1]
    dt = P.dtype.type
    for t in range(us.shape[0]):
        u, i, j = us[t], its[t], js[t]
        x = dt(0.0)
        nd2 = dt(0.0)
        np2 = dt(0.0)
        for f in range(d):
            pu = P[u, f]
            dd = Q[i, f] - Q[j, f]
            x += pu * dd
            nd2 += dd * dd
            np2 += pu * pu
        cu = dt(-eps / math.sqrt(max(nd2, 1e-12)))
        cq = dt(eps / math.sqrt(max(np2, 1e-12)))
        xa = x - 2 * cq * np2 + cu * nd2 - 2 * cu * cq * x
        s = dt(1.0 / (1.0 + math.exp(min(x, 50.0))))
        a = dt(1.0 / (1.0 + math.exp(min(xa, 50.0))))
        for f in range(d):
            pu, qi, qj = P[u, f], Q[i, f], Q[j, f]
            dd = qi - qj
            pt = pu + cu * dd
            P[u, f] = pu + lr * (s * dd + a * (dd - 2 * cq * pu))
            Q[i, f] = qi + lr * (s * pu + a * pt)
            Q[j, f] = qj - lr * (s * pu + a * pt)


def run(args):
    import aprnb
    from aprnb.kernels import sample_negatives
    X = common.load_gowalla().train
    rng = np.random.default_rng(args.seed)
    users = np.repeat(np.arange(X.shape[0], dtype=X.indices.dtype), np.diff(X.indptr))
    items = X.indices
    P = (rng.standard_normal((X.shape[0], 64)) * 0.01).astype(np.float32)
    Q = (rng.standard_normal((X.shape[1], 64)) * 0.01).astype(np.float32)
    states = np.zeros(8, dtype=np.uint64)
    states[0] = np.uint64(args.seed + 12345)
    order = rng.permutation(len(users))
    us, its = users[order].copy(), items[order].copy()
    js = sample_negatives(X.indptr, X.indices, us, X.shape[1], states)
    js_sorted = sample_negatives(X.indptr, X.indices, users, X.shape[1], states)
    # implicit's scheme: the negative is the item of a random stored interaction
    # (popularity-weighted); liked ones are kept here, only the memory pattern matters.
    js_pop = X.indices[rng.integers(0, X.nnz, size=len(us))]
    lr, eps = np.float32(0.05), np.float32(0.5)
    epochs = 3

    def ours(cls):
        def go():
            m = cls(factors=64, epochs=epochs, n_threads=1, random_state=args.seed,
                    optimizer="sgd", show_progress=False).fit(X)
            return {"wall": [h["seconds"] for h in m.history_[1:]]}
        return go

    contenders = {
        "aprnb BPR epoch (kernel seconds)": ours(aprnb.BPR),
        "aprnb APR epoch (kernel seconds)": ours(aprnb.APR),
        "BPR plain loop": lambda: common.time_call(bpr_plain, P, Q, us, its, js, lr, False)[0],
        "BPR plain loop + softplus loss": lambda: common.time_call(bpr_plain, P, Q, us, its, js,
                                                              lr, True)[0],
        "BPR plain loop, user-sorted order": lambda: common.time_call(
            bpr_plain, P, Q, users, items, js_sorted, lr, False)[0],
        "BPR plain loop, popularity-weighted negatives": lambda: common.time_call(
            bpr_plain, P, Q, us, its, js_pop, lr, False)[0],
        "APR plain loop": lambda: common.time_call(apr_plain, P, Q, us, its, js, lr, eps)[0],
        "uniform negative sampling (aprnb sample_negatives)": lambda: common.time_call(
            sample_negatives, X.indptr, X.indices, us, X.shape[1], states)[0],
    }
    import numba
    numba.set_num_threads(1)
    res = common.interleave(contenders, rounds=2 if args.quick else 5, warmup=1)
    med = {k: v["wall"].median for k, v in res.items()}
    rows = [[k, v["wall"].fmt_ms(), f"{X.nnz / med[k] / 1e6:.2f}"] for k, v in res.items()]
    rows += [["APR plain loop / BPR plain loop", ratio(med["APR plain loop"], med["BPR plain loop"]), ""],
             ["aprnb APR / aprnb BPR", ratio(med["aprnb APR epoch (kernel seconds)"],
                                             med["aprnb BPR epoch (kernel seconds)"]), ""],
             ["aprnb BPR / BPR plain loop", ratio(med["aprnb BPR epoch (kernel seconds)"],
                                             med["BPR plain loop"]), ""]]
    sec = Section(f"Diagnostics: aprnb epochs vs bench-local plain loops (Gowalla, "
                  f"{X.nnz} triples, 64 factors, 1 thread)",
                  ["row", "ms median [min-max]", "M triples/s"], rows,
                  ["plain loops: precomputed triples, plain SGD, no sampling/loss/bookkeeping/prefetch "
                   "(see bench/floors.py); aprnb rows include shuffling and sampling."])
    return [sec], res


def main(argv=None):
    common.script_main(__doc__, run, argv)


if __name__ == "__main__":
    main()
