"""Slow, obvious NumPy references for the ranking kernels and metrics.

Every function here is written for clarity, not speed: one user at a time, full
sorts, Python loops. The fast engine in :mod:`aprnb.evaluation` is compared
against these definitions in ``tests/test_evaluation.py``. (Until issue 13 this
module was ``tests/naive.py``.)

Conventions (from ``docs/apr.md``):

* Candidates of a user are all items minus the user's training items (when
  training items are excluded).
* Top-K tie rule: a higher score ranks first; equal scores rank by the lower
  item index. A *stable* sort on the negated scores of the candidates, listed in
  ascending item order, gives exactly that.
* Leave-one-out rank: the number of candidates other than the held-out item whose
  score is ``>=`` the held-out item's score (ties count against it).

Scores are computed in float64 from the given factors unless ``dtype`` says
otherwise; tests that need exact agreement use factors on a coarse grid (e.g.
multiples of 0.5), whose dot products are exact in float32 and float64 alike.
"""
import numpy as np
import scipy.sparse as sp


# -- small helpers ------------------------------------------------------------------------
def as_csr(M):
    """A sorted, deduplicated, binary CSR copy of ``M`` (sparse or dense)."""
    M = sp.csr_matrix(M, copy=True)
    M.sum_duplicates()
    M.eliminate_zeros()
    M.sort_indices()
    M.data[:] = 1
    return M


def items_of(M, u):
    """Sorted item indices of row ``u`` of a CSR matrix."""
    return np.sort(M.indices[M.indptr[u]:M.indptr[u + 1]])


def pairs(M):
    """The set of ``(user, item)`` pairs stored in ``M``."""
    C = sp.coo_matrix(M)
    C.eliminate_zeros()
    return set(zip(C.row.tolist(), C.col.tolist()))


def user_scores(P, Q, u, dtype=np.float64):
    """Scores ``p_u . q_i`` for every item, computed in ``dtype``."""
    return Q.astype(dtype) @ P[u].astype(dtype)


def candidates(n_items, exclude_row):
    """All items not in ``exclude_row``, in ascending order."""
    keep = np.ones(n_items, dtype=bool)
    keep[np.asarray(exclude_row, dtype=np.int64)] = False
    return np.flatnonzero(keep)


def ranked(scores, cand):
    """``cand`` (ascending item ids) ordered best first under the tie rule."""
    order = np.argsort(-scores[cand], kind="stable")
    return cand[order]


def _users_with_test(test, users):
    n_users = test.shape[0]
    users = np.arange(n_users) if users is None else np.asarray(users, dtype=np.int64)
    return [int(u) for u in users if test.indptr[u + 1] > test.indptr[u]]


def _mean(rows, names):
    if not rows:
        return {name: float("nan") for name in names}
    arr = np.asarray(rows, dtype=np.float64)
    return {name: float(arr[:, c].mean()) for c, name in enumerate(names)}


# -- top-K ----------------------------------------------------------------------------------
def naive_top_k(P, Q, users, k, exclude=None, dtype=np.float64):
    """Top-``k`` items per user with the tie rule; pad with item -1 and score -inf."""
    n_items = Q.shape[0]
    ex = as_csr(exclude) if exclude is not None else None
    items = np.full((len(users), k), -1, dtype=np.int64)
    scores = np.full((len(users), k), -np.inf, dtype=np.float64)
    for row, u in enumerate(users):
        s = user_scores(P, Q, u, dtype)
        cand = candidates(n_items, items_of(ex, u) if ex is not None else [])
        best = ranked(s, cand)[:k]
        items[row, :len(best)] = best
        scores[row, :len(best)] = s[best]
    return items, scores


# -- holdout (LightGCN/NGCF) -----------------------------------------------------------------
def naive_holdout(P, Q, train, test, ks, users=None, exclude_train=True, dtype=np.float64):
    """Recall/precision/NDCG/HR @ each K, averaged over users with test items.

    ``recall = hits/|T_u|``, ``precision = hits/K``, ``ndcg = DCG/IDCG`` with the
    ideal DCG over ``min(|T_u|, K)`` positions, ``hr = [hits > 0]``.
    """
    train, test = as_csr(train), as_csr(test)
    ks = sorted(set(int(k) for k in np.atleast_1d(ks)))
    n_items = Q.shape[0]
    names = [f"{m}@{k}" for k in ks for m in ("recall", "precision", "ndcg", "hr")]
    rows = []
    for u in _users_with_test(test, users):
        s = user_scores(P, Q, u, dtype)
        cand = candidates(n_items, items_of(train, u) if exclude_train else [])
        order = ranked(s, cand)
        t = set(items_of(test, u).tolist())
        row = []
        for k in ks:
            top = order[:k]
            rel = [1.0 if int(i) in t else 0.0 for i in top]
            hits = sum(rel)
            dcg = sum(r / np.log2(pos + 2.0) for pos, r in enumerate(rel))
            idcg = sum(1.0 / np.log2(pos + 2.0) for pos in range(min(len(t), k)))
            row += [hits / len(t), hits / k, dcg / idcg, 1.0 if hits > 0 else 0.0]
        rows.append(row)
    out = _mean(rows, names)
    out["n_users"] = len(rows)
    return out


# -- leave-one-out (APR paper) ----------------------------------------------------------------
def loo_rank(s, pos, cand):
    """Rank of item ``pos`` among ``cand`` (which may contain it); ties count against it.

    Returns ``(rank, n_candidates_other_than_pos)``.
    """
    others = cand[cand != pos]
    return int(np.sum(s[others] >= s[pos])), len(others)


def rank_metrics(rank, n_cand, ks):
    """``[hr@k, ndcg@k for each k] + [auc]`` from a 0-based rank.

    ``auc = 1 - rank / n_cand``; with no other candidate at all the positive is
    trivially first and the AUC is taken as 1 (the engine's convention).
    """
    row = []
    for k in ks:
        hit = rank < k
        row += [1.0 if hit else 0.0, 1.0 / np.log2(rank + 2.0) if hit else 0.0]
    row.append(1.0 - rank / n_cand if n_cand > 0 else 1.0)
    return row


def _rank_names(ks):
    return [f"{m}@{k}" for k in ks for m in ("hr", "ndcg")] + ["auc"]


def naive_loo(P, Q, train, test, ks, users=None, exclude_train=True, dtype=np.float64):
    """HR/NDCG @ each K and AUC of the single held-out item of each user."""
    train, test = as_csr(train), as_csr(test)
    ks = sorted(set(int(k) for k in np.atleast_1d(ks)))
    n_items = Q.shape[0]
    rows = []
    for u in _users_with_test(test, users):
        t = items_of(test, u)
        assert len(t) == 1, "leave-one-out needs exactly one test item per user"
        s = user_scores(P, Q, u, dtype)
        cand = candidates(n_items, items_of(train, u) if exclude_train else [])
        rank, n_cand = loo_rank(s, int(t[0]), cand)
        rows.append(rank_metrics(rank, n_cand, ks))
    out = _mean(rows, _rank_names(ks))
    out["n_users"] = len(rows)
    return out


def naive_sampled(P, Q, test, negatives, ks, users=None, dtype=np.float64):
    """Sampled protocol: rank the held-out item among the listed negatives (-1 = padding).

    Users without a test item or without any listed negative are skipped.
    """
    test = as_csr(test)
    ks = sorted(set(int(k) for k in np.atleast_1d(ks)))
    rows = []
    for u in _users_with_test(test, users):
        negs = np.asarray([j for j in negatives[u] if j >= 0], dtype=np.int64)
        if len(negs) == 0:
            continue
        pos = int(items_of(test, u)[0])
        s = user_scores(P, Q, u, dtype)
        rank = int(np.sum(s[negs] >= s[pos]))
        rows.append(rank_metrics(rank, len(negs), ks))
    out = _mean(rows, _rank_names(ks))
    out["n_users"] = len(rows)
    return out


# -- an independent blocked implementation for large data --------------------------------
def blocked_holdout(P, Q, train, test, k, users=None, block=1024):
    """Recall@k and NDCG@k by dense blocks: scores in the factors' dtype, training items
    set to ``-inf``, ``argpartition`` for the candidates, then an exact tie-rule sort.

    Written independently of the engine (NumPy only) for data sets where the
    per-user reference is too slow. Training items must not be test items.
    """
    train, test = as_csr(train), as_csr(test)
    n_users, n_items = train.shape
    users = np.arange(n_users) if users is None else np.asarray(users, dtype=np.int64)
    users = users[np.diff(test.indptr)[users] > 0]
    disc = 1.0 / np.log2(np.arange(k) + 2.0)
    idcg_cum = np.cumsum(disc)
    recall, ndcg = [], []
    kk = min(k, n_items)
    for lo in range(0, len(users), block):
        b = users[lo:lo + block]
        S = P[b] @ Q.T
        tr = train[b].tocoo()
        S[tr.row, tr.col] = -np.inf
        part = np.argpartition(-S, kk - 1, axis=1)[:, :kk]
        thr = np.take_along_axis(S, part, axis=1).min(axis=1)
        T = test[b]
        for r in range(len(b)):
            cand = np.flatnonzero(S[r] >= thr[r])           # every item tied at the cut
            cand = cand[np.lexsort((cand, -S[r, cand]))][:k]
            t = T.indices[T.indptr[r]:T.indptr[r + 1]]
            hit = np.isin(cand, t)
            nt = len(t)
            recall.append(hit.sum() / nt)
            ndcg.append((hit * disc[:len(cand)]).sum() / idcg_cum[min(nt, k) - 1])
    return {f"recall@{k}": float(np.mean(recall)), f"ndcg@{k}": float(np.mean(ndcg)),
            "n_users": len(recall)}
