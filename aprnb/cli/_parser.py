"""The argparse definition of every command and option (standard library only).

Each sub-command stores its name in ``command``; :func:`aprnb.cli.main` looks the
command up in :data:`aprnb.cli._commands.COMMANDS` once argparse has run.
"""
import argparse

from .. import __version__
from ._output import one_line


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line (exit code 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where it is None or a flag's False."""

    def _get_help_string(self, action):
        if action.default in (None, False, argparse.SUPPRESS) or action.required:
            return action.help
        return super()._get_help_string(action)


# ---------------------------------------------------------------------------------------
# option groups shared by several commands
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


def _add_backend(p):
    p.add_argument("--backend", default="local", choices=["local", "ray"],
                   help="local: this process's threads; ray: tasks on a Ray cluster "
                        "(pip install 'aprnb[ray]'; the cluster of RAY_ADDRESS or of "
                        "'ray start' on this machine, else a new one here; --threads is "
                        "then per task, default 1), same results")


def _add_check(p):
    p.add_argument("--no-split-check", action="store_true",
                   help="skip the refusal to score a model on data other than its own "
                        "training matrix, or on test interactions it trained on (for "
                        "deliberate use only)")


# ---------------------------------------------------------------------------------------
# one function per command; ``add(name, help)`` makes its sub-parser
# ---------------------------------------------------------------------------------------
def _add_demo(add):
    p = add("demo", "train ItemPop, MF-BPR and AMF on a synthetic data set and print accuracy "
            "and robustness tables")
    p.add_argument("--quick", action="store_true",
                   help="smaller data and fewer epochs (a smoke test: too short to show the "
                        "paper's result)")
    _add_common(p, json_flag=False)


def _add_train(add):
    p = add("train", "train a model and write it to an .npz file (with its split and ids)")
    _add_data(p)
    p.add_argument("--model", default="bpr", choices=["bpr", "apr", "vat", "itempop", "cdae",
                                                      "irgan", "neumf"],
                   help="bpr: MF-BPR; apr: AMF (adversarial training); vat: vulnerability-"
                        "aware adversarial training; itempop: popularity; cdae, irgan, neumf: "
                        "the APR paper's other systems (their own parameters with --set; of "
                        "the options below they take --epochs, --threads, --seed, --dtype)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="any other parameter of the model class, e.g. --set hidden=100 --set "
                        "'layers=(64, 32, 16, 8)'; VALUE is read as a Python literal (else as "
                        "a string); repeat for several")
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
                   help="1: per-triple updates; >1: mini-batches with summed gradients "
                        "(the official code's semantics; Hogwild over batches on several "
                        "threads)")
    p.add_argument("--eps", type=float, default=0.5, help="apr, vat: perturbation size")
    p.add_argument("--reg-adv", type=float, default=1.0,
                   help="apr, vat: adversarial weight")
    p.add_argument("--vul-lambda", type=float, default=2.0,
                   help="vat: the largest per-user factor of eps (average users get half)")
    p.add_argument("--noise", default="adversarial", choices=["adversarial", "random"],
                   help="apr: adversarial perturbation or random noise of the same size")
    p.add_argument("--bpr-epochs", type=int, default=0,
                   help="apr, vat: plain BPR epochs before the adversarial epochs")
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


def _add_evaluate(add):
    p = add("evaluate", "evaluate a saved model on the test set of its split")
    p.add_argument("--model", required=True, help="a model file written by train")
    _add_data(p)
    p.add_argument("--k", type=int, nargs="+",
                   help="cut-offs (default: 10 under the sampled protocol, else 20 100)")
    p.add_argument("--beyond-accuracy", action="store_true",
                   help="also coverage, gini, arp, aplt and novelty of the top-K lists "
                        "(full-ranking protocols)")
    _add_backend(p)
    _add_check(p)
    _add_common(p)


def _add_robustness(add):
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
    _add_backend(p)
    _add_check(p)
    _add_common(p)


def _add_recommend(add):
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


def _add_reproduce(add):
    p = add("reproduce", "the APR paper's accuracy and robustness tables and figures on real "
            "data (writes markdown, JSON and PNG)")
    p.add_argument("--data", nargs="+", required=True,
                   help="data folders (e.g. ../shared/data/lastfm ../shared/data/gowalla)")
    p.add_argument("--out", default="results", help="output folder")
    p.add_argument("--quick", action="store_true", help="fewer epochs (a smoke test)")
    p.add_argument("--seeds", type=int, default=5,
                   help="training seeds per trained model (seed, seed+1, ...); tables give "
                        "mean ± sd and paired statistics")
    p.add_argument("--jobs", type=int, default=1,
                   help="worker processes that run the seeds, and the systems' validation "
                        "candidates, in parallel (each with "
                        "--threads threads, default the cores divided among the workers)")
    p.add_argument("--protocols", default="loo,holdout",
                   help="comma-separated subset of loo,holdout")
    p.add_argument("--random-noise-seeds", type=int, default=None,
                   help="train the random-noise ablation (about 20x slower per epoch than "
                        "APR) for only the first N seeds; 0 leaves it out (default: all)")
    p.add_argument("--robustness-seeds", type=int, default=None,
                   help="perturb the models (robustness tables, eps figure) for only the "
                        "first N seeds; 0 leaves them out (default: all)")
    p.add_argument("--systems", default="all",
                   help="the paper's systems beyond MF that join leave-one-out: 'all' "
                        "(default), 'none', or a comma-separated list of names (e.g. "
                        "CDAE,NeuMF)")
    _add_common(p, json_flag=False)


def _thread_counts(text):
    """``--threads 1,2`` -> [1, 2] (the range is checked by the benchmark)."""
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated thread counts such as "
                                         f"1,2, got {text!r}") from None


def _add_bench(add):
    p = add("bench", "training and evaluation throughput on this machine, on synthetic data "
            "(no repository or data files needed)")
    p.add_argument("--quick", action="store_true",
                   help="smaller data, fewer repeats, no mini-batch row: under a minute on 2 "
                        "cores, compiling the kernels on a first run included")
    p.add_argument("--threads", type=_thread_counts, default=None,
                   help="comma-separated thread counts (default: 1, 2, 4, ... up to all of "
                        "Numba's threads)")
    p.add_argument("--users", type=int, help="users of the synthetic set (default 30000; "
                   "10000 with --quick)")
    p.add_argument("--items", type=int, help="items (default 40000; 10000 with --quick)")
    p.add_argument("--interactions", type=int, help="interactions, about (default 800000; "
                   "200000 with --quick)")
    p.add_argument("--eval-users", type=int, help="users in the evaluation sample (default "
                   "5000; 2000 with --quick)")
    p.add_argument("--repeats", type=int, help="timed epochs per training row and rounds per "
                   "evaluation row (default 5; 3 with --quick)")
    p.add_argument("--factors", type=int, default=64, help="embedding width")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                   help="floating-point type of the factors")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--json", nargs="?", const="-", metavar="PATH",
                   help="write the results as one JSON object to PATH (the table is still "
                        "printed); without PATH, or with -, print only the JSON")


def build_parser():
    """The ``aprnb`` argument parser; a parsed command's name is in ``command``."""
    ap = _Parser(prog="aprnb", formatter_class=_Formatter,
                 description="Fast CPU BPR and APR (adversarial personalized ranking) for "
                             "matrix factorization.")
    ap.add_argument("--version", action="version", version=f"aprnb {__version__}",
                    help="print the version and exit")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    def add(name, helptext):
        return sub.add_parser(name, help=helptext, description=helptext,
                              formatter_class=_Formatter)

    for add_command in (_add_demo, _add_train, _add_evaluate, _add_robustness,
                        _add_recommend, _add_reproduce, _add_bench):
        add_command(add)
    return ap
