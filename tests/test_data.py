"""Data layer: file loaders, splitters and the synthetic generator."""
import os
import re
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from aprnb.data import (Interactions, holdout_split, leave_one_out, load_delimited,
                        load_interactions, load_lightgcn, load_ncf, make_synthetic, merge,
                        open_dataset, validation_split)
from aprnb.reference import as_csr, items_of, pairs


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def error_at(path, line):
    """Regex for a ValueError message naming ``path`` and ``line``."""
    return re.escape(str(path)) + r".*line " + str(line) + r"\b"


def dense(M):
    return np.asarray(M.todense())


# -- LightGCN / NGCF format --------------------------------------------------------------------
@pytest.fixture
def lightgcn_folder(tmp_path):
    write(tmp_path / "train.txt", "0 1 2 3\n1 0 4\n2\n3 5 1\n\n")
    write(tmp_path / "test.txt", "0 4\n1 2\n2 5 0\n3 0\n")
    return tmp_path


def test_lightgcn_loads_users_items_and_empty_user(lightgcn_folder):
    ds = load_lightgcn(lightgcn_folder)
    assert ds.train.shape == ds.test.shape == (4, 6)
    assert ds.n_users == 4 and ds.n_items == 6
    assert items_of(ds.train, 0).tolist() == [1, 2, 3]
    assert items_of(ds.train, 1).tolist() == [0, 4]
    assert items_of(ds.train, 2).tolist() == []          # "2" alone: a user with no items
    assert items_of(ds.train, 3).tolist() == [1, 5]
    assert items_of(ds.test, 2).tolist() == [0, 5]
    assert ds.train.nnz == 7 and ds.test.nnz == 5
    assert set(np.unique(ds.train.data)) == {1.0}
    assert sp.isspmatrix_csr(ds.train) and sp.isspmatrix_csr(ds.test)


def test_lightgcn_user_only_in_test_and_trailing_empty_user(tmp_path):
    write(tmp_path / "train.txt", "0 0 1\n1 2\n4\n")
    write(tmp_path / "test.txt", "0 3\n2 1\n")
    ds = load_lightgcn(tmp_path)
    # user 4 has a line but no items: it still counts; user 3 never appears
    assert ds.train.shape == (5, 4)
    assert np.diff(ds.train.indptr).tolist() == [2, 1, 0, 0, 0]
    assert np.diff(ds.test.indptr).tolist() == [1, 0, 1, 0, 0]


@pytest.mark.parametrize("bad_line", ["1 2 x", "1 -2", "u 1", "1 2.5"])
def test_lightgcn_malformed_names_file_and_line(tmp_path, bad_line):
    write(tmp_path / "train.txt", "0 1 2\n\n" + bad_line + "\n2 3\n")
    write(tmp_path / "test.txt", "0 3\n")
    with pytest.raises(ValueError, match=error_at(tmp_path / "train.txt", 3)):
        load_lightgcn(tmp_path)


def test_lightgcn_malformed_test_file(tmp_path):
    write(tmp_path / "train.txt", "0 1 2\n")
    write(tmp_path / "test.txt", "0 3\n1 4 five\n")
    with pytest.raises(ValueError, match=error_at(tmp_path / "test.txt", 2)):
        load_lightgcn(tmp_path)


def test_lightgcn_missing_folder_or_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope does not exist"):
        load_lightgcn(tmp_path / "nope")
    write(tmp_path / "train.txt", "0 1\n")
    with pytest.raises(ValueError, match="not a directory"):
        load_lightgcn(tmp_path / "train.txt")
    with pytest.raises(FileNotFoundError, match="test.txt does not exist"):
        load_lightgcn(tmp_path)


# -- NCF / official APR files --------------------------------------------------------------------
def write_ncf(tmp_path, negative=True):
    prefix = tmp_path / "toy"
    write(tmp_path / "toy.train.rating",
          "0\t1\t5\t978300760\n0\t2\t3\t978300761\n1\t0\t4\t978300762\n"
          "2\t3\t1\t978300763\n2\t1\t2\t978300764\n")
    write(tmp_path / "toy.test.rating", "0\t3\t4\t978300770\n1\t2\t5\t978300771\n"
          "2\t0\t3\t978300772\n")
    if negative:
        write(tmp_path / "toy.test.negative",
              "(0,3)\t4\t0\t6\n(1,2)\t3\t5\n(2,0)\t4\t5\t2\n")
    return prefix


def test_ncf_train_test_and_negatives(tmp_path):
    ds = load_ncf(write_ncf(tmp_path))
    assert ds.n_users == 3
    assert ds.n_items == 7                      # item 6 appears only as a negative
    assert items_of(ds.train, 0).tolist() == [1, 2]
    assert items_of(ds.train, 2).tolist() == [1, 3]
    assert items_of(ds.test, 1).tolist() == [2]
    assert ds.negatives.shape == (3, 3)
    assert ds.negatives.tolist() == [[4, 0, 6], [3, 5, -1], [4, 5, 2]]
    assert np.issubdtype(ds.negatives.dtype, np.integer)


def test_ncf_without_negative_file(tmp_path):
    ds = load_ncf(write_ncf(tmp_path, negative=False))
    assert ds.negatives is None
    assert ds.train.shape == (3, 4)
    assert ds.train.nnz == 5 and ds.test.nnz == 3


def test_ncf_user_without_negatives_is_padded(tmp_path):
    prefix = write_ncf(tmp_path, negative=False)
    write(tmp_path / "toy.test.negative", "(0,3)\t4\t0\n(2,0)\t3\n")
    ds = load_ncf(prefix)
    assert ds.negatives.tolist() == [[4, 0], [-1, -1], [3, -1]]


@pytest.mark.parametrize("fname,content,line", [
    ("toy.train.rating", "0\t1\t5\t1\n0 2 3 4\n", 2),             # spaces, not tabs
    ("toy.train.rating", "0\t1\t5\t1\n\n1\tx\t3\t4\n", 3),        # item not an integer
    ("toy.test.rating", "0\t1\t5\t1\n-1\t2\t3\t4\n", 2),          # negative id
    ("toy.test.negative", "(0,3)\t4\n1,2\t3\n", 2),               # missing parentheses
    ("toy.test.negative", "(0,3)\t4\n(1,2)\t3\tx\n", 2),          # bad negative id
    ("toy.test.negative", "(0,3)\t4\n(1,a)\t3\n", 2),             # bad item in head
])
def test_ncf_malformed_names_file_and_line(tmp_path, fname, content, line):
    prefix = write_ncf(tmp_path)
    write(tmp_path / fname, content)
    with pytest.raises(ValueError, match=error_at(tmp_path / fname, line)):
        load_ncf(prefix)


def test_ncf_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="train.rating does not exist"):
        load_ncf(tmp_path / "nothing")


# -- generic delimited files ---------------------------------------------------------------------
def test_delimited_string_ids(tmp_path):
    p = write(tmp_path / "log.csv", "bob,song_b,3\nalice,song_a,1\nalice,song_c,2\n"
                                    "carol,song_a,5\n")
    ds = load_delimited(p)
    assert ds.user_ids.tolist() == ["alice", "bob", "carol"]
    assert ds.item_ids.tolist() == ["song_a", "song_b", "song_c"]
    assert dense(ds.train).tolist() == [[1, 0, 1], [0, 1, 0], [1, 0, 0]]
    assert ds.test is None


def test_delimited_integer_ids_sorted_numerically(tmp_path):
    p = write(tmp_path / "log.tsv", "10\t7\n9\t7\n100\t3\n")
    [log] = load_interactions(p)
    assert log.user_ids.tolist() == [9, 10, 100]            # numeric, not lexicographic
    assert log.item_ids.tolist() == [3, 7]
    assert log.users.tolist() == [1, 0, 2]
    assert log.items.tolist() == [1, 1, 0]
    assert log.values is None and log.timestamps is None


def test_delimited_one_based(tmp_path):
    p = write(tmp_path / "log.tsv", "1\t1\n2\t3\n3\t2\n")
    ds = load_delimited(p, one_based=True)
    assert dense(ds.train).tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 0]]
    assert ds.user_ids.tolist() == [1, 2, 3]


def test_delimited_zero_id_with_one_based_names_line(tmp_path):
    p = write(tmp_path / "log.tsv", "1\t1\n# comment\n2\t0\n")
    with pytest.raises(ValueError, match=error_at(p, 3)):
        load_delimited(p, one_based=True)


def test_delimited_header_scientific_notation_and_timestamps(tmp_path):
    p = write(tmp_path / "log.csv", "user,item,count,ts\n"
                                    "u1,i1,3.2466e+05,1600000000\n"
                                    "u2,i1,1.4641E+05,1600000100.5\n"
                                    "u1,i2,12,1.6e9\n")
    [log] = load_interactions(p, header=True)
    assert len(log) == 3
    np.testing.assert_array_equal(log.values, [324660.0, 146410.0, 12.0])
    np.testing.assert_array_equal(log.timestamps, [1600000000.0, 1600000100.5, 1.6e9])
    assert log.user_ids.tolist() == ["u1", "u2"]


def test_delimited_train_and_test_share_ids(tmp_path):
    tr = write(tmp_path / "train.tsv", "a\tx\nb\ty\n")
    te = write(tmp_path / "test.tsv", "a\tz\nc\tx\n")
    ds = load_delimited(tr, te)
    assert ds.train.shape == ds.test.shape == (3, 3)
    assert ds.user_ids.tolist() == ["a", "b", "c"]
    assert pairs(ds.train) == {(0, 0), (1, 1)}
    assert pairs(ds.test) == {(0, 2), (2, 0)}


def test_delimited_whitespace_and_duplicates(tmp_path):
    p = write(tmp_path / "log.txt", "1 2\n1 2\n2   3\n")
    ds = load_delimited(p, sep=None, one_based=False)
    assert ds.train.nnz == 2 and set(np.unique(ds.train.data)) == {1.0}


@pytest.mark.parametrize("content,line", [
    ("1,2\n3\n", 2),                         # one field
    ("1,2\n1,2,3,4,5\n", 2),                 # five fields
    ("# c\n1,2,3\n\n1,2,abc\n", 4),          # value not a number
    ("1,2,3\n1,2,nan\n", 2),                 # value not finite
    ("1,2,1,10\n1,3,1,yesterday\n", 2),      # timestamp not a number
    ("1,2\n,3\n", 2),                        # empty user id
])
def test_delimited_malformed_names_file_and_line(tmp_path, content, line):
    p = write(tmp_path / "bad.csv", content)
    with pytest.raises(ValueError, match=error_at(p, line)):
        load_delimited(p)


def test_delimited_error_in_second_file_names_that_file(tmp_path):
    tr = write(tmp_path / "train.tsv", "1\t1\n2\t2\n")
    te = write(tmp_path / "test.tsv", "1\t2\n2\tq\n")
    with pytest.raises(ValueError, match=error_at(te, 2)):
        load_delimited(tr, te, one_based=True)


def test_delimited_empty_or_missing_file(tmp_path):
    p = write(tmp_path / "empty.csv", "# only a comment\n\n")
    with pytest.raises(ValueError, match=re.escape(str(p))):
        load_delimited(p)
    with pytest.raises(FileNotFoundError, match="missing.csv does not exist"):
        load_delimited(tmp_path / "missing.csv")


# -- real data ------------------------------------------------------------------------------------
@pytest.mark.realdata
def test_real_lastfm_counts(lastfm):
    assert (lastfm.n_users, lastfm.n_items) == (1892, 4489)
    assert lastfm.train.nnz == 42135 and lastfm.test.nnz == 10533
    assert not pairs(lastfm.train) & pairs(lastfm.test)


@pytest.mark.realdata
def test_real_gowalla_counts(gowalla):
    assert (gowalla.n_users, gowalla.n_items) == (29858, 40981)
    assert gowalla.train.nnz == 810128 and gowalla.test.nnz == 217242
    assert gowalla.train.multiply(gowalla.test).nnz == 0
    assert np.all(np.diff(gowalla.train.indptr) > 0)
    assert np.all(np.diff(gowalla.test.indptr) > 0)


# -- splitters ------------------------------------------------------------------------------------
def random_matrix(seed, n_users=40, n_items=30, density=0.2):
    rng = np.random.default_rng(seed)
    A = (rng.random((n_users, n_items)) < density).astype(np.float32)
    return sp.csr_matrix(A)


def check_partition(M, train, test):
    """train and test are disjoint binary CSR matrices whose union is M."""
    assert train.shape == test.shape == M.shape
    assert sp.isspmatrix_csr(train) and sp.isspmatrix_csr(test)
    tr, te, full = pairs(train), pairs(test), pairs(M)
    assert not tr & te
    assert tr | te == full
    for X in (train, test):
        assert X.nnz == 0 or set(np.unique(X.data)) == {1.0}


def check_loo(M, train, test):
    check_partition(M, train, test)
    deg = np.diff(as_csr(M).indptr)
    n_test = np.diff(test.indptr)
    np.testing.assert_array_equal(n_test, (deg >= 2).astype(int))


def test_leave_one_out_basic():
    M = random_matrix(0)
    train, test = leave_one_out(M, random_state=0)
    check_loo(M, train, test)


def test_leave_one_out_user_with_single_or_no_interaction(tiny):
    M = tiny.tolil()
    M[1, :] = 0
    M[1, 4] = 1
    M = sp.csr_matrix(M)
    train, test = leave_one_out(M, random_state=3)
    check_loo(M, train, test)
    assert items_of(train, 1).tolist() == [4] and items_of(test, 1).tolist() == []
    assert test[3].nnz == 0 and train[3].nnz == 0


def test_leave_one_out_reproducible_and_seed_dependent():
    M = random_matrix(1, 200, 50)
    a = leave_one_out(M, random_state=7)
    b = leave_one_out(M, random_state=7)
    c = leave_one_out(M, random_state=8)
    assert pairs(a[1]) == pairs(b[1])
    assert pairs(a[1]) != pairs(c[1])
    g1 = leave_one_out(M, random_state=np.random.default_rng(5))
    g2 = leave_one_out(M, random_state=np.random.default_rng(5))
    assert pairs(g1[1]) == pairs(g2[1])


def test_leave_one_out_accepts_dense_and_interactions():
    M = random_matrix(2, 15, 12, 0.4)
    train, test = leave_one_out(M.toarray(), random_state=0)
    check_loo(M, train, test)
    C = M.tocoo()
    log = Interactions(users=C.row.astype(np.int64), items=C.col.astype(np.int64),
                       values=None, timestamps=None, user_ids=np.arange(15),
                       item_ids=np.arange(12))
    train, test = leave_one_out(log, random_state=0)
    check_loo(M, train, test)


def test_leave_one_out_latest_timestamp():
    # user 0: item 2 latest; user 1: item 0 seen at t=1 and again at t=9 (latest);
    # user 2: a single item (stays in train); user 3: two items at the same latest time.
    users = np.array([0, 0, 0, 1, 1, 1, 1, 2, 3, 3, 3])
    items = np.array([0, 1, 2, 0, 1, 2, 0, 3, 0, 1, 2])
    ts = np.array([5, 3, 8, 1, 4, 6, 9, 2, 7, 7, 1], dtype=np.float64)
    log = Interactions(users=users, items=items, values=None, timestamps=ts,
                       user_ids=np.arange(4), item_ids=np.arange(4))
    train, test = leave_one_out(log, random_state=0)
    check_loo(log.to_csr(), train, test)
    assert items_of(test, 0).tolist() == [2]
    assert items_of(test, 1).tolist() == [0]
    assert items_of(test, 2).tolist() == []
    assert items_of(test, 3).tolist() in ([0], [1])
    picks = {items_of(leave_one_out(log, random_state=s)[1], 3)[0] for s in range(30)}
    assert picks == {0, 1}                                     # ties broken at random
    again = leave_one_out(log, random_state=0)
    assert pairs(again[1]) == pairs(test)


def test_leave_one_out_latest_from_file(tmp_path):
    p = write(tmp_path / "log.csv", "u,i,r,t\nann,a,1,100\nann,b,1,300\nann,c,1,200\n"
                                    "ben,a,1,50\nben,c,1,20\n")
    ds = load_delimited(p, header=True)
    train, test = leave_one_out(ds.interactions, random_state=0)
    assert [ds.item_ids[i] for i in test.indices] == ["b", "a"]
    check_loo(ds.train, train, test)


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.5, 0.8])
def test_holdout_split_fraction(fraction):
    M = random_matrix(3, 300, 60, 0.15)
    train, test = holdout_split(M, test_fraction=fraction, random_state=0)
    check_partition(M, train, test)
    deg = np.diff(M.indptr)
    expected = np.clip(np.round(fraction * deg).astype(int), 0, np.maximum(deg - 1, 0))
    np.testing.assert_array_equal(np.diff(test.indptr), expected)
    assert np.all(np.diff(train.indptr)[deg > 0] >= 1)
    assert abs(test.nnz / M.nnz - fraction) < 0.05


def test_holdout_split_reproducible_and_seed_dependent():
    M = random_matrix(4, 100, 40, 0.3)
    a = holdout_split(M, 0.3, random_state=1)
    b = holdout_split(M, 0.3, random_state=1)
    c = holdout_split(M, 0.3, random_state=2)
    assert pairs(a[1]) == pairs(b[1]) and pairs(a[0]) == pairs(b[0])
    assert pairs(a[1]) != pairs(c[1])


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_holdout_split_rejects_bad_fraction(fraction):
    with pytest.raises(ValueError):
        holdout_split(random_matrix(0), test_fraction=fraction)


def test_validation_split():
    M = random_matrix(5, 80, 40, 0.25)
    train, test = holdout_split(M, 0.2, random_state=0)
    fit_part, val = validation_split(train, protocol="loo", random_state=0)
    check_loo(train, fit_part, val)
    assert not pairs(val) & pairs(test)
    fit_part, val = validation_split(train, protocol="holdout", test_fraction=0.25,
                                     random_state=0)
    check_partition(train, fit_part, val)
    deg = np.diff(train.indptr)
    expected = np.clip(np.round(0.25 * deg).astype(int), 0, np.maximum(deg - 1, 0))
    np.testing.assert_array_equal(np.diff(val.indptr), expected)
    a = validation_split(train, random_state=3)[1]
    b = validation_split(train, random_state=3)[1]
    assert pairs(a) == pairs(b)
    with pytest.raises(ValueError, match="protocol"):
        validation_split(train, protocol="kfold")


def test_merge_is_union():
    M = random_matrix(6)
    train, test = holdout_split(M, 0.3, random_state=0)
    U = merge(train, test)
    assert pairs(U) == pairs(M)
    assert set(np.unique(U.data)) == {1.0}
    assert pairs(merge(M, M)) == pairs(M)
    with pytest.raises(ValueError):
        merge(M, sp.csr_matrix((3, 3)))


@st.composite
def sparse_matrices(draw):
    n_users = draw(st.integers(1, 25))
    n_items = draw(st.integers(1, 25))
    density = draw(st.floats(0.0, 1.0))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    A = (rng.random((n_users, n_items)) < density).astype(np.float32)
    if not A.any():
        A[rng.integers(n_users), rng.integers(n_items)] = 1.0
    fmt = draw(st.sampled_from(["csr", "csc", "coo", "dense"]))
    return A if fmt == "dense" else sp.csr_matrix(A).asformat(fmt)


@settings(max_examples=60)
@given(M=sparse_matrices(), seed=st.integers(0, 2**31))
def test_property_leave_one_out(M, seed):
    train, test = leave_one_out(M, random_state=seed)
    check_loo(sp.csr_matrix(M), train, test)
    again = leave_one_out(M, random_state=seed)
    assert pairs(again[1]) == pairs(test)


@settings(max_examples=60)
@given(M=sparse_matrices(), seed=st.integers(0, 2**31), fraction=st.floats(0.01, 0.99))
def test_property_holdout_split(M, seed, fraction):
    train, test = holdout_split(M, test_fraction=fraction, random_state=seed)
    C = as_csr(M)
    check_partition(C, train, test)
    deg = np.diff(C.indptr)
    expected = np.clip(np.round(fraction * deg).astype(int), 0, np.maximum(deg - 1, 0))
    np.testing.assert_array_equal(np.diff(test.indptr), expected)


@settings(max_examples=40)
@given(M=sparse_matrices(), seed=st.integers(0, 2**31),
       protocol=st.sampled_from(["loo", "holdout"]))
def test_property_validation_split(M, seed, protocol):
    fit_part, val = validation_split(M, protocol=protocol, random_state=seed)
    check_partition(as_csr(M), fit_part, val)


# -- synthetic generator --------------------------------------------------------------------------
def test_make_synthetic_shape_and_format():
    X = make_synthetic(n_users=300, n_items=120, n_groups=6, mean_degree=10, random_state=0)
    assert X.shape == (300, 120)
    assert sp.isspmatrix_csr(X) and X.has_sorted_indices
    assert set(np.unique(X.data)) == {1.0}
    assert X.nnz == len(pairs(X))                     # no duplicates
    assert np.all(np.diff(X.indptr) >= 1)


def test_make_synthetic_degree_at_least_three_as_documented():
    """The docstring promises degrees "at least 3" (so every user can be split)."""
    X = make_synthetic(random_state=0)
    assert np.diff(X.indptr).min() >= 3


def test_make_synthetic_seeded():
    a = make_synthetic(n_users=200, n_items=100, random_state=3)
    b = make_synthetic(n_users=200, n_items=100, random_state=3)
    c = make_synthetic(n_users=200, n_items=100, random_state=4)
    assert pairs(a) == pairs(b)
    assert pairs(a) != pairs(c)


def test_make_synthetic_popularity_is_skewed():
    X = make_synthetic(n_users=1000, n_items=200, popularity_exponent=1.0, random_state=0)
    counts = np.sort(np.asarray(X.sum(axis=0)).ravel())[::-1]
    assert counts[:20].sum() > 3 * counts[-20:].sum()


@pytest.mark.parametrize("kwargs", [dict(n_users=0), dict(n_items=1), dict(n_groups=0),
                                    dict(n_groups=50, n_items=10), dict(group_affinity=1.5),
                                    dict(popularity_exponent=-1.0), dict(random_state=-1)])
def test_make_synthetic_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        make_synthetic(**kwargs)


# -- headers, separators, negatives files (open_dataset) ------------------------------------------
@pytest.mark.parametrize("text,users", [
    ("userId,itemId\n1,10\n2,10\n2,11\n", [1, 2]),                   # 2 columns, known names
    ("userId,itemId,rating\n1,10,4\n2,10,5\n", [1, 2]),               # 3 columns
    ("a,b,rating,when\n1,10,4,100\n2,10,5,101\n", [1, 2]),            # non-numeric value field
    ("visitor,place\n1,10\n2,10\n", [1, 2]),                          # letters above ints
    ("7;034545104X;0\n8;0155061224;5\n", [7, 8]),                    # ISBN: an id, not a name
    ("u7,i1\nu8,i1\n", ["u7", "u8"]),                                  # string ids: no header
    ("1,10\n2,10\n", [1, 2]),                                          # no header
])
def test_header_is_detected(tmp_path, text, users):
    """Problem 4: a header line silently became a user "userId" and an item "itemId"."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_delimited(write(tmp_path / "log.csv", text))
    # only the weak rule (letters above integers) warns that it skipped a line
    assert bool(caught) == text.startswith("visitor"), [str(w.message) for w in caught]
    assert ds.user_ids.tolist() == users
    assert "userId" not in ds.item_ids.tolist() and "itemId" not in ds.item_ids.tolist()


def test_header_explicit_and_the_hint_when_it_is_missed(tmp_path):
    p = write(tmp_path / "log.csv", "user name,item name,score\nann,x,1\nbob,y,2\n")
    assert load_delimited(p, header=True).user_ids.tolist() == ["ann", "bob"]
    with pytest.raises(ValueError, match=error_at(p, 1) + r".*pass header=True \(CLI: --header"):
        load_delimited(p, header=False)
    p2 = write(tmp_path / "strings.csv", "who,what\nann,x\nbob,y\n")   # undetectable header
    assert load_delimited(p2, header=True).user_ids.tolist() == ["ann", "bob"]
    assert load_delimited(p2).user_ids.tolist() == ["ann", "bob", "who"]
    with pytest.raises(TypeError, match="header must be True, False or 'auto'"):
        load_delimited(p, header="yes")


@pytest.mark.parametrize("sep,text", [("::", "1::10::5::978300760\n2::11::3::978300761\n"),
                                      (";", "1;10\n2;11\n"), ("|", "1|10|2.5\n2|11|1\n")])
def test_sep_is_configurable(tmp_path, sep, text):
    ds = load_delimited(write(tmp_path / "log.dat", text), sep=sep)
    assert ds.user_ids.tolist() == [1, 2] and ds.item_ids.tolist() == [10, 11]


def _csv_split(tmp_path, negatives):
    tr = write(tmp_path / "train.csv", "userId,movieId,rating\nu1,m1,4\nu1,m2,5\nu2,m2,3\n"
                                       "u2,m3,1\nu3,m1,2\nu3,m4,1\nu2,m5,3\n")
    te = write(tmp_path / "test.csv", "userId,movieId,rating\nu1,m3,4\nu2,m1,5\nu3,m2,2\n")
    neg = write(tmp_path / "neg.csv", negatives)
    return tr, te, neg


def test_negatives_csv_form_maps_raw_ids(tmp_path):
    tr, te, neg = _csv_split(tmp_path, 'userId,negatives\nu1,"[m4, m5]"\nu3,"[\'m3\']"\n')
    ds = open_dataset(tr, test=te, negatives=neg)
    assert ds.item_ids.tolist() == ["m1", "m2", "m3", "m4", "m5"]
    assert ds.negatives.tolist() == [[3, 4], [-1, -1], [2, -1]]
    assert ds.split["negatives"] == str(neg) and ds.split["format"] == "delimited"
    # numpy's spelling of a list (blanks, no commas), and no header line
    write(neg, 'u1,"[m4 m5]"\nu3,[m3]\n')
    assert open_dataset(tr, test=te, negatives=neg).negatives.tolist() == \
        [[3, 4], [-1, -1], [2, -1]]
    # header=True is for the train and test files: the negatives' first line stays data
    assert open_dataset(tr, test=te, negatives=neg, header=True).negatives.tolist() == \
        [[3, 4], [-1, -1], [2, -1]]


def test_negatives_ncf_form_with_raw_ids(tmp_path):
    tr, te, neg = _csv_split(tmp_path, "(u1,m3)\tm4\n(u2,m1)\tm3\tm5\n")
    ds = open_dataset(tr, test=te, negatives=neg)
    assert ds.negatives.tolist() == [[3, -1], [2, 4], [-1, -1]]


@pytest.mark.parametrize("negatives,fragment", [
    ('u1,"[m4, m3]"\n', "its own test item"),                  # the positive among negatives
    ("(u1,m1)\tm4\n", r"head \(u1,m1\) is not a test pair"),   # head names another pair
    ('u9,"[m4]"\n', "user 'u9' is not in the train or test file"),
    ('u1,"[m4]"\nu1,"[m5]"\n', "already has a negative list"),
    ("u1,m4\n", "a bracketed list"),
    ('u1,"[m4, 7]"\n', "negative item '7' is in neither the train nor the test file"),
    ('u1,"[m4 m6]"\n', "negative item 'm6' is in neither"),
])
def test_negatives_are_cross_checked_against_the_test_file(tmp_path, negatives, fragment):
    tr, te, neg = _csv_split(tmp_path, negatives)
    with pytest.raises(ValueError, match=re.escape(str(neg)) + ".*" + fragment):
        open_dataset(tr, test=te, negatives=neg)


def test_ncf_negatives_cross_checked(tmp_path):
    prefix = write_ncf(tmp_path)
    write(tmp_path / "toy.test.negative", "(0,3)\t4\t3\n")
    with pytest.raises(ValueError, match="its own test item"):
        load_ncf(prefix)
    write(tmp_path / "toy.test.negative", "(0,1)\t4\n")
    with pytest.raises(ValueError, match="not a test pair"):
        load_ncf(prefix)
    write(tmp_path / "toy.test.negative", "(9,1)\t4\n")
    with pytest.raises(ValueError, match="user '9' is not in the train or test file"):
        load_ncf(prefix)


def test_open_dataset_formats_and_split_spec(tmp_path, lightgcn_folder):
    ds = open_dataset(lightgcn_folder)
    assert ds.split["format"] == "lightgcn" and ds.split["split"] == "given"
    assert os.path.isabs(ds.split["path"])
    again = open_dataset(**ds.split)
    assert pairs(again.train) == pairs(ds.train) and pairs(again.test) == pairs(ds.test)
    ncf = open_dataset(write_ncf(tmp_path))
    assert ncf.split["format"] == "ncf" and ncf.negatives is not None
    loo = open_dataset(lightgcn_folder, split="loo", seed=3)
    assert loo.split["seed"] == 3 and max(np.diff(loo.test.indptr)) == 1
    assert pairs(loo.train) | pairs(loo.test) == pairs(ds.train) | pairs(ds.test)
    assert pairs(open_dataset(**loo.split).test) == pairs(loo.test)


def test_open_dataset_resplit_drops_negatives_with_a_warning(tmp_path):
    with pytest.warns(UserWarning, match="negatives .* are dropped"):
        ds = open_dataset(write_ncf(tmp_path), split="holdout")
    assert ds.negatives is None


def test_open_dataset_errors(tmp_path, lightgcn_folder):
    with pytest.raises(FileNotFoundError, match="nowhere does not exist"):
        open_dataset(tmp_path / "nowhere")
    log = write(tmp_path / "log.csv", "a,x\nb,y\n")
    with pytest.raises(ValueError, match="has no test set; pass split='loo'"):
        open_dataset(log)
    with pytest.raises(ValueError, match="test and negatives files are for delimited data"):
        open_dataset(lightgcn_folder, test=log, negatives=log)
    with pytest.raises(FileNotFoundError, match="missing.csv does not exist"):
        open_dataset(log, test=tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="split must be one of"):
        open_dataset(lightgcn_folder, split="random")
    (tmp_path / "lap").mkdir()
    write(tmp_path / "lap" / "train.txt", "0 1 2\n")
    write(tmp_path / "lap" / "test.txt", "0 2\n")               # test pair also in train
    with pytest.raises(ValueError, match="1 of the 1 test interactions are also training"):
        open_dataset(tmp_path / "lap")


# -- values: the same rule as matrix input ---------------------------------------------------------
def test_values_follow_the_matrix_rule(tmp_path):
    """Issue 12, group 7: rows with value 0 or -1 silently became positive interactions."""
    p = write(tmp_path / "log.csv", "a,x,1\na,y,0\nb,y,2.5\nb,z,0.0\n")
    ds = load_delimited(p)
    assert pairs(ds.train) == {(0, 0), (1, 1)}               # zeros are no interaction
    assert ds.item_ids.tolist() == ["x", "y", "z"]            # but still name their item
    dense = np.array([[1, 0, 0], [0, 2.5, 0]])
    from aprnb._validation import check_interactions
    assert pairs(check_interactions(dense)) == pairs(ds.train)
    neg = write(tmp_path / "neg.csv", "a,x,1\nb,y,-1\n")
    with pytest.raises(ValueError, match=error_at(neg, 2) + ".*value -1 is negative.*min_value"):
        load_delimited(neg)
    with pytest.raises(ValueError, match="negative"):
        check_interactions(-dense)


def test_min_value_thresholds_graded_feedback(tmp_path):
    p = write(tmp_path / "ratings.csv", "userId,movieId,rating\n1,10,5\n1,11,2\n2,10,-1\n"
                                        "2,12,4\n3,11,3.5\n")
    ds = open_dataset(p, split="loo", min_value=4)
    assert pairs(ds.train) | pairs(ds.test) == {(0, 0), (1, 2)}
    assert ds.split["min_value"] == 4
    assert load_delimited(p, min_value=-1).train.nnz == 5
    with pytest.raises(TypeError, match="min_value must be None or a finite number"):
        load_delimited(p, min_value="4")
    with pytest.raises(ValueError, match="min_value is for delimited data"):
        open_dataset(tmp_path, format="lightgcn", min_value=1)


@pytest.mark.parametrize("kwargs,exc,fragment", [
    (dict(path=None), TypeError, "path must be a path"),
    (dict(path=""), ValueError, "path is empty"),
    (dict(format="csv"), ValueError, "format must be one of"),
    (dict(split="given", seed=1.5), TypeError, "seed must be an int"),
    (dict(seed=True), TypeError, "seed must be an int"),
    (dict(test_fraction=1.5), ValueError, "test_fraction"),
    (dict(test=5), TypeError, "test must be a path"),
    (dict(negatives=[1]), TypeError, "negatives must be a path"),
    (dict(header="maybe"), TypeError, "header must be True, False or 'auto'"),
    (dict(sep=""), TypeError, "sep must be a non-empty string"),
    (dict(min_value="4"), TypeError, "min_value must be None or a finite number"),
    (dict(one_based="yes"), TypeError, "one_based must be None, True or False"),
])
def test_open_dataset_rejects_bad_arguments(tmp_path, kwargs, exc, fragment):
    tr = write(tmp_path / "tr.csv", "a,x\nb,y\n")
    te = write(tmp_path / "te.csv", "a,y\nb,x\n")
    args = {"path": tr, "test": te, **kwargs}
    with pytest.raises(exc, match=fragment):
        open_dataset(**args)
