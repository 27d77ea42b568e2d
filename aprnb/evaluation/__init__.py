"""Full-ranking top-K evaluation: one engine for every protocol and for ``recommend``.

Protocols of :func:`evaluate`:

* ``"holdout"`` (LightGCN/NGCF): ``recall@K = hits/|test_u|``,
  ``precision@K = hits/K``, ``ndcg@K`` with the ideal DCG over
  ``min(|test_u|, K)`` items, ``hr@K = [hits > 0]``.
* ``"loo"`` (APR paper): each user's single test item is ranked against
  every item the user has not trained on, ``rank = #{candidates with score
  >= its score}``; ``hr@K = [rank < K]``, ``ndcg@K = 1/log2(rank+2)``,
  ``auc = 1 - rank/#candidates``.
* ``"sampled"``: as ``"loo"`` but against the listed ``negatives`` only.

Every metric above is a mean over the evaluated users; ``per_user=True`` also
returns the values it is the mean of (``np.mean`` of each array is the mean,
bitwise) and the evaluated users in ascending order.

Beyond accuracy (``beyond_accuracy=True``, "holdout" and "loo"): measures of
what is recommended rather than whether it is hit. A user's list ``L_u`` at
cut-off K is the user's top K candidates, exactly as the accuracy metrics rank
them: by score, ties to the lower item index, training items left out when
``exclude_train`` (the "loo" test item is a candidate like any other); a user
with fewer than K candidates has a shorter list. ``pop_i`` is the item's number of
training interactions (column count of ``train``), ``n``/``m`` the numbers of
items/users (shape of ``train``).

* ``coverage@K``: ``|union of L_u| / n``, the share of the catalogue that some
  evaluated user is shown.
* ``gini@K``: with ``c_i`` the number of lists holding item i, for all n items
  (unrecommended ones count 0), sorted ascending: ``sum_i (2i - n - 1) c_(i) /
  (n sum_i c_i)``; 0 = every item shown equally often, near 1 = a few items shown
  to everyone.
* ``arp@K``: mean over users of ``mean_{i in L_u} pop_i``.
* ``aplt@K``: mean over users of the share of ``L_u`` in the long tail. The short
  head: walk the items from most to least popular until the walked items hold at
  least 20% of all training interactions; the popularity ``t`` of the last item
  walked is the threshold, and the head is every item with ``pop_i >= t`` (equally
  popular items are never split, whatever their ids). The long tail is the rest;
  with an empty ``train`` every item is in it.
* ``novelty@K``: mean over users of ``mean_{i in L_u} -log2(max(pop_i, 1) / m)``;
  an item without training interactions counts as popularity 1 (novelty
  ``log2 m``), so the value stays finite.

An empty list (no candidate) counts 0 for arp, aplt and novelty. Coverage and
Gini are global (no per-user values) and NaN, like the means, when no user is
evaluated. The lists are taken from the scores the engine computes anyway
(the tiled heaps of "holdout"; for "loo" one more top-K pass over the block's
scores, without scoring again); recommendation counts are summed per worker in
integers, so nothing depends on ``n_threads`` or ``block_size``.

:func:`evaluate` checks its arguments once and hands canonical matrices to the
private engine (:mod:`aprnb.evaluation._engine`), which scores users in blocks
with one BLAS call per tile and Numba kernels for the top-K and the metrics.
``backend="ray"`` runs that engine as Ray tasks over parts of the users
(:mod:`aprnb.evaluation._ray`), with the same results.
"""
import numpy as np
import scipy.sparse as sp

from .._provenance import check_split as _check_split
from .._provenance import overlap
from .._threads import check_n_threads, running_threads
from .._validation import (check_bool, check_choice, check_interactions, check_k_bound,
                           check_ks)
from ..data.dataset import Dataset
from . import _engine
from ._checks import (PROTOCOLS, check_beyond_accuracy, check_block_size, check_negatives,
                      check_overlap, check_protocol, check_users, factors_of,
                      metric_names)
from ._scorer import DotScorer, scorer_of

__all__ = ["evaluate", "top_k", "metric_names", "check_protocol", "factors_of", "scorer_of",
           "unpack_data", "PROTOCOLS", "BACKENDS"]

#: Where :func:`evaluate` runs: this process's threads, or tasks on a Ray cluster.
BACKENDS = ("local", "ray")


def unpack_data(train, test, negatives, protocol=None):
    """``(train, test, negatives)`` from a Dataset in place of ``train``, or as given.

    A Dataset's own negatives are used unless ``protocol`` asks for a full-ranking
    protocol ("holdout" or "loo") explicitly.
    """
    if isinstance(train, Dataset):
        if test is not None:
            raise TypeError("pass either a Dataset or (train, test) matrices, not both")
        if train.test is None:
            raise ValueError(f"{train!r} has no test set; open it with split='loo' or "
                             f"'holdout'")
        if negatives is None and protocol in (None, "sampled"):
            negatives = train.negatives
        return train.train, train.test, negatives
    if test is None:
        raise TypeError("test is missing: pass (train, test) matrices, or a Dataset")
    return train, test, negatives


def evaluate(model, train, test=None, k=(20,), protocol=None, users=None, negatives=None,
             n_threads=None, block_size=None, exclude_train=True, check_split=True,
             raw_ids=False, per_user=False, beyond_accuracy=False, backend="local"):
    """Evaluate a model under full ranking (or the sampled protocol).

    Parameters
    ----------
    model : fitted aprnb model or (user_factors, item_factors)
    train : sparse matrix (n_users, n_items), or a Dataset
        Training interactions; excluded from the candidates when ``exclude_train``.
        A :class:`~aprnb.data.Dataset` brings ``train``, ``test`` and ``negatives``.
    test : sparse matrix (n_users, n_items)
        Held-out interactions. Users without test items are skipped.
    k : int or list of int
        Cut-offs; all are computed in one pass.
    protocol : {"holdout", "loo", "sampled"}
        Defined in the module docstring. None (default) means "sampled" when
        ``negatives`` are given, else "holdout". Negatives with "holdout" or
        "loo" raise ``ValueError``.
    users : array of int, optional
        Evaluate only these users (raw user ids with ``raw_ids=True``), in any order.
    negatives : int array (n_users, n_neg), required for ``"sampled"`` (-1 = padding).
    n_threads : int, optional
        Worker threads (default and most: Numba's threads), each scoring whole blocks
        of users with one-thread BLAS and a serial kernel. Results do not depend on it.
        With ``backend="ray"``: the threads (and Ray CPUs) of each Ray task, default 1.
    block_size : int, optional
        Users per block (default: 1024 users scored in cache-sized tiles of items
        for ``"holdout"``; about 64 MB of scores per block for ``"loo"``).
    exclude_train : bool
        Exclude training items from the candidates (the standard full-ranking setup).
    check_split : bool
        For a fitted model that knows its training data (``provenance_``): refuse with
        ``ValueError`` when ``train`` is not the matrix it was trained on, or a test
        interaction is one it trained on. False skips the check (deliberate use only).
    raw_ids : bool
        ``users`` are raw user ids, mapped through the model's ``user_ids_``.
    per_user : bool
        Also return every evaluated user's values (``"users"``, ``"per_user"`` below).
    beyond_accuracy : bool
        Also compute ``coverage@K``, ``gini@K``, ``arp@K``, ``aplt@K`` and
        ``novelty@K`` of each user's top-K list (module docstring), for
        ``"holdout"`` and ``"loo"``; with ``"sampled"`` a ``ValueError``.
    backend : {"local", "ray"}
        ``"ray"`` scores parts of the users as tasks on a Ray cluster
        (``pip install 'aprnb[ray]'``) with the same engine; the results equal the local
        ones bit for bit (:mod:`aprnb.evaluation._ray`). It uses the Ray this process
        is connected to (``ray.init(address=...)`` first for a cluster), else calls
        ``ray.init()``: the cluster of ``RAY_ADDRESS`` or of ``ray start`` on this
        machine, else a new one on this machine's cores.

    Returns
    -------
    dict
        Metric names (``"recall@20"``, ``"hr@100"``, ``"auc"``, ``"novelty@20"``, ...)
        to means over the evaluated users (NaN without any), and ``"n_users"``. With
        ``per_user=True`` also ``"users"`` (evaluated user indices, int64, ascending)
        and ``"per_user"``: every metric but ``coverage@K``/``gini@K`` to a float64
        array aligned with ``"users"``, with ``np.mean(res["per_user"][m]) == res[m]``.
    """
    scorer = scorer_of(model)
    train, test, negatives = unpack_data(train, test, negatives, protocol)
    protocol = check_protocol(protocol, negatives)
    per_user = check_bool(per_user, "per_user")
    backend = check_choice(backend, "backend", BACKENDS)
    task_threads = 1 if n_threads is None else check_n_threads(n_threads)
    task, n_threads = _prepare(model, scorer.n_users, scorer.n_items, train, test, k, protocol,
                               users, negatives, n_threads, block_size, exclude_train,
                               check_split, raw_ids,
                               check_beyond_accuracy(beyond_accuracy, protocol))
    if backend == "ray":
        from . import _ray
        return _ray.run(task, scorer, task_threads, per_user)
    return task.run(scorer, n_threads, per_user)


def _prepare(model, n_users, n_items, train, test, k, protocol, users, negatives,
             n_threads, block_size, exclude_train, check_split, raw_ids, beyond_accuracy):
    """The remaining checks of :func:`evaluate`: ``(Ranking task, thread count)``."""
    shape = (n_users, n_items)
    ks = np.asarray([check_k_bound(kk, n_items) for kk in check_ks(k)], dtype=np.int64)
    exclude_train = check_bool(exclude_train, "exclude_train")
    check_bool(check_split, "check_split")
    train = check_interactions(train, "train", shape=shape, allow_empty=True)
    test = check_interactions(test, "test", shape=shape, allow_empty=True)
    shared = overlap(train, test)
    if check_split:
        _check_split(model, train, test, "evaluate", shared)
    if exclude_train and protocol != "sampled":     # sampled ranks against its negatives
        check_overlap(shared, test.nnz, stacklevel=4)   # the warning names the caller
    n_threads = running_threads(check_n_threads(n_threads))   # results do not depend on it
    if check_bool(raw_ids, "raw_ids") and users is not None:
        users = model.user_index(users)
    # ascending: the means (and the per-user arrays) do not depend on the order given
    users = np.sort(check_users(users, n_users, unique=True))
    if protocol == "sampled":
        negatives = check_negatives(negatives, shape)
    task = _engine.Ranking(train, test, protocol, ks, users, negatives, exclude_train,
                           check_block_size(block_size), beyond_accuracy)
    return task, n_threads


def top_k(P, Q, users, k, exclude=None, n_threads=None, block_size=None):
    """Top ``k`` items per user (best first) with the items of ``exclude`` left out.

    ``P``, ``Q``: factor tables (scores ``p_u . q_i``), or ``P`` a scorer
    (:mod:`aprnb.evaluation._scorer`) and ``Q`` None. Returns ``(items, scores)``
    arrays of shape ``(len(users), k)``; rows with fewer than ``k`` candidates are
    padded with item -1 and score -inf.
    """
    scorer = DotScorer(P, Q) if Q is not None else P
    shape = (scorer.n_users, scorer.n_items)
    users = check_users(users, shape[0])
    ex = (check_interactions(exclude, "exclude", shape=shape, allow_empty=True)
          if exclude is not None else sp.csr_matrix(shape, dtype=np.float32))
    return _engine.top_k(scorer, users, k, ex.indptr.astype(np.int64),
                         ex.indices.astype(np.int64), running_threads(check_n_threads(n_threads)),
                         check_block_size(block_size))
