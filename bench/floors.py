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

import numpy as np
from numba import njit

from . import common
from .common import Section, ratio

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


def triples(X, seed):
    """Shuffled positives, their negatives (drawn once), and the user-sorted variants."""
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(X.shape[0], dtype=X.indices.dtype), np.diff(X.indptr))
    order = rng.permutation(len(users))
    t = {"users": users, "items": X.indices, "us": users[order].copy(),
         "its": X.indices[order].copy(), "sampler": _sampler(X, seed)}
    # implicit's scheme: the negative is the item of a random stored interaction
    # (popularity-weighted); liked ones are kept here, only the memory pattern matters.
    t["js_pop"] = X.indices[rng.integers(0, X.nnz, size=len(users))]
    if t["sampler"] is not None:
        t["js"], t["js_sorted"] = t["sampler"](t["us"]), t["sampler"](users)
    else:   # aprnb's sampler moved: any uniform negatives keep the plain-loop rows
        t["js"] = rng.integers(0, X.shape[1], size=len(users)).astype(X.indices.dtype)
        t["js_sorted"] = t["js"]
    return t


def _sampler(X, seed):
    """``users -> negatives`` with aprnb's public ``kernels.sample_negatives``, or None."""
    import aprnb
    fn = getattr(aprnb.kernels, "sample_negatives", None)
    if fn is None:
        print("[bench] skip the sampling row: aprnb.kernels.sample_negatives is gone",
              file=sys.stderr)
        return None
    states = np.zeros(8, dtype=np.uint64)
    states[0] = np.uint64(seed + 12345)
    return lambda us: fn(X.indptr, X.indices, us, X.shape[1], states)


def _ours(cls, X, seed, epochs=3):
    def go():
        m = cls(factors=64, epochs=epochs, n_threads=1, random_state=seed,
                optimizer="sgd", show_progress=False).fit(X)
        return {"wall": [h["seconds"] for h in m.history_[1:]]}
    return go


def contenders(X, seed):
    import aprnb
    rng = np.random.default_rng(seed)
    P = (rng.standard_normal((X.shape[0], 64)) * 0.01).astype(np.float32)
    Q = (rng.standard_normal((X.shape[1], 64)) * 0.01).astype(np.float32)
    t = triples(X, seed)
    lr, eps = np.float32(0.05), np.float32(0.5)
    us, its, js = t["us"], t["its"], t["js"]

    def plain(*a):
        return lambda: common.time_call(*a)[0]
    out = {
        "aprnb BPR epoch (kernel seconds)": _ours(aprnb.BPR, X, seed),
        "aprnb APR epoch (kernel seconds)": _ours(aprnb.APR, X, seed),
        "BPR plain loop": plain(bpr_plain, P, Q, us, its, js, lr, False),
        "BPR plain loop + softplus loss": plain(bpr_plain, P, Q, us, its, js, lr, True),
        "BPR plain loop, user-sorted order": plain(bpr_plain, P, Q, t["users"], t["items"],
                                                   t["js_sorted"], lr, False),
        "BPR plain loop, popularity-weighted negatives": plain(bpr_plain, P, Q, us, its,
                                                               t["js_pop"], lr, False),
        "APR plain loop": plain(apr_plain, P, Q, us, its, js, lr, eps),
    }
    if t["sampler"] is not None:
        out["uniform negative sampling (aprnb sample_negatives)"] = plain(t["sampler"], us)
    return out


def section(X, res):
    med = {k: v["wall"].median for k, v in res.items()}
    ours_b, ours_a = "aprnb BPR epoch (kernel seconds)", "aprnb APR epoch (kernel seconds)"
    rows = [[k, v["wall"].fmt_ms(), f"{X.nnz / med[k] / 1e6:.2f}"] for k, v in res.items()]
    rows += [["APR plain loop / BPR plain loop",
              ratio(med["APR plain loop"], med["BPR plain loop"]), ""],
             ["aprnb APR / aprnb BPR", ratio(med[ours_a], med[ours_b]), ""],
             ["aprnb BPR / BPR plain loop", ratio(med[ours_b], med["BPR plain loop"]), ""]]
    return Section(f"Diagnostics: aprnb epochs vs bench-local plain loops (Gowalla, "
                   f"{X.nnz} triples, 64 factors, 1 thread)",
                   ["row", "ms median [min-max]", "M triples/s"], rows,
                   ["plain loops: precomputed triples, plain SGD, no sampling/loss/"
                    "bookkeeping/prefetch (see bench/floors.py); aprnb rows include "
                    "shuffling and sampling."])


def run(args):
    import numba
    X = common.load_gowalla().train
    fns = contenders(X, args.seed)
    numba.set_num_threads(1)
    res = common.interleave(fns, rounds=2 if args.quick else 5, warmup=1)
    return [section(X, res)], res


def main(argv=None):
    common.script_main(__doc__, run, argv)


if __name__ == "__main__":
    main()
