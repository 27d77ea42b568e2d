"""open_dataset: headers, separators, negatives files, split specifications, values."""
import os
import re
import warnings

import numpy as np
import pytest

from aprnb.data import (load_delimited, load_ncf, open_dataset)
from aprnb.reference import pairs
from checks import (error_at, write, write_ncf)


def dense(M):
    return np.asarray(M.todense())


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
