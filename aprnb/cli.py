"""Command line: ``aprnb demo | train | evaluate | robustness | recommend | reproduce``.

Only the standard library is imported before argparse has run, so that ``aprnb
--help`` answers at once; each command imports what it needs. Data is opened with
:func:`aprnb.data.open_dataset`. A saved model records the split it was trained
on, and ``evaluate``, ``robustness``, ``recommend`` and ``train --init`` reuse
that split (and, without ``--data``, the recorded data files) unless told
otherwise.

Exit codes: 0 success; 2 a usage error (bad option, bad input data, a split
that contradicts the model); 1 a failure while running (missing or unreadable
file, divergence, out of memory); 130 interrupted. Every error is one line on
stderr.
"""
import argparse
import json
import math
import os
import sys
import time
import warnings

from . import __version__


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line (exit code 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where it is None or a flag's False."""

    def _get_help_string(self, action):
        if action.default in (None, False, argparse.SUPPRESS) or action.required:
            return action.help
        return super()._get_help_string(action)


# ---------------------------------------------------------------------------------------
# data and models
# ---------------------------------------------------------------------------------------
def _header(value):
    return {"auto": "auto", "yes": True, "no": False}[value]


def _open(a, model=None):
    """The Dataset that the data options describe.

    The split (and its seed) comes from ``--split``/``--split-seed`` when given,
    else from the split ``model`` records, else "given"/0. Without ``--data`` and
    ``--train``, the data files the model records are opened.
    """
    from .data import open_dataset
    spec = dict(((getattr(model, "provenance_", None) or {}).get("split")) or {})
    if a.data is not None and a.train is not None:
        raise ValueError("pass either --data or --train/--test, not both")
    if a.train is None and (a.test or a.negatives):
        raise ValueError("--test and --negatives go with --train (a delimited training "
                         "file); for a folder or NCF prefix use --data alone")
    if a.data is None and a.train is None:
        if not spec:
            raise ValueError("pass --data PATH (or --train PATH --test PATH)" + (
                "; this model does not record the data it was trained on" if model else ""))
        kw = {k: spec[k] for k in ("path", "format", "sep", "header", "test", "negatives",
                                   "one_based", "min_value") if k in spec}
    else:
        kw = dict(path=a.data if a.data is not None else a.train,
                  format=a.format if a.train is None else "delimited", sep=a.sep,
                  header=_header(a.header), test=a.test, negatives=a.negatives,
                  min_value=a.min_value)
        if a.train is not None and a.test is None and a.split is None and not spec:
            raise ValueError("--train needs --test PATH, or --split loo/holdout to split it")
    kw["split"] = a.split or spec.get("split", "given")
    if a.split_seed is not None and kw["split"] == "given":
        raise ValueError("--split-seed seeds a loo or holdout split, but the split is 'given'; "
                         "pass --split loo or --split holdout too")
    kw["seed"] = a.split_seed if a.split_seed is not None else spec.get("seed", 0)
    if "test_fraction" in spec:
        kw["test_fraction"] = spec["test_fraction"]
    return open_dataset(**kw)


def _protocol(a, ds):
    """--protocol, where "auto" is "sampled" when the data has negatives, "loo" for a
    leave-one-out split and "holdout" otherwise."""
    if a.protocol != "auto":
        return a.protocol
    if ds.negatives is not None:
        return "sampled"
    return "loo" if ds.split.get("split") == "loo" else "holdout"


def _ks(a, protocol, default):
    """--k, or its protocol-dependent default (10 under the sampled protocol, where a
    user has only ~100 candidates)."""
    if a.k is not None:
        return a.k
    return [10] if protocol == "sampled" else default


def _negatives(ds, protocol):
    return ds.negatives if protocol == "sampled" else None


def _model_from_args(a):
    import numpy as np

    from . import APR, BPR, ItemPop
    dtype = {"float32": np.float32, "float64": np.float64}[a.dtype]
    common = dict(factors=a.factors, learning_rate=a.lr, reg=a.reg, epochs=a.epochs,
                  optimizer=a.optimizer, init_std=a.init_std, n_threads=a.threads,
                  random_state=a.seed, dtype=dtype, show_progress=not (a.quiet or a.json),
                  batch_size=a.batch_size)
    if a.model == "bpr":
        return BPR(**common)
    if a.model == "apr":
        return APR(eps=a.eps, reg_adv=a.reg_adv, noise=a.noise, bpr_epochs=a.bpr_epochs,
                   **common)
    return ItemPop()


def _load_model(path):
    from . import load
    return load(path)


# ---------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------
def _clean(x):
    """JSON-ready: NaN and inf become null, numpy scalars and arrays Python objects."""
    if hasattr(x, "tolist"):
        x = x.tolist()
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def _emit_json(obj):
    print(json.dumps(_clean(obj), allow_nan=False))


def _metrics_line(res):
    return ("  ".join(f"{k}={v:.4f}" for k, v in res.items() if k != "n_users")
            + f"  (users={res['n_users']})")


def _describe(ds):
    return {"name": ds.name, "n_users": ds.n_users, "n_items": ds.n_items,
            "train": int(ds.train.nnz), "test": int(ds.test.nnz), "split": ds.split}


# ---------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------
def _check_out(path):
    """Fail before training, not after, on an unusable output path."""
    from .io import _check_path
    path = _check_path(path, name="--out")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"--out {path}: folder {folder} does not exist; create it "
                                f"first")
    return path


def cmd_train(a):
    from . import evaluate
    from ._validation import check_k_bound, check_ks
    _check_out(a.out)
    if a.k is not None:
        check_ks(a.k, "--k")
    init = _load_model(a.init) if a.init else None
    ds = _open(a, init)
    for k in a.k or ():
        check_k_bound(k, ds.n_items, "--k")
    model = _model_from_args(a)
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
           "data": _describe(ds)}
    if not a.json:
        print(f"trained {type(model).__name__} on {ds.name} ({ds.n_users} users, "
              f"{ds.n_items} items, {ds.train.nnz} interactions) in {seconds:.1f} s; "
              f"saved {a.out}")
    if ds.test.nnz:
        proto = _protocol(a, ds)
        res = evaluate(model, ds.train, ds.test, k=_ks(a, proto, [20, 100]), protocol=proto,
                       negatives=_negatives(ds, proto), n_threads=a.threads)
        out.update(protocol=proto, n_users=res.pop("n_users"), metrics=res)
        if not a.json:
            print(f"test ({proto}): " + _metrics_line(dict(res, n_users=out["n_users"])))
    if a.json:
        _emit_json(out)
    return 0


def cmd_evaluate(a):
    from . import evaluate
    model = _load_model(a.model)
    ds = _open(a, model)
    proto = _protocol(a, ds)
    res = evaluate(model, ds.train, ds.test, k=_ks(a, proto, [20, 100]), protocol=proto,
                   negatives=_negatives(ds, proto), n_threads=a.threads,
                   check_split=not a.no_split_check)
    if a.json:
        n = res.pop("n_users")
        _emit_json({"model": a.model, "protocol": proto, "n_users": n, "metrics": res,
                    "data": _describe(ds)})
    else:
        print(f"{type(model).__name__} on {ds.name}, protocol {proto}: {_metrics_line(res)}")
    return 0


def cmd_robustness(a):
    from . import robustness
    model = _load_model(a.model)
    ds = _open(a, model)
    proto = _protocol(a, ds)
    ks = _ks(a, proto, [100])
    rep = robustness(model, ds.train, ds.test, eps=a.eps, kinds=a.kinds, protocol=proto,
                     k=ks, random_state=a.seed, steps=a.steps, n_threads=a.threads,
                     negatives=_negatives(ds, proto), check_split=not a.no_split_check)
    if a.json:
        clean, rows = rep[0], []
        for r in rep[1:]:
            rows.append({"kind": r["kind"], "eps": r["eps"],
                         "metrics": {m: r[m] for m in rep.metrics},
                         "change": {m: r[m + " change"] for m in rep.metrics}})
        _emit_json({"model": a.model, "protocol": proto, "k": max(ks),
                    "clean": {m: clean[m] for m in rep.metrics}, "rows": rows,
                    "data": _describe(ds)})
    else:
        print(f"{type(model).__name__} on {ds.name}, protocol {proto}")
        print(rep)
    return 0


def cmd_recommend(a):
    model = _load_model(a.model)
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
    for u, its, scs in zip(_clean(users), items.tolist(), scores.tolist()):
        keep = [(i, s) for i, s in zip(its, scs) if math.isfinite(s)]
        rows.append({"user": u, "items": [i for i, _ in keep], "scores": [s for _, s in keep]})
    if a.json:
        _emit_json({"model": a.model, "k": a.k, "ids": "raw" if raw else "index",
                    "excluded_seen": not a.include_seen, "recommendations": rows})
    else:
        for r in rows:
            print(f"{r['user']}: " + " ".join(f"{i}({s:.3f})" for i, s in
                                              zip(r["items"], r["scores"])))
    return 0


def cmd_demo(a):
    from .demo import run_demo
    run_demo(quick=a.quick, n_threads=a.threads, seed=a.seed)
    return 0


def cmd_reproduce(a):
    from .study.reproduce import reproduce
    reproduce(a.data, out=a.out, quick=a.quick, n_threads=a.threads, seed=a.seed)
    return 0


# ---------------------------------------------------------------------------------------
# parser
# ---------------------------------------------------------------------------------------
def _add_data(p):
    g = p.add_argument_group("data (default for a saved model: the data and split it records)")
    g.add_argument("--data", help="a data folder (LightGCN train.txt/test.txt, or Last.fm "
                   "train.tsv/test.tsv), an NCF prefix (PREFIX.train.rating, .test.rating, "
                   "optional .test.negative) or a delimited file")
    g.add_argument("--train", help="a delimited training file (CSV/TSV: user, item[, value]"
                   "[, timestamp]); use with --test")
    g.add_argument("--test", help="a delimited test file, same form and ids as --train")
    g.add_argument("--negatives", help="sampled-protocol negatives for --train/--test data: "
                   "'(user,item)<TAB>j1<TAB>j2...' or 'user,\"[j1, j2, ...]\"', raw ids")
    g.add_argument("--format", default="auto",
                   choices=["auto", "lightgcn", "lastfm", "ncf", "delimited"],
                   help="format of --data")
    g.add_argument("--sep", default="auto", help="field separator of delimited files "
                   "(auto: tab, comma, semicolon or whitespace)")
    g.add_argument("--header", default="auto", choices=["auto", "yes", "no"],
                   help="whether delimited files start with a header line (auto: detected)")
    g.add_argument("--min-value", type=float, help="delimited files: keep rows whose value "
                   "is at least this (default: a value of 0 is no interaction, a negative "
                   "value an error)")
    g.add_argument("--split", choices=["given", "loo", "holdout"], help="given: the data's "
                   "own test set; loo/holdout: merge and re-split (seeded). Default: the "
                   "split recorded in the model, else given")
    g.add_argument("--split-seed", type=int, help="seed of a loo/holdout split. Default: "
                   "the model's recorded seed, else 0")
    g.add_argument("--protocol", default="auto", choices=["auto", "holdout", "loo", "sampled"],
                   help="auto: sampled when the data has negatives, loo for a loo split, "
                        "holdout otherwise")


def _add_common(p, json_flag=True):
    p.add_argument("--threads", type=int, default=None,
                   help="threads (default: all of Numba's threads)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    if json_flag:
        p.add_argument("--json", action="store_true",
                       help="print one JSON object instead of text")


def _add_check(p):
    p.add_argument("--no-split-check", action="store_true",
                   help="skip the refusal to score a model on data other than its own "
                        "training matrix, or on test interactions it trained on (for "
                        "deliberate use only)")


def build_parser():
    ap = _Parser(prog="aprnb", formatter_class=_Formatter,
                 description="Fast CPU BPR and APR (adversarial personalized ranking) for "
                             "matrix factorization.")
    ap.add_argument("--version", action="version", version=f"aprnb {__version__}",
                    help="print the version and exit")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    def add(name, helptext):
        return sub.add_parser(name, help=helptext, description=helptext,
                              formatter_class=_Formatter)

    p = add("demo", "train ItemPop, MF-BPR and AMF on a synthetic data set and print accuracy "
            "and robustness tables")
    p.add_argument("--quick", action="store_true",
                   help="smaller data and fewer epochs (a smoke test: too short to show the "
                        "paper's result)")
    _add_common(p, json_flag=False)
    p.set_defaults(func=cmd_demo)

    p = add("train", "train a model and write it to an .npz file (with its split and ids)")
    _add_data(p)
    p.add_argument("--model", default="bpr", choices=["bpr", "apr", "itempop"],
                   help="bpr: MF-BPR; apr: AMF (adversarial training); itempop: popularity")
    p.add_argument("--factors", type=int, default=64, help="embedding width")
    p.add_argument("--lr", type=float, default=0.05, help="learning rate")
    p.add_argument("--reg", type=float, default=0.0, help="L2 regularisation")
    p.add_argument("--epochs", type=int, default=100,
                   help="epochs (for apr: APR epochs after --bpr-epochs)")
    p.add_argument("--optimizer", default="adagrad", choices=["adagrad", "sgd"],
                   help="per-triple Adagrad (the paper's optimizer) or constant-rate SGD")
    p.add_argument("--init-std", type=float, default=0.01,
                   help="standard deviation of the Gaussian initialisation")
    p.add_argument("--batch-size", type=int, default=1,
                   help="1: per-triple updates; >1: serial mini-batches with summed gradients")
    p.add_argument("--eps", type=float, default=0.5, help="apr: perturbation size")
    p.add_argument("--reg-adv", type=float, default=1.0, help="apr: adversarial weight")
    p.add_argument("--noise", default="adversarial", choices=["adversarial", "random"],
                   help="apr: adversarial perturbation or random noise of the same size")
    p.add_argument("--bpr-epochs", type=int, default=0,
                   help="apr: plain BPR epochs before the APR epochs")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                   help="floating-point type of the factors")
    p.add_argument("--init", help="warm-start from a saved model (.npz); its recorded split "
                   "is reused unless --split is given")
    p.add_argument("--k", type=int, nargs="+",
                   help="cut-offs of the test metrics printed after training (default: 10 "
                        "under the sampled protocol, else 20 100)")
    p.add_argument("--out", required=True, help="output model file (.npz)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_common(p)
    p.set_defaults(func=cmd_train)

    p = add("evaluate", "evaluate a saved model on the test set of its split")
    p.add_argument("--model", required=True, help="a model file written by train")
    _add_data(p)
    p.add_argument("--k", type=int, nargs="+",
                   help="cut-offs (default: 10 under the sampled protocol, else 20 100)")
    _add_check(p)
    _add_common(p)
    p.set_defaults(func=cmd_evaluate)

    p = add("robustness", "accuracy of a saved model under adversarial and random "
            "perturbations of its embeddings")
    p.add_argument("--model", required=True, help="a model file written by train")
    _add_data(p)
    p.add_argument("--eps", type=float, nargs="+", default=[0.5, 1.0, 2.0],
                   help="perturbation sizes (L2 norm per embedding row)")
    p.add_argument("--kinds", nargs="+", default=["adversarial", "random"],
                   choices=["adversarial", "random", "pgd"], help="kinds of perturbation")
    p.add_argument("--steps", type=int, default=10, help="pgd steps")
    p.add_argument("--k", type=int, nargs="+",
                   help="cut-off of the reported metrics (default: 10 under the sampled "
                        "protocol, else 100)")
    _add_check(p)
    _add_common(p)
    p.set_defaults(func=cmd_robustness)

    p = add("recommend", "top-k items per user from a saved model, never items the user "
            "trained on (unless --include-seen)")
    p.add_argument("--model", required=True, help="a model file written by train")
    p.add_argument("--users", nargs="+", required=True,
                   help="users: raw ids as in the data files when the model knows them, "
                        "else indices")
    p.add_argument("--k", type=int, default=10, help="items per user")
    p.add_argument("--include-seen", action="store_true",
                   help="also recommend items the user interacted with in training")
    p.add_argument("--index", action="store_true",
                   help="--users are indices and items are printed as indices, even when "
                        "the model knows raw ids")
    p.add_argument("--threads", type=int, default=None,
                   help="threads (default: all of Numba's threads)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=cmd_recommend)

    p = add("reproduce", "the APR paper's accuracy and robustness tables and figures on real "
            "data (writes markdown, JSON and PNG)")
    p.add_argument("--data", nargs="+", required=True,
                   help="data folders (e.g. ../shared/data/lastfm ../shared/data/gowalla)")
    p.add_argument("--out", default="results", help="output folder")
    p.add_argument("--quick", action="store_true", help="fewer epochs (a smoke test)")
    _add_common(p, json_flag=False)
    p.set_defaults(func=cmd_reproduce)
    return ap


def _one_line(e):
    return " ".join(str(e).split()) or type(e).__name__


def _warn_one_line(message, category, filename, lineno, file=None, line=None):
    print(f"aprnb: warning: {_one_line(message)}", file=sys.stderr)


def main(argv=None):
    ap = build_parser()
    a = ap.parse_args(argv)
    if not getattr(a, "command", None):
        ap.print_help()
        return 0
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warn_one_line
            return a.func(a)
    except (ValueError, TypeError) as e:
        print(f"aprnb {a.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except (OSError, FloatingPointError) as e:
        # FloatingPointError covers aprnb.DivergenceError; OSError missing files, disk and
        # permission problems.
        print(f"aprnb {a.command}: error: {_one_line(e)}", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"aprnb {a.command}: error: out of memory; use smaller data, fewer factors or "
              f"float32", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
