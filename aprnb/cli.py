"""Command line: ``aprnb demo | train | evaluate | robustness | reproduce``."""
import argparse
import os
import sys
import time

import numpy as np


def _load_data(path, fmt="auto", split="given", seed=0):
    """Return (name, train, test, protocol-hint) for a data folder or prefix."""
    from . import data as D
    if fmt == "auto":
        if os.path.isfile(os.path.join(path, "train.txt")):
            fmt = "lightgcn"
        elif os.path.isfile(os.path.join(path, "train.tsv")):
            fmt = "lastfm"
        elif os.path.isfile(path + ".train.rating"):
            fmt = "ncf"
        elif os.path.isfile(path):
            fmt = "delimited"
        else:
            raise ValueError(f"{path}: cannot tell the format (expected a folder with train.txt "
                             f"or train.tsv, an NCF prefix with .train.rating, or a delimited "
                             f"file); pass --format")
    if fmt == "lightgcn":
        ds = D.load_lightgcn(path)
    elif fmt == "lastfm":
        ds = D.load_lastfm(path)
    elif fmt == "ncf":
        ds = D.load_ncf(path)
    elif fmt == "delimited":
        ds = D.load_delimited(path)
    else:
        raise ValueError(f"unknown --format {fmt!r}")
    if split == "given":
        if ds.test is None:
            raise ValueError(f"{path} has no test file; use --split loo or --split holdout")
        return ds.name, ds.train, ds.test
    full = D.merge(ds.train, ds.test) if ds.test is not None else ds.train
    if split == "loo":
        src = ds.interactions if (ds.test is None and ds.interactions is not None) else full
        tr, te = D.leave_one_out(src, random_state=seed)
    elif split == "holdout":
        tr, te = D.holdout_split(full, 0.2, random_state=seed)
    else:
        raise ValueError(f"unknown --split {split!r}")
    return ds.name, tr, te


def _protocol(a):
    """--protocol, where "auto" means leave-one-out for --split loo and holdout otherwise."""
    return a.protocol if a.protocol != "auto" else ("loo" if a.split == "loo" else "holdout")


def _model_from_args(a):
    from . import APR, BPR, ItemPop
    dtype = {"float32": np.float32, "float64": np.float64}[a.dtype]
    common = dict(factors=a.factors, learning_rate=a.lr, reg=a.reg, epochs=a.epochs,
                  optimizer=a.optimizer, init_std=a.init_std, n_threads=a.threads,
                  random_state=a.seed, dtype=dtype, show_progress=not a.quiet,
                  batch_size=a.batch_size)
    if a.model == "bpr":
        return BPR(**common)
    if a.model == "apr":
        return APR(eps=a.eps, reg_adv=a.reg_adv, noise=a.noise, bpr_epochs=a.bpr_epochs,
                   **common)
    return ItemPop()


def _print_metrics(res):
    print("  ".join(f"{k}={v:.4f}" for k, v in res.items() if k != "n_users")
          + f"  (users={res['n_users']})")


def _check_out(path):
    """Fail before training, not after, on an unusable output path."""
    from .io import _check_path
    path = _check_path(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"--out {path}: folder {folder} does not exist; create it first")
    return path


def cmd_train(a):
    from . import evaluate, load
    from ._validation import check_ks
    _check_out(a.out)
    check_ks(a.k, "--k")
    name, tr, te = _load_data(a.data, a.format, a.split, a.seed)
    model = _model_from_args(a)
    model._validate_params() if hasattr(model, "_validate_params") else None
    init = load(a.init) if a.init else None
    t0 = time.perf_counter()
    model.fit(tr, init=init) if init is not None else model.fit(tr)
    print(f"trained {type(model).__name__} on {name} ({tr.shape[0]} users, {tr.shape[1]} items, "
          f"{tr.nnz} interactions) in {time.perf_counter() - t0:.1f} s")
    model.save(a.out)
    print(f"saved {a.out}")
    if te is not None and te.nnz:
        proto = _protocol(a)
        _print_metrics(evaluate(model, tr, te, k=a.k, protocol=proto, n_threads=a.threads))
    return 0


def _model_and_data(a):
    """The saved model and the (name, train, test) split the options describe."""
    from . import load
    model = load(a.model)
    return (model,) + _load_data(a.data, a.format, a.split, a.seed)


def cmd_evaluate(a):
    from . import evaluate
    model, name, tr, te = _model_and_data(a)
    proto = _protocol(a)
    _print_metrics(evaluate(model, tr, te, k=a.k, protocol=proto, n_threads=a.threads))
    return 0


def cmd_robustness(a):
    from . import robustness
    model, name, tr, te = _model_and_data(a)
    proto = _protocol(a)
    rep = robustness(model, tr, te, eps=a.eps, kinds=a.kinds, protocol=proto, k=a.k,
                     random_state=a.seed, steps=a.steps, n_threads=a.threads)
    print(f"{type(model).__name__} on {name}, protocol {proto}")
    print(rep)
    return 0


def cmd_demo(a):
    from .demo import run_demo
    run_demo(quick=a.quick, n_threads=a.threads, seed=a.seed)
    return 0


def cmd_reproduce(a):
    from .reproduce import reproduce
    reproduce(a.data, out=a.out, quick=a.quick, n_threads=a.threads, seed=a.seed)
    return 0


def _add_data(p, default_split="given"):
    p.add_argument("--data", required=True, help="data folder (LightGCN train.txt/test.txt or "
                   "Last.fm train.tsv/test.tsv), NCF prefix, or a delimited file")
    p.add_argument("--format", default="auto",
                   choices=["auto", "lightgcn", "lastfm", "ncf", "delimited"])
    p.add_argument("--split", default=default_split, choices=["given", "loo", "holdout"],
                   help="given: use the files' test set; loo/holdout: merge and re-split "
                        "(seeded)")
    p.add_argument("--protocol", default="auto", choices=["auto", "holdout", "loo"])


def _add_common(p):
    p.add_argument("--threads", type=int, default=None, help="Numba threads (default: all)")
    p.add_argument("--seed", type=int, default=0)


def build_parser():
    from . import __version__
    ap = argparse.ArgumentParser(prog="aprnb", description="Fast CPU BPR and APR (adversarial "
                                 "personalized ranking) for matrix factorization.")
    ap.add_argument("--version", action="version", version=f"aprnb {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("demo", help="train ItemPop, MF-BPR and AMF on a synthetic data set "
                       "and print accuracy and robustness tables")
    p.add_argument("--quick", action="store_true", help="smaller data and fewer epochs")
    _add_common(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train", help="train a model and write it to an .npz file")
    _add_data(p)
    p.add_argument("--model", default="bpr", choices=["bpr", "apr", "itempop"])
    p.add_argument("--factors", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--reg", type=float, default=0.0)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--optimizer", default="sgd", choices=["sgd", "adagrad"])
    p.add_argument("--init-std", type=float, default=0.01)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--eps", type=float, default=0.5)
    p.add_argument("--reg-adv", type=float, default=1.0)
    p.add_argument("--noise", default="adversarial", choices=["adversarial", "random"])
    p.add_argument("--bpr-epochs", type=int, default=0,
                   help="APR only: plain BPR epochs before the APR epochs")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--init", help="warm-start from a saved model (.npz)")
    p.add_argument("--k", type=int, nargs="+", default=[20, 100])
    p.add_argument("--out", required=True, help="output model file (.npz)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a saved model")
    p.add_argument("--model", required=True)
    _add_data(p)
    p.add_argument("--k", type=int, nargs="+", default=[20, 100])
    _add_common(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("robustness", help="accuracy of a saved model under adversarial and "
                       "random perturbations of its embeddings")
    p.add_argument("--model", required=True)
    _add_data(p, default_split="loo")
    p.add_argument("--eps", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    p.add_argument("--kinds", nargs="+", default=["adversarial", "random"],
                   choices=["adversarial", "random", "pgd"])
    p.add_argument("--steps", type=int, default=10, help="pgd steps")
    p.add_argument("--k", type=int, default=100)
    _add_common(p)
    p.set_defaults(func=cmd_robustness)

    p = sub.add_parser("reproduce", help="the APR paper's accuracy and robustness tables and "
                       "figures on real data (writes markdown, JSON and PNG)")
    p.add_argument("--data", nargs="+", required=True,
                   help="data folders (e.g. ../shared/data/lastfm ../shared/data/gowalla)")
    p.add_argument("--out", default="results", help="output folder")
    p.add_argument("--quick", action="store_true", help="fewer epochs (a smoke test)")
    _add_common(p)
    p.set_defaults(func=cmd_reproduce)
    return ap


def main(argv=None):
    ap = build_parser()
    a = ap.parse_args(argv)
    if not getattr(a, "command", None):
        ap.print_help()
        return 0
    try:
        return a.func(a)
    except (ValueError, TypeError, FloatingPointError, OSError) as e:
        # FloatingPointError covers aprnb.DivergenceError; OSError disk/permission problems.
        print(f"aprnb {a.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
