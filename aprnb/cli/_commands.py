"""One function per command: ``cmd_<name>(args) -> exit code``, in :data:`COMMANDS`.

Imported by :func:`aprnb.cli.main` only after argparse has run (it pulls in NumPy,
Numba and the models).
"""
import math
import time

from .._validation import check_k_bound, check_ks
from ..benchmark import format_report, run_benchmark
from ..demo import run_demo
from ..evaluation import evaluate
from ..io import load
from ..perturbation import robustness
from ..study.reproduce import reproduce
from ._options import check_out, ks, model_from_args, negatives, open_data, protocol
from ._output import clean, describe, emit_json, metrics_line


def cmd_train(a):
    check_out(a.out)
    if a.k is not None:
        check_ks(a.k, "--k")
    init = load(a.init) if a.init else None
    ds = open_data(a, init)
    for k in a.k or ():
        check_k_bound(k, ds.n_items, "--k")
    model = model_from_args(a)
    if hasattr(model, "_validate_params"):
        model._validate_params()
    t0 = time.perf_counter()
    if init is not None:
        model.fit(ds, init=init)
    else:
        model.fit(ds)
    seconds = time.perf_counter() - t0
    model.save(a.out)
    out = {"model": type(model).__name__, "out": a.out, "seconds": seconds,
           "data": describe(ds)}
    if not a.json:
        print(f"trained {type(model).__name__} on {ds.name} ({ds.n_users} users, "
              f"{ds.n_items} items, {ds.train.nnz} interactions) in {seconds:.1f} s; "
              f"saved {a.out}")
    if ds.test.nnz:
        proto = protocol(a, ds)
        res = evaluate(model, ds.train, ds.test, k=ks(a, proto, [20, 100]), protocol=proto,
                       negatives=negatives(ds, proto), n_threads=a.threads)
        out.update(protocol=proto, n_users=res.pop("n_users"), metrics=res)
        if not a.json:
            print(f"test ({proto}): " + metrics_line(dict(res, n_users=out["n_users"])))
    if a.json:
        emit_json(out)
    return 0


def cmd_evaluate(a):
    model = load(a.model)
    ds = open_data(a, model)
    proto = protocol(a, ds)
    res = evaluate(model, ds.train, ds.test, k=ks(a, proto, [20, 100]), protocol=proto,
                   negatives=negatives(ds, proto), n_threads=a.threads,
                   check_split=not a.no_split_check, beyond_accuracy=a.beyond_accuracy,
                   backend=a.backend)
    if a.json:
        n = res.pop("n_users")
        emit_json({"model": a.model, "protocol": proto, "n_users": n, "metrics": res,
                   "data": describe(ds)})
    else:
        print(f"{type(model).__name__} on {ds.name}, protocol {proto}: {metrics_line(res)}")
    return 0


def cmd_robustness(a):
    model = load(a.model)
    ds = open_data(a, model)
    proto = protocol(a, ds)
    cutoffs = ks(a, proto, [100])
    rep = robustness(model, ds.train, ds.test, eps=a.eps, kinds=a.kinds, protocol=proto,
                     k=cutoffs, random_state=a.seed, steps=a.steps, n_threads=a.threads,
                     negatives=negatives(ds, proto), check_split=not a.no_split_check,
                     backend=a.backend)
    if a.json:
        rows = [{"kind": r["kind"], "eps": r["eps"],
                 "metrics": {m: r[m] for m in rep.metrics},
                 "change": {m: r[m + " change"] for m in rep.metrics}} for r in rep[1:]]
        emit_json({"model": a.model, "protocol": proto, "k": max(cutoffs),
                   "clean": {m: rep[0][m] for m in rep.metrics}, "rows": rows,
                   "data": describe(ds)})
    else:
        print(f"{type(model).__name__} on {ds.name}, protocol {proto}")
        print(rep)
    return 0


def cmd_recommend(a):
    model = load(a.model)
    if model.train_ is None and not a.include_seen:
        raise ValueError(f"{a.model} does not record its training interactions (it was "
                         f"written before aprnb's model format 2), so seen items cannot be "
                         f"left out; pass --include-seen, or retrain the model")
    raw = model.user_ids_ is not None and not a.index
    users = a.users
    if not raw:
        try:
            users = [int(u) for u in users]
        except ValueError:
            raise ValueError("--users must be integer indices (this model does not know raw "
                             "ids, or --index was given)") from None
    items, scores = model.recommend(users, k=a.k, exclude=None if a.include_seen else "train",
                                    n_threads=a.threads, raw_ids=raw)
    if raw:   # echo each user as the model spells its id (an int stays an int)
        users = model.user_ids_[model.user_index(users)]
    rows = []
    for u, its, scs in zip(clean(users), items.tolist(), scores.tolist()):
        keep = [(i, s) for i, s in zip(its, scs) if math.isfinite(s)]
        rows.append({"user": u, "items": [i for i, _ in keep], "scores": [s for _, s in keep]})
    if a.json:
        emit_json({"model": a.model, "k": a.k, "ids": "raw" if raw else "index",
                   "excluded_seen": not a.include_seen, "recommendations": rows})
    else:
        for r in rows:
            print(f"{r['user']}: " + " ".join(f"{i}({s:.3f})" for i, s in
                                              zip(r["items"], r["scores"])))
    return 0


def cmd_demo(a):
    run_demo(quick=a.quick, n_threads=a.threads, seed=a.seed)
    return 0


def cmd_reproduce(a):
    systems = (a.systems if a.systems == "all" else () if a.systems == "none"
               else tuple(s.strip() for s in a.systems.split(",") if s.strip()))
    reproduce(a.data, out=a.out, quick=a.quick, n_threads=a.threads, seed=a.seed,
              seeds=a.seeds, jobs=a.jobs, random_noise_seeds=a.random_noise_seeds,
              protocols=tuple(p.strip() for p in a.protocols.split(",") if p.strip()),
              systems=systems, robustness_seeds=a.robustness_seeds)
    return 0


def cmd_bench(a):
    if a.json not in (None, "-"):
        check_out(a.json, name="--json")
    res = run_benchmark(quick=a.quick, threads=a.threads, users=a.users, items=a.items,
                        interactions=a.interactions, eval_users=a.eval_users,
                        factors=a.factors, repeats=a.repeats, dtype=a.dtype,
                        random_state=a.seed, progress=True)
    if a.json == "-":
        emit_json(res)
        return 0
    print(format_report(res))
    if a.json is not None:
        emit_json(res, a.json)
        print(f"wrote {a.json}")
    return 0


#: command name (as parsed into ``args.command``) -> its function
COMMANDS = {"demo": cmd_demo, "train": cmd_train, "evaluate": cmd_evaluate,
            "robustness": cmd_robustness, "recommend": cmd_recommend,
            "reproduce": cmd_reproduce, "bench": cmd_bench}
