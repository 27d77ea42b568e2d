"""Robustness of a factor model to adversarial and random perturbations.

:func:`perturb` builds ``(P + Delta_P, Q + Delta_Q)`` without touching the model;
:func:`robustness` evaluates the clean and perturbed models side by side.

Kinds of noise (each row of ``Delta`` has L2 norm ``eps``):

* ``"adversarial"`` -- the paper's fast-gradient adversary: the gradient of the
  BPR loss summed over all training pairs (one seeded negative per pair),
  normalised per row with the official guard
  (``g / sqrt(max(|g|^2, 1e-12))``), times ``eps``. Rows with zero gradient
  get zero, rows with a gradient shorter than ``1e-6`` less than ``eps``.
* ``"random"`` -- Gaussian rows, normalised, times ``eps``.
* ``"pgd"`` -- beyond the paper: ``steps`` fast-gradient steps of size
  ``step_size`` (default ``2.5 * eps / steps``), each followed by a projection
  of every row onto its L2 ball of radius ``eps`` (so rows have norm <= eps).

A model that is not MF (NeuMF) brings its own adversary, built from the gradient
of its own training loss: a method ``model._perturbed(train, eps, kind, rng,
steps, step_size)`` returning a new fitted model of the same class with perturbed
embeddings. :func:`perturb` then returns that model, and :func:`robustness` scores
it.
"""
from functools import partial

import numpy as np

from ._validation import (check_choice, check_float, check_interactions, check_k_bound, check_ks,
                          check_positive_int, check_random_state)
from ._provenance import check_split as _check_split
from .evaluation import BACKENDS, check_protocol, evaluate, factors_of, unpack_data
from .kernels.attack import dataset_bpr_gradient, normalize_rows, project_rows
from .kernels._rng import seed_states
from .kernels.sampling import sample_negatives

KINDS = ("adversarial", "random", "pgd")


def _triples(train, rng):
    users = np.repeat(np.arange(train.shape[0], dtype=np.int64), np.diff(train.indptr))
    items = train.indices.astype(np.int64)
    state = seed_states(rng, 1)
    negs = sample_negatives(train.indptr.astype(np.int64), train.indices.astype(np.int64),
                            users, train.shape[1], state)
    return users, items, negs


def _gradient(P, Q, triples):
    GP = np.zeros(P.shape, dtype=np.float64)
    GQ = np.zeros(Q.shape, dtype=np.float64)
    loss = dataset_bpr_gradient(P.astype(np.float64), Q.astype(np.float64), *triples, GP, GQ)
    return GP, GQ, loss


def perturb(model, train, eps, kind="adversarial", random_state=None, steps=10,
            step_size=None):
    """Return perturbed factors ``(P + Delta_P, Q + Delta_Q)``; the model is untouched.

    Parameters
    ----------
    model : fitted model or (user_factors, item_factors)
    train : sparse matrix (n_users, n_items)
        Training interactions the adversary differentiates the BPR loss over.
    eps : float > 0
        Per-row L2 norm of the perturbation (an upper bound for ``"pgd"``).
    kind : {"adversarial", "random", "pgd"}
    random_state : None, int or Generator
        Seeds the sampled negatives (adversarial, pgd) or the Gaussian noise.
    steps, step_size : used by ``"pgd"`` only.

    Returns
    -------
    (ndarray, ndarray)
        New arrays in the model's dtype; for a model with an adversary of its own
        (``_perturbed``, see the module docstring), a new fitted model instead.
    """
    if _own_adversary(model):
        eps = check_float(eps, "eps", 0.0, low_inclusive=False)
        kind = check_choice(kind, "kind", KINDS)
        train = check_interactions(train, "train", shape=(model.n_users_, model.n_items_))
        return model._perturbed(train, eps, kind, check_random_state(random_state), steps,
                                step_size)
    P, Q = factors_of(model)
    eps = check_float(eps, "eps", 0.0, low_inclusive=False)
    kind = check_choice(kind, "kind", KINDS)
    train = check_interactions(train, "train", shape=(P.shape[0], Q.shape[0]))
    rng = check_random_state(random_state)
    if kind == "random":
        DP = rng.standard_normal(P.shape)
        DQ = rng.standard_normal(Q.shape)
        normalize_rows(DP, eps, DP)
        normalize_rows(DQ, eps, DQ)
        return (P + DP).astype(P.dtype), (Q + DQ).astype(Q.dtype)
    triples = _triples(train, rng)
    if kind == "adversarial":
        GP, GQ, _ = _gradient(P, Q, triples)
        normalize_rows(GP, eps, GP)
        normalize_rows(GQ, eps, GQ)
        return (P + GP).astype(P.dtype), (Q + GQ).astype(Q.dtype)
    steps = check_positive_int(steps, "steps")
    alpha = (2.5 * eps / steps if step_size is None
             else check_float(step_size, "step_size", 0.0, low_inclusive=False))
    DP = np.zeros(P.shape)
    DQ = np.zeros(Q.shape)
    for _ in range(steps):
        GP, GQ, _ = _gradient(P + DP, Q + DQ, triples)
        normalize_rows(GP, alpha, GP)
        normalize_rows(GQ, alpha, GQ)
        DP += GP
        DQ += GQ
        project_rows(DP, eps)
        project_rows(DQ, eps)
    return (P + DP).astype(P.dtype), (Q + DQ).astype(Q.dtype)


def _own_adversary(model):
    """True for a fitted model that perturbs itself (``_perturbed``; NeuMF).

    A model whose ranking tables are not its trained embeddings says why in
    ``_no_perturbation`` (CDAE, IRGAN), and is refused with that reason.
    """
    reason = getattr(model, "_no_perturbation", None)
    if reason:
        raise ValueError(f"perturb/robustness are not defined for {type(model).__name__}: "
                         f"{reason}. They apply to the MF models (BPR, APR, VAT, ...) and "
                         f"NeuMF")
    if not hasattr(model, "_perturbed"):
        return False
    model._check_fitted()
    return True


def bpr_loss_total(model, train, random_state=0):
    """Total BPR loss of the model over the training pairs (one seeded negative each)."""
    P, Q = factors_of(model)
    train = check_interactions(train, "train", shape=(P.shape[0], Q.shape[0]))
    return _gradient(P, Q, _triples(train, check_random_state(random_state)))[2]


class RobustnessReport(list):
    """Rows of a robustness study (list of dicts) that prints as a table."""

    def __init__(self, rows, metrics):
        super().__init__(rows)
        self.metrics = metrics

    def __str__(self):
        head = f"{'noise':<12}{'eps':>6}" + "".join(
            f"{m:>12}{'change':>9}" for m in self.metrics)
        lines = [head, "-" * len(head)]
        for r in self:
            cells = "".join(f"{r[m]:>12.4f}{r[m + ' change']:>+8.1%} " if r["kind"] != "clean"
                            else f"{r[m]:>12.4f}{'':>9}" for m in self.metrics)
            eps = "" if r["kind"] == "clean" else f"{r['eps']:g}"
            lines.append(f"{r['kind']:<12}{eps:>6}{cells}")
        return "\n".join(lines)


def robustness(model, train, test=None, eps=(0.5, 1.0, 2.0), kinds=("adversarial", "random"),
               protocol=None, k=100, random_state=0, steps=10, n_threads=None,
               negatives=None, check_split=True, backend="local"):
    """Clean vs perturbed accuracy for each ``eps`` and kind of noise.

    Parameters
    ----------
    model : fitted model or (user_factors, item_factors)
    train, test : sparse matrices (n_users, n_items), or a Dataset as ``train``
        The adversary differentiates the BPR loss over ``train``; ``test`` is scored.
    eps : float or sequence of float
    kinds : sequence drawn from {"adversarial", "random", "pgd"}
    protocol : {"loo", "holdout", "sampled"} or None
        None means "sampled" when ``negatives`` are given, else "loo". Negatives
        with another protocol raise ``ValueError``.
    k : int or list of int
        The metrics are reported at the largest cut-off.
    random_state, steps, n_threads
        Seed of the noise and of the adversary's negatives; PGD steps; threads.
    negatives : int array (n_users, n_neg), optional
        Sampled-protocol negatives (-1 = padding).
    check_split : bool
        As in :func:`aprnb.evaluate`: refuse a ``train`` that is not the model's
        training matrix, or a test interaction it trained on.
    backend : {"local", "ray"}
        Where every evaluation runs, as in :func:`aprnb.evaluate` (``"ray"``: tasks on
        a Ray cluster, same results); the perturbations are computed here.

    Returns
    -------
    RobustnessReport
        A list of dicts (``print`` it for a table): the clean row first, then one
        row per ``(kind, eps)`` holding each metric and its relative change
        ``(perturbed - clean) / clean``.
    """
    own = _own_adversary(model)
    clean_model = model if own else factors_of(model)
    shape = (model.n_users_, model.n_items_) if own else (clean_model[0].shape[0],
                                                          clean_model[1].shape[0])
    backend = check_choice(backend, "backend", BACKENDS)
    train, test, negatives = unpack_data(train, test, negatives, protocol)
    ks = [check_k_bound(kk, shape[1]) for kk in check_ks(k)]
    protocol = check_protocol(protocol, negatives, default="loo")
    if check_split:
        _check_split(model, check_interactions(train, "train", shape=shape),
                     check_interactions(test, "test", shape=shape, allow_empty=True),
                     "robustness")
    eps_list, kinds = _check_grid(eps, kinds)
    metrics = ([f"hr@{ks[-1]}", f"ndcg@{ks[-1]}"] if protocol != "holdout"
               else [f"recall@{ks[-1]}", f"ndcg@{ks[-1]}"])
    # the split is checked above, once; the perturbed models are scored as they are
    score = partial(evaluate, train=train, test=test, k=ks, protocol=protocol,
                    n_threads=n_threads, negatives=negatives, backend=backend,
                    check_split=False)
    clean = score(clean_model)
    rows = [dict(kind="clean", eps=0.0, **{m: clean[m] for m in metrics})]
    for kind in kinds:
        for e in eps_list:
            res = score(perturb(clean_model, train, e, kind=kind, random_state=random_state,
                                steps=steps))
            row = dict(kind=kind, eps=e)
            for m in metrics:
                row[m] = res[m]
                row[m + " change"] = (res[m] - clean[m]) / clean[m] if clean[m] else np.nan
            rows.append(row)
    return RobustnessReport(rows, metrics)


def _check_grid(eps, kinds):
    """``eps`` (a number or a sequence) and ``kinds`` as checked, non-empty sequences."""
    if isinstance(eps, (str, bytes)) or eps is None:
        raise TypeError(f"eps must be a positive number or a sequence of them, got {eps!r}")
    eps_list = [check_float(e, "eps", 0.0, low_inclusive=False)
                for e in (eps if np.ndim(eps) else [eps])]
    if isinstance(kinds, str):
        kinds = (kinds,)
    try:
        kinds = tuple(kinds)
    except TypeError:
        raise TypeError(f"kinds must be a sequence drawn from {KINDS}, got {kinds!r}") from None
    if not eps_list or not kinds:
        raise ValueError("eps and kinds must not be empty; e.g. eps=(0.5, 1.0), "
                         "kinds=('adversarial', 'random')")
    for kind in kinds:
        check_choice(kind, "kinds", KINDS)
    return eps_list, kinds
