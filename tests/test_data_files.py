"""Data files: LightGCN/NGCF, NCF and delimited loaders, malformed files, real data."""
import os
import re
import tempfile

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from aprnb import data as D
from aprnb.data import (load_delimited, load_interactions, load_lightgcn, load_ncf)
from aprnb.reference import items_of, pairs
from checks import (digest, error_at, message, write, write_file, write_ncf)


def dense(M):
    return np.asarray(M.todense())


# -- LightGCN / NGCF format --------------------------------------------------------------------
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


# -- malformed and unusual files (bad input gets a clear error) --------------------------------
@pytest.mark.parametrize("content,fragment", [
    ("", "no interactions found"),
    ("# only a comment\n", "no interactions found"),
    ("u1\n", "line 1: expected 'user, item"),
    ("u1,i1\nu1,i1,2,3,4\n", "line 2: expected 'user, item"),
    ("u1,i1,1\nu1,i1,abc\n", "line 2: value/timestamp"),
    ("u1,i1,1,2\nu1,i1,1,abc\n", "line 2: value/timestamp"),
    ("u1,i1,nan\n", "line 1: value 'nan' is not finite"),
    ("u1,i1,inf\n", "line 1: value 'inf' is not finite"),
    (",i1\n", "line 1: expected"),
    ("u1,,1\n", "line 1: expected"),
    ("\x00\x01garbage\n", "line 1: expected"),
])
def test_load_delimited_malformed_lines(tmp_path, content, fragment):
    path = write_file(tmp_path / "a.csv", content)
    before = digest(path)
    with pytest.raises(ValueError, match=fragment) as ei:
        D.load_delimited(path)
    assert path in message(ei)
    assert digest(path) == before


def test_load_delimited_one_based_errors(tmp_path):
    path = write_file(tmp_path / "a.csv", "0,2\n3,4\n")
    with pytest.raises(ValueError, match="line 1: user id 0 is below the first id 1"):
        D.load_delimited(path, one_based=True)
    path = write_file(tmp_path / "b.csv", "a,2\n3,4\n")
    with pytest.raises(ValueError, match="not an integer; pass one_based=None"):
        D.load_delimited(path, one_based=False, header=False)
    path = write_file(tmp_path / "c.csv", "1,2\n-3,4\n")
    with pytest.raises(ValueError, match="line 2: user id -3 is below"):
        D.load_delimited(path, one_based=False)
    with pytest.raises(TypeError, match="one_based must be None, True or False"):
        D.load_interactions(path, one_based="yes")


def test_loader_path_errors(tmp_path):
    missing = str(tmp_path / "nope.csv")
    with pytest.raises(FileNotFoundError, match="nope.csv does not exist; check the path"):
        D.load_delimited(missing)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        D.load_delimited(write_file(tmp_path / "a.csv", "u,i\n"), missing)
    for bad in (None, 5, 1.5):
        with pytest.raises(TypeError, match="path"):
            D.load_delimited(bad)
        with pytest.raises(TypeError, match="path"):
            D.load_ncf(bad)
        with pytest.raises(TypeError, match="path"):
            D.load_lightgcn(bad)
    with pytest.raises(ValueError, match="paths is empty"):
        D.load_interactions([])
    with pytest.raises(FileNotFoundError, match="nofolder does not exist; pass the folder "
                                                "holding train.txt"):
        D.load_lightgcn(tmp_path / "nofolder")
    with pytest.raises(ValueError, match="not a directory; pass the folder holding train.txt"):
        D.load_lightgcn(write_file(tmp_path / "file.txt", "0 1\n"))
    with pytest.raises(FileNotFoundError, match="train.txt does not exist"):
        D.load_lightgcn(tmp_path)
    with pytest.raises(FileNotFoundError, match="train.rating does not exist"):
        D.load_ncf(tmp_path / "ml")
    with pytest.raises(FileNotFoundError, match="nolastfm does not exist"):
        D.load_lastfm(tmp_path / "nolastfm")


def test_load_delimited_folder_instead_of_file_says_so(tmp_path):
    """'no such file' is wrong for a folder that exists; say it is a directory."""
    with pytest.raises(ValueError, match="(?i)director|folder"):
        D.load_delimited(tmp_path)


@pytest.mark.parametrize("bad", [None, 5], ids=["None", "int"])
def test_load_lastfm_bad_type_names_the_argument(bad):
    with pytest.raises(TypeError, match="folder|path"):
        D.load_lastfm(bad)


def test_load_delimited_bad_sep_type_names_the_argument(tmp_path):
    path = write_file(tmp_path / "a.csv", "1,2\n3,4\n")
    with pytest.raises(TypeError, match="sep"):
        D.load_delimited(path, sep=5)


def test_load_delimited_invalid_utf8_names_the_file(tmp_path):
    path = write_file(tmp_path / "a.csv", b"u1,i1\n\xff\xfe,i2\n", mode="wb")
    with pytest.raises(ValueError) as ei:
        D.load_delimited(path)
    assert path in message(ei), message(ei)


def test_load_delimited_keeps_distinct_numeric_looking_ids(tmp_path):
    """'007' and '7' (or '+5' and '5') are different users; merging them loses data."""
    for a, b in [("007", "7"), ("+5", "5"), ("1_000", "1000")]:
        path = write_file(tmp_path / "a.csv", f"{a},x\n{b},y\n")
        ds = D.load_delimited(path)
        assert ds.n_users == 2, (a, b, ds.user_ids)


def test_load_delimited_accepts_long_numeric_ids(tmp_path):
    """A 20-digit numeric id overflows int64; it must still load (or give a ValueError)."""
    path = write_file(tmp_path / "a.csv", "12345678901234567890,x\n1,y\n1,x\n")
    ds = D.load_delimited(path)
    assert ds.n_users == 2 and ds.train.nnz == 3


def test_load_delimited_strips_utf8_bom(tmp_path):
    path = write_file(tmp_path / "a.csv", b"\xef\xbb\xbfu1,a\nu2,b\n", mode="wb")
    ds = D.load_delimited(path)
    assert sorted(map(str, ds.user_ids)) == ["u1", "u2"]


@pytest.mark.parametrize("train,test,fragment", [
    ("0 1 2\n1 x\n", "0 3\n", "train.txt, line 2: item id 'x' is not an integer"),
    ("0 1 -2\n", "0 3\n", "line 1: item id -2 is negative"),
    ("0 1.5\n", "0 3\n", "line 1: item id '1.5' is not an integer"),
    ("-1 2\n", "0 3\n", "line 1: user id -1 is negative"),
    ("", "", "hold no interactions"),
    ("0\n1\n", "", "hold no interactions"),
    ("0 1\n", "0 x\n", "test.txt, line 1"),
])
def test_load_lightgcn_malformed(tmp_path, train, test, fragment):
    write_file(tmp_path / "train.txt", train)
    write_file(tmp_path / "test.txt", test)
    with pytest.raises(ValueError, match=fragment):
        D.load_lightgcn(tmp_path)


@pytest.mark.parametrize("negative,fragment", [
    ("(0,2)\t1\tx\n", "negative item id 'x' is not an integer"),
    ("0,2\t1\n", "expected '\\(user,item\\)'"),
    ("(0,2)\t-1\n", "negative item id -1 is negative"),
    ("(a,b)\t1\n", "user 'a' is not in the train or test file"),
])
def test_load_ncf_malformed(tmp_path, negative, fragment):
    prefix = tmp_path / "ml"
    write_file(f"{prefix}.train.rating", "0\t1\t5\t100\n1\t2\t5\t100\n")
    write_file(f"{prefix}.test.rating", "0\t2\t5\t100\n")
    write_file(f"{prefix}.test.negative", negative)
    with pytest.raises(ValueError, match=fragment):
        D.load_ncf(prefix)
    write_file(f"{prefix}.train.rating", "0 1 5 100\n")
    with pytest.raises(ValueError, match="line 1: expected 'user<TAB>item"):
        D.load_ncf(prefix)


# -- properties --------------------------------------------------------------------------------
_ID = st.from_regex(r"[A-Za-z][A-Za-z0-9_.-]{0,7}", fullmatch=True)


@settings(max_examples=40, deadline=None)
@given(train_rows=st.lists(st.tuples(_ID, _ID), min_size=1, max_size=25),
       test_rows=st.lists(st.tuples(_ID, _ID), min_size=0, max_size=8),
       sep=st.sampled_from([",", "\t", ";", " "]),
       extra=st.sampled_from([0, 1, 2]),
       header=st.booleans())
def test_property_delimited_round_trip_of_string_ids(train_rows, test_rows, sep, extra, header):
    with tempfile.TemporaryDirectory() as folder:
        def write(name, rows):
            lines = (["user" + sep + "item"] if header else [])
            for k, (u, i) in enumerate(rows):
                cols = [u, i] + [str(k + 0.5), str(1000 + k)][:extra]
                lines.append(sep.join(cols))
            return write_file(os.path.join(folder, name), "\n".join(lines) + "\n")

        tr_path = write("train.txt", train_rows)
        te_path = write("test.txt", test_rows) if test_rows else None
        ds = D.load_delimited(tr_path, te_path, header=header)
    users = sorted({u for u, _ in train_rows + test_rows})
    items = sorted({i for _, i in train_rows + test_rows})
    assert list(ds.user_ids) == users and list(ds.item_ids) == items
    log = ds.interactions
    for k, (u, i) in enumerate(train_rows):
        assert ds.user_ids[log.users[k]] == u and ds.item_ids[log.items[k]] == i
    uix = {u: k for k, u in enumerate(users)}
    iix = {i: k for k, i in enumerate(items)}
    assert ds.train.nnz == len(set(train_rows))
    for u, i in train_rows:
        assert ds.train[uix[u], iix[i]] == 1
    if test_rows:
        assert ds.test.nnz == len(set(test_rows))
        for u, i in test_rows:
            assert ds.test[uix[u], iix[i]] == 1
    if extra == 2:
        assert log.timestamps is not None and len(log.timestamps) == len(train_rows)


@settings(max_examples=30, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 2**16 - 1), st.integers(0, 2**16 - 1)),
                     min_size=1, max_size=25))
def test_property_delimited_round_trip_of_integer_ids(rows):
    # ids below MIN_INDEX, so that one_based=False may use them as indices
    with tempfile.TemporaryDirectory() as folder:
        path = write_file(os.path.join(folder, "a.tsv"),
                          "".join(f"{u}\t{i}\n" for u, i in rows))
        ds = D.load_delimited(path)
        zero = D.load_delimited(path, one_based=False)
    log = ds.interactions
    assert list(ds.user_ids) == sorted({u for u, _ in rows})
    for k, (u, i) in enumerate(rows):
        assert int(ds.user_ids[log.users[k]]) == u and int(ds.item_ids[log.items[k]]) == i
        assert zero.interactions.users[k] == u and zero.interactions.items[k] == i
    assert zero.train.shape == (max(u for u, _ in rows) + 1, max(i for _, i in rows) + 1)
