"""The scorer protocol: a model whose score is not a dot product is ranked by the same engine.

A test model scores by negative squared distance, ``-|p_u - q_i|^2``. With factors
on a half-integer grid every score is exact, and ranking by it is ranking by the
dot products of the augmented factors ``[2p, 1]`` and ``[q, -|q|^2]`` (the
user's own ``-|p_u|^2`` shifts a whole row), which the brute-force references of
:mod:`aprnb.reference` rank. So each protocol, ``top_k``, ``recommend`` and
``score`` of the distance model must equal the references exactly, ties included.
"""
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aprnb import BPR, evaluate
from aprnb.models.callbacks import Validation
from aprnb.reference import naive_holdout, naive_loo, naive_sampled, naive_top_k
from test_evaluation import assert_same_metrics, problems


class DistanceScorer:
    """Scores ``-|p_u - q_i|^2`` (the protocol of :mod:`aprnb.evaluation._scorer`)."""

    def __init__(self, P, Q):
        self.P, self.Q = P, Q
        self.n_users, self.n_items = P.shape[0], Q.shape[0]
        self.dtype = P.dtype

    def rows(self, users):
        return self.P[users]

    def tile(self, rows, items, out):
        Q = self.Q[items]
        out[...] = -((rows[:, None, :] - Q[None, :, :]) ** 2).sum(axis=2)

    def pairs(self, users, items):
        return -((self.P[users] - self.Q[items]) ** 2).sum(axis=1)

    def subset(self, users):
        return DistanceScorer(self.P[users], self.Q)


class Distance(BPR):
    """A model ranked by distance (its factors set by hand)."""

    def _scorer(self):
        return DistanceScorer(self.user_factors_, self.item_factors_)


def distance_model(P, Q):
    model = Distance()
    model.user_factors_, model.item_factors_ = P, Q
    return model


def augmented(P, Q):
    """Factors whose dot products rank as the distance does."""
    return (np.hstack([2 * P, np.ones((len(P), 1))]),
            np.hstack([Q, -np.einsum("ij,ij->i", Q, Q)[:, None]]))


@pytest.mark.parametrize("protocol, naive", [("holdout", naive_holdout), ("loo", naive_loo)])
@settings(max_examples=60)
@given(data=st.data(), exclude=st.booleans())
def test_full_ranking_of_a_distance_model_equals_brute_force(protocol, naive, data, exclude):
    P, Q, train, test, ks, users = data.draw(problems(loo=protocol == "loo"))
    got = evaluate(distance_model(P, Q), train, test, k=ks, protocol=protocol, users=users,
                   exclude_train=exclude)
    assert_same_metrics(got, naive(*augmented(P, Q), train, test, ks, users, exclude))


@settings(max_examples=60)
@given(case=problems(loo=True), data=st.data())
def test_sampled_of_a_distance_model_equals_brute_force(case, data):
    P, Q, train, test, ks, users = case
    n_neg = data.draw(st.integers(1, 6))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    negatives = rng.integers(-1, train.shape[1], size=(train.shape[0], n_neg))
    got = evaluate(distance_model(P, Q), train, test, k=ks, protocol="sampled", users=users,
                   negatives=negatives)
    assert_same_metrics(got, naive_sampled(*augmented(P, Q), test, negatives, ks, users))


@settings(max_examples=40)
@given(case=problems(), data=st.data())
def test_recommend_and_score_of_a_distance_model(case, data):
    P, Q, train, test, ks, users = case
    model = distance_model(P, Q)
    model.train_ = train
    k = data.draw(st.integers(1, train.shape[1]))
    users = np.arange(train.shape[0])
    items, scores = model.recommend(users, k=k, n_threads=data.draw(st.integers(1, 2)))
    want = naive_top_k(*augmented(P, Q), users, k, exclude=train)[0]
    np.testing.assert_array_equal(items, want)
    full = -((P[:, None, :] - Q[None, :, :]) ** 2).sum(axis=2)
    np.testing.assert_array_equal(model.score(users), full)
    cols = np.arange(train.shape[1])[::-1]
    np.testing.assert_array_equal(model.score(users, items=cols), full[:, cols])
    rows = items >= 0
    np.testing.assert_array_equal(scores[rows], np.take_along_axis(full, items, 1)[rows])


@pytest.mark.parametrize("protocol", ["holdout", "loo"])
def test_distance_model_independent_of_block_size_and_threads(synthetic, protocol):
    from aprnb.data import leave_one_out
    train, test = leave_one_out(synthetic, random_state=0)
    rng = np.random.default_rng(1)
    model = distance_model(rng.standard_normal((train.shape[0], 8)),
                           rng.standard_normal((train.shape[1], 8)))
    ref = evaluate(model, train, test, k=[5, 20], protocol=protocol, n_threads=1,
                   block_size=train.shape[0])
    got = evaluate(model, train, test, k=[5, 20], protocol=protocol, n_threads=2, block_size=7)
    assert json.dumps(got, sort_keys=True) == json.dumps(ref, sort_keys=True)


def test_validation_callback_scores_a_run_through_its_scorer(synthetic):
    """A training run that offers ``scorer()`` is validated through it, not through P, Q."""
    from aprnb.data import leave_one_out
    train, test = leave_one_out(synthetic, random_state=0)
    rng = np.random.default_rng(2)
    P = rng.standard_normal((train.shape[0], 4))
    Q = rng.standard_normal((train.shape[1], 4))

    class Run:
        total_epochs, threads = 1, 1

        def scorer(self):
            return DistanceScorer(P, Q)

    cb = Validation(test, k=10, protocol="loo")
    cb.on_fit_start(None, train, Run(), [cb])
    stats = {}
    cb.on_epoch_end(1, stats, Run())
    want = evaluate(distance_model(P, Q), train, test, k=[10], protocol="loo")["ndcg@10"]
    assert stats["ndcg@10"] == want
