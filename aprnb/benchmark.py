"""``aprnb bench``: training and evaluation throughput on this machine, from an install.

:func:`run_benchmark` draws a seeded synthetic data set (:func:`synthetic_split`),
compiles the kernels once on a small set (``warmup_s``: Numba compiling them on
the first run after an install, loading them from its cache later), then measures:

* training: epochs of MF-BPR (SGD), APR (SGD) and APR (Adagrad) with per-triple
  updates, and APR with mini-batches of 512 (Adagrad; Hogwild over mini-batches on
  several threads; not with ``quick``, whose budget its compilation would exceed on
  a first run), at each thread count. One fit of ``repeats + 1`` epochs per row;
  the first epoch is dropped. An epoch's time is the model's
  ``history_[e]["seconds"]`` (shuffle and epoch kernel); triples per second are
  the training interactions divided by it. ``setup_s`` is the time from calling
  ``fit`` to the end of the first epoch minus that epoch's time: checks, the
  negative-sampling filter, allocation and the first snapshot. APR uses
  ``eps=0.5, reg_adv=1``; every row ``learning_rate=0.05, reg=0``.
* evaluation: :func:`aprnb.evaluate` (holdout protocol, full ranking, top 20, training
  items excluded) of a seeded sample of users against the bare matmul
  (:func:`bare_matmul`) of the same users: ``P[block] @ Q.T`` over blocks of about
  64 MB of scores with BLAS limited to the same number of threads, no exclusion
  and no selection, i.e. the floor. The factors are seeded Gaussian
  (standard deviation 0.1). ``repeats + 1`` rounds of both, the first dropped.

Timings are medians with the minimum and maximum over the repeats; on a busy or
shared machine they vary from run to run. The peer comparisons (implicit, cornac,
PyTorch) and the real data sets stay in the repository's ``bench/`` scripts.

The returned dict (and ``aprnb bench --json``) has these keys:

* ``aprnb_version``; ``seconds``: the whole run; ``warmup_s``: the compile step;
* ``machine``: ``cpu``, ``cores`` (``os.cpu_count()``), ``usable_cores``, ``simd``,
  ``numba_threads``, ``numba_threading_layer``, ``numba``, ``numpy``, ``scipy``,
  ``blas`` (library, version, threading, threads, architecture per threadpoolctl),
  ``python``, ``platform``;
* ``data``: ``users``, ``items``, ``interactions`` (training pairs: the triples of
  an epoch), ``test_interactions``, ``factors``, ``dtype``;
* ``settings``: ``quick``, ``repeats``, ``threads`` (list), ``seed``;
* ``train``: one dict per row: ``model`` ("BPR" or "APR"), ``optimizer`` ("sgd"
  or "adagrad"), ``batch_size``, ``threads``, ``epochs`` (timed),
  ``triples_per_s`` and ``epoch_s`` (each ``{"median", "min", "max"}``), ``setup_s``;
* ``evaluate``: one dict per thread count: ``threads``, ``users`` (evaluated), ``k``
  (20), ``top_k_users_per_s``, ``matmul_users_per_s``, ``top_k_gflop_per_s``,
  ``matmul_gflop_per_s`` (each ``{"median", "min", "max"}``; a user's scores cost
  ``2 * items * factors`` flops) and ``ratio``: median evaluation time over median
  matmul time (1.0: selecting the top 20 and scoring the metrics cost nothing
  beyond the scores).
"""
import numbers
import sys
import time

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from . import __version__, _machine
from ._threads import max_threads
from ._timing import Stats, time_call
from ._validation import check_bool, check_dtype, check_positive_int
from .evaluation import evaluate
from .models import APR, BPR

#: Sizes of a run: (users, items, interactions, evaluated users, repeats)
FULL = dict(users=30_000, items=40_000, interactions=800_000, eval_users=5_000, repeats=5)
QUICK = dict(users=10_000, items=10_000, interactions=200_000, eval_users=2_000, repeats=3)

#: The training rows at each thread count: (model, optimizer, batch size)
TRAINING = (("BPR", "sgd", 1), ("APR", "sgd", 1), ("APR", "adagrad", 1),
            ("APR", "adagrad", 512))

#: Cut-off of the evaluation
TOP_K = 20

#: Scores per block of the bare matmul, in bytes
BARE_BLOCK_BYTES = 64 * 2**20


def _degrees(rng, n_users, n_items, nnz, sigma):
    mean = nnz / n_users
    if sigma is None:       # the older sets: geometric degrees
        deg = np.maximum(2, rng.geometric(1.0 / max(1.0, mean - 1.0), size=n_users) + 1)
    else:
        deg = np.maximum(2, rng.lognormal(np.log(mean) - sigma ** 2 / 2, sigma, n_users))
    return np.minimum(deg, n_items // 2).astype(np.int64)


def _csr(keys, n_users, n_items):
    """CSR (float32 ones, int32 indices) of sorted unique cell keys ``u * n_items + i``."""
    u = keys // n_items
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(u, minlength=n_users), out=indptr[1:])
    u *= n_items
    np.subtract(keys, u, out=u)
    return sp.csr_matrix((np.ones(len(keys), dtype=np.float32), u.astype(np.int32), indptr),
                         shape=(n_users, n_items))


def synthetic_split(n_users, n_items, interactions, random_state=0, test_share=0.05,
                    sigma=None):
    """``(train, test)``: a seeded synthetic implicit-feedback set, drawn vectorised.

    User degrees are geometric around ``interactions / n_users`` (``sigma=None``)
    or log-normal with that mean and log-standard-deviation ``sigma`` (a heavy
    tail of active users); at least 2, at most ``n_items // 2``. Items follow a
    Zipf(0.8) popularity law over a random permutation of the catalogue;
    duplicates are merged, so the set holds somewhat fewer than ``interactions``
    pairs. One pair in ``1 / test_share`` goes to the test matrix. Both are CSR
    float32 matrices with sorted, unique int32 indices. Unlike
    :func:`aprnb.data.make_synthetic`, which loops over users, it takes seconds
    for millions of interactions (and has no planted structure). The peak is
    about 32 bytes per target interaction (int64 keys and their temporaries).
    """
    rng = np.random.default_rng(random_state)
    deg = _degrees(rng, n_users, n_items, interactions, sigma)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.8
    pop = pop[rng.permutation(n_items)]
    # iid popularity draws as per-item counts, spread over users by a shuffle
    # (much faster than a searchsorted per draw at this size).
    counts = rng.multinomial(int(deg.sum()), pop / pop.sum())
    keys = np.repeat(np.arange(n_items, dtype=np.int64), counts)
    rng.shuffle(keys)
    keys += np.repeat(np.arange(n_users, dtype=np.int64) * n_items, deg)
    keys.sort()                  # sort + mask: np.unique is far slower on 100M int64
    keep = np.empty(len(keys), dtype=bool)
    keep[0] = True
    np.not_equal(keys[1:], keys[:-1], out=keep[1:])
    keys = keys[keep]
    del keep
    is_test = rng.random(len(keys)) < test_share
    return _csr(keys[~is_test], n_users, n_items), _csr(keys[is_test], n_users, n_items)


def default_block_rows(n_items, itemsize=4):
    """Users per block of :func:`bare_matmul`: about 64 MB of scores."""
    return max(16, BARE_BLOCK_BYTES // (n_items * itemsize))


def bare_matmul(P, Q, users, rows):
    """``P[block] @ Q.T`` for consecutive blocks of ``rows`` of ``users`` (the last block's
    scores are returned): the scoring that a full-ranking evaluation cannot avoid."""
    for lo in range(0, len(users), rows):
        S = P[users[lo:lo + rows]] @ Q.T
    return S


def default_threads():
    """1, 2, 4, ... up to and including all of Numba's threads."""
    most = max_threads()
    out = [1]
    while out[-1] * 2 < most:
        out.append(out[-1] * 2)
    return out + ([most] if most > 1 else [])


def check_threads(threads):
    """The thread counts to measure: None (:func:`default_threads`), an int or a list."""
    if threads is None:
        return default_threads()
    if isinstance(threads, numbers.Integral) and not isinstance(threads, bool):
        threads = [threads]
    most, out = max_threads(), []
    for t in threads:
        t = check_positive_int(t, "threads")
        if t > most:
            raise ValueError(f"threads: {t} is more than the {most} thread(s) Numba runs on "
                             f"this machine (NUMBA_NUM_THREADS); pass counts from 1 to {most}")
        if t not in out:
            out.append(t)
    if not out:
        raise ValueError("threads is empty; pass thread counts such as [1, 2] (or None)")
    return out


def _settings(quick, users, items, interactions, eval_users, repeats):
    """The run's sizes: the explicit ones, else those of ``QUICK`` or ``FULL``."""
    base = QUICK if check_bool(quick, "quick") else FULL
    given = dict(users=users, items=items, interactions=interactions, eval_users=eval_users,
                 repeats=repeats)
    out = {k: base[k] if v is None else check_positive_int(v, k) for k, v in given.items()}
    if out["items"] < 2:
        raise ValueError(f"items must be >= 2, got {out['items']}")
    if out["interactions"] < 1000:
        raise ValueError(f"interactions must be >= 1000 (the mini-batch row needs batches of "
                         f"512), got {out['interactions']}")
    if out["interactions"] > out["users"] * out["items"] // 4:
        raise ValueError(f"interactions ({out['interactions']}) must be at most a quarter of "
                         f"users x items ({out['users']} x {out['items']}); pass more users "
                         f"or items, or fewer interactions")
    return out


def _model(name, optimizer, batch_size, threads, epochs, factors, dtype, seed):
    params = dict(factors=factors, learning_rate=0.05, reg=0.0, optimizer=optimizer,
                  epochs=epochs, n_threads=threads, random_state=seed, dtype=dtype,
                  batch_size=batch_size, show_progress=False)
    return APR(eps=0.5, reg_adv=1.0, **params) if name == "APR" else BPR(**params)


def _rows(threads, minibatch=True):
    """``(model, optimizer, batch size, threads)`` of every training row, in order."""
    return [(m, o, b, t) for t in threads for m, o, b in TRAINING if b == 1 or minibatch]


def _warm_up(rows, factors, dtype, seed, eval_threads=()):
    """Compile (or load from Numba's cache) the kernels of ``rows`` and of the evaluation
    at ``eval_threads``, on a small set."""
    X, T = synthetic_split(300, 200, 6000, seed)
    for m, o, b, t in rows:
        _model(m, o, b, t, 1, factors, np.dtype(dtype).type, seed).fit(X)
    rng = np.random.default_rng(seed)
    P, Q = (rng.normal(0, 0.1, (n, factors)).astype(dtype) for n in X.shape)
    for t in eval_threads:
        evaluate((P, Q), X, T, k=[TOP_K], protocol="holdout", n_threads=t)


def _time_training(X, row, repeats, factors, dtype, seed):
    """One fit of ``repeats + 1`` epochs; the dict of a ``train`` row."""
    name, optimizer, batch_size, threads = row
    model = _model(name, optimizer, batch_size, threads, repeats + 1, factors, dtype, seed)
    stamps = []
    t0 = time.perf_counter()
    model.fit(X, callback=lambda epoch, stats: stamps.append(time.perf_counter()))
    seconds = [h["seconds"] for h in model.history_]
    epochs = Stats(seconds[1:])
    return {"model": name, "optimizer": optimizer, "batch_size": batch_size,
            "threads": threads, "epochs": epochs.n,
            "triples_per_s": epochs.per(X.nnz).summary(), "epoch_s": epochs.summary(),
            "setup_s": (stamps[0] - t0) - seconds[0]}


def _time_evaluation(X, T, users, P, Q, threads, repeats):
    """``repeats + 1`` rounds of evaluate and the bare matmul; an ``evaluate`` row."""
    rows = default_block_rows(Q.shape[0], P.itemsize)
    ev, mm = Stats(), Stats()
    for r in range(repeats + 1):
        with threadpool_limits(limits=threads, user_api="blas"):
            e = time_call(evaluate, (P, Q), X, T, k=[TOP_K], users=users, protocol="holdout",
                          n_threads=threads)[0]
            m = time_call(bare_matmul, P, Q, users, rows)[0]
        if r:                         # the first round warms the caches
            ev.add(e)
            mm.add(m)
    gflop = 2.0 * len(users) * Q.shape[0] * Q.shape[1] / 1e9
    return {"threads": threads, "users": len(users), "k": TOP_K,
            "top_k_users_per_s": ev.per(len(users)).summary(),
            "matmul_users_per_s": mm.per(len(users)).summary(),
            "top_k_gflop_per_s": ev.per(gflop).summary(),
            "matmul_gflop_per_s": mm.per(gflop).summary(), "ratio": ev.median / mm.median}


def _say(progress, t0, message):
    if progress:
        print(f"[{time.perf_counter() - t0:6.1f} s] {message}", file=sys.stderr, flush=True)


def run_benchmark(quick=False, threads=None, users=None, items=None, interactions=None,
                  eval_users=None, factors=64, repeats=None, dtype="float32", random_state=0,
                  progress=False):
    """Measure training and evaluation throughput on this machine.

    Parameters
    ----------
    quick : bool
        Smaller defaults (:data:`QUICK` instead of :data:`FULL`) and no mini-batch
        row: under a minute on 2 idle cores, compiling the kernels from a cold cache
        included (about 35 s of it; later runs load them from Numba's cache).
    threads : None, int or list of int
        Thread counts, each at most Numba's threads (default :func:`default_threads`).
    users, items, interactions : int, optional
        Size of the synthetic set (:func:`synthetic_split`); interactions at least 1000
        and at most a quarter of ``users * items``. Default: from ``quick``.
    eval_users : int, optional
        Users in the evaluation sample (all users with test items if fewer).
    factors : int
        Embedding width.
    repeats : int, optional
        Timed epochs per training row and timed rounds per evaluation row.
    dtype : "float32" or "float64"
        Floating-point type of the factors.
    random_state : int
        Seed of the data, the models and the evaluation sample and factors.
    progress : bool
        Print what is being measured to stderr.

    Returns
    -------
    dict
        The keys listed in the module docstring (and in ``docs/usage.md``).
    """
    t0 = time.perf_counter()
    size = _settings(quick, users, items, interactions, eval_users, repeats)
    threads = check_threads(threads)
    factors = check_positive_int(factors, "factors")
    dtype = check_dtype(dtype)
    seed = check_positive_int(random_state, "random_state", 0)
    _say(progress, t0, "compiling the kernels (the first run after an install takes longest)")
    rows = _rows(threads, minibatch=not quick)
    warmup_s = time_call(_warm_up, rows, factors, dtype, seed, threads)[0]
    X, T = synthetic_split(size["users"], size["items"], size["interactions"], seed)
    out = {"aprnb_version": __version__, "machine": None,
           "data": {"users": X.shape[0], "items": X.shape[1], "interactions": int(X.nnz),
                    "test_interactions": int(T.nnz), "factors": factors,
                    "dtype": np.dtype(dtype).name},
           "settings": {"quick": bool(quick), "repeats": size["repeats"], "threads": threads,
                        "seed": seed},
           "train": [], "evaluate": []}
    for row in rows:
        _say(progress, t0, "training {} ({}, batch {}) at {} thread(s)".format(*row))
        out["train"].append(_time_training(X, row, size["repeats"], factors, dtype, seed))
    rng = np.random.default_rng(seed)
    has_test = np.flatnonzero(np.diff(T.indptr) > 0)
    sample = np.sort(rng.choice(has_test, size=min(size["eval_users"], len(has_test)),
                                replace=False))
    P, Q = (rng.normal(0, 0.1, (n, factors)).astype(dtype) for n in X.shape)
    for t in threads:
        _say(progress, t0, f"evaluating {len(sample)} users at {t} thread(s)")
        out["evaluate"].append(_time_evaluation(X, T, sample, P, Q, t, size["repeats"]))
    out["machine"] = _machine.describe()      # after the parallel kernels ran
    out.update(warmup_s=warmup_s, seconds=time.perf_counter() - t0)
    return out


def _ranged(s, scale=1.0, digits=2):
    """``"median [min-max]"`` of a ``{"median", "min", "max"}`` dict, times ``scale``."""
    return (f"{s['median'] * scale:.{digits}f} "
            f"[{s['min'] * scale:.{digits}f}-{s['max'] * scale:.{digits}f}]")


def format_report(result):
    """The text ``aprnb bench`` prints: the machine, then a training and an evaluation table."""
    m, d = result["machine"], result["data"]
    lines = [f"aprnb {result['aprnb_version']} on {m['cpu']}: {m['cores']} cores, "
             f"{m['numba_threads']} Numba threads ({m['numba_threading_layer']}), "
             f"numba {m['numba']}, numpy {m['numpy']}, Python {m['python']}, {m['platform']}",
             f"BLAS: {m['blas']}",
             f"synthetic data: {d['users']} users x {d['items']} items, {d['interactions']} "
             f"training interactions, {d['factors']} factors, {d['dtype']}; medians "
             f"[min-max] of {result['settings']['repeats']} repeats", "",
             f"{'training':<22}{'threads':>8}{'M triples/s':>20}{'ms per epoch':>24}"
             f"{'fit setup ms':>14}"]
    for r in result["train"]:
        name = f"{r['model']} {r['optimizer']}" + (f" batch {r['batch_size']}"
                                                   if r["batch_size"] > 1 else "")
        lines.append(f"{name:<22}{r['threads']:>8}{_ranged(r['triples_per_s'], 1e-6):>20}"
                     f"{_ranged(r['epoch_s'], 1e3, 1):>24}{1e3 * r['setup_s']:>14.0f}")
    lines += ["", f"{'evaluation, top ' + str(TOP_K):<22}{'threads':>8}{'users':>8}"
              f"{'evaluate users/s':>26}{'GFLOP/s':>9}{'matmul users/s':>26}{'GFLOP/s':>9}"
              f"{'ratio':>8}"]
    for r in result["evaluate"]:
        lines.append(f"{'evaluate vs matmul':<22}{r['threads']:>8}{r['users']:>8}"
                     f"{_ranged(r['top_k_users_per_s'], digits=0):>26}"
                     f"{r['top_k_gflop_per_s']['median']:>9.1f}"
                     f"{_ranged(r['matmul_users_per_s'], digits=0):>26}"
                     f"{r['matmul_gflop_per_s']['median']:>9.1f}{r['ratio']:>8.2f}")
    lines += ["", f"ratio: evaluation time / bare matmul time (medians). Compiling the "
              f"kernels took {result['warmup_s']:.1f} s; the whole run {result['seconds']:.1f} s."]
    return "\n".join(lines)
