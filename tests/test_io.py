"""Model files: atomic saves, exact round trips of parameters, hostile and broken files.

Saves never leave a partial or stray file; loads never unpickle and reject a
broken file with a ``ValueError`` that names it, leaving it untouched. The plain
save/load round trip of every model is part of the model contract
(``tests/test_model_contract.py``); hostile files under a memory cap are in
``tests/test_hostile.py``.
"""
import os
import pickle
import zipfile

import numpy as np
import pytest

import aprnb
from aprnb import APR, BPR, ItemPop
from checks import (FAST, assert_unchanged, digest, fit_fast, listing, message, snapshot)


# -- save --------------------------------------------------------------------------------------
def test_save_bad_paths_leave_no_files(fitted, tmp_path):
    target = tmp_path / "models"
    target.mkdir()
    before = listing(tmp_path), listing(target)
    snap = snapshot(fitted)
    cases = [(None, TypeError, "path must be a str"), (5, TypeError, "path must be a str"),
             ("", ValueError, "path is empty"),
             (str(tmp_path / "nofolder" / "m.npz"), FileNotFoundError,
              "does not exist; create it")]
    for path, exc, fragment in cases:
        with pytest.raises(exc, match=fragment):
            fitted.save(path)
        assert (listing(tmp_path), listing(target)) == before
    assert_unchanged(fitted, snap)


def test_save_onto_a_directory_is_a_clear_error(bpr, tmp_path):
    target = tmp_path / "models"
    target.mkdir()
    before = listing(tmp_path)
    with pytest.raises(ValueError, match="(?i)director|folder"):
        bpr.save(target)
    assert listing(tmp_path) == before and target.is_dir()


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()],
                         ids=["OSError", "KeyboardInterrupt"])
def test_save_is_atomic_when_writing_crashes(error, tmp_path, monkeypatch, split):
    old = fit_fast(BPR, split[0])
    path = tmp_path / "model.npz"
    old.save(path)
    before_hash, before_list = digest(path), listing(tmp_path)
    new = fit_fast(APR, split[0], random_state=1)
    real_savez = np.savez

    def crashing_savez(file, *args, **kwds):
        real_savez(file, *args, **kwds)   # a complete payload lands in the temp file ...
        if hasattr(file, "write"):
            file.write(b"\0" * 64)        # ... plus some junk ...
        raise error                       # ... then the process "dies"

    monkeypatch.setattr(np, "savez", crashing_savez)
    with pytest.raises(type(error)):
        new.save(path)
    monkeypatch.undo()
    assert digest(path) == before_hash
    assert listing(tmp_path) == before_list
    loaded = aprnb.load(path)
    assert type(loaded) is BPR
    np.testing.assert_array_equal(loaded.user_factors_, old.user_factors_)


def test_save_overwrites_existing_file_completely(tmp_path, split):
    path = tmp_path / "m.npz"
    fit_fast(APR, split[0]).save(path)
    model = fit_fast(ItemPop, split[0])
    model.save(path)
    loaded = aprnb.load(path)
    assert type(loaded) is ItemPop
    np.testing.assert_array_equal(loaded.item_factors_, model.item_factors_)
    assert listing(tmp_path) == ["m.npz"]


@pytest.mark.parametrize("name,value", [("factors", np.int64(4)), ("epochs", np.int32(2)),
                                        ("learning_rate", np.float32(0.05)),
                                        ("random_state", np.int64(3))])
def test_save_load_round_trip_with_numpy_scalar_params(name, value, tmp_path, split):
    """fit accepts numpy scalars (e.g. from np.arange grids); save must too, losslessly."""
    model = BPR(**dict(FAST, **{name: value})).fit(split[0])
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = aprnb.load(path)
    assert loaded.get_params()[name] == value
    np.testing.assert_array_equal(loaded.user_factors_, model.user_factors_)


# -- load: hostile and broken files ------------------------------------------------------------
@pytest.fixture
def model_file(tmp_path, split):
    path = tmp_path / "good.npz"
    fit_fast(BPR, split[0]).save(path)
    return path


def _variant(src, dst, **changes):
    """Copy of the model file ``src`` with some arrays replaced (None = removed)."""
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    for k, v in changes.items():
        if v is None:
            arrays.pop(k, None)
        else:
            arrays[k] = v
    np.savez(dst, **arrays)   # allow_pickle defaults to True here: object arrays pickle
    return dst


def _assert_load_rejected(path, fragment=None, exc=ValueError):
    before = digest(path)
    with pytest.raises(exc, match=fragment) as ei:
        aprnb.load(path)
    assert digest(path) == before
    return message(ei)


def test_load_path_errors(tmp_path):
    with pytest.raises(TypeError, match="path must be a str"):
        aprnb.load(None)
    with pytest.raises(ValueError, match="path is empty"):
        aprnb.load("")
    with pytest.raises(FileNotFoundError, match="missing.npz does not exist"):
        aprnb.load(tmp_path / "missing.npz")


def test_load_folder_instead_of_file_says_so(tmp_path):
    with pytest.raises(ValueError, match="(?i)director|folder"):
        aprnb.load(tmp_path)


def test_load_truncated_garbage_and_empty_files(model_file, tmp_path):
    raw = model_file.read_bytes()
    cases = {"truncated.npz": raw[: len(raw) // 2], "head.npz": raw[:10],
             "garbage.npz": bytes(np.random.default_rng(0).integers(0, 256, 300, np.uint8)),
             "empty.npz": b""}
    for name, payload in cases.items():
        path = tmp_path / name
        path.write_bytes(payload)
        msg = _assert_load_rejected(path, "not a readable aprnb model file|not an aprnb model")
        assert str(path) in msg


def test_load_errors_never_suggest_unpickling(tmp_path):
    """For garbage bytes numpy suggests allow_pickle=...; aprnb must not pass that on."""
    path = tmp_path / "garbage.npz"
    path.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 300, np.uint8)))
    msg = _assert_load_rejected(path)
    assert "allow_pickle" not in msg and "pickle.load" not in msg, msg


def test_load_npy_file_is_rejected_with_valueerror(tmp_path):
    path = tmp_path / "factors.npy"
    np.save(path, np.zeros((3, 2), np.float32))
    _assert_load_rejected(path, "aprnb model")


def test_load_npz_that_is_not_a_model(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, a=np.arange(3))
    _assert_load_rejected(path, "not an aprnb model file")
    path = tmp_path / "zip.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    _assert_load_rejected(path, "not an aprnb model file")


@pytest.mark.parametrize("changes,fragment", [
    (dict(format_version=np.array(99)), "format version 99 is newer.*upgrade aprnb"),
    (dict(item_factors=np.zeros((20, 3), np.float32)), "inconsistent factor arrays"),
    (dict(user_factors=np.zeros((30, 3), np.float32),
          item_factors=np.zeros((20, 3), np.float32)), "width 4 but the arrays have width 3"),
    (dict(user_factors=np.zeros(30, np.float32)), "inconsistent factor arrays"),
    (dict(user_factors=np.zeros((30, 4, 1), np.float32)), "inconsistent factor arrays"),
    (dict(user_factors=np.zeros((30, 4), np.int32)), "inconsistent factor arrays"),
    (dict(user_factors=np.full((30, 4), np.nan, np.float32)), "NaN or inf"),
    (dict(opt_users=np.zeros((3, 4), np.float32)), "optimizer state shapes"),
    (dict(format=np.array("something-else")), "not an aprnb model file"),
    (dict(format=None), "not an aprnb model file"),
    (dict(user_factors=None), "not an aprnb model file"),
    (dict(**{"class": np.array("Evil")}), "unknown model class 'Evil'"),
    (dict(params=np.array("{not json")), "corrupted parameter block"),
    (dict(params=np.array("[1, 2]")), "parameters do not match"),
    (dict(params=np.array('{"factors": 4, "wat": 1}')), "parameters do not match"),
    (dict(history=np.array("{bad")), "corrupted"),
], ids=["future version", "width mismatch", "params width mismatch", "1-D", "3-D",
        "int factors", "NaN factors", "optimizer shape", "wrong marker", "no marker",
        "no user factors", "unknown class", "bad params JSON", "params not a dict",
        "unknown param", "bad history JSON"])
def test_load_rejects_inconsistent_model_files(model_file, tmp_path, changes, fragment):
    path = _variant(model_file, tmp_path / "bad.npz", **changes)
    msg = _assert_load_rejected(path, fragment)
    assert str(path) in msg


@pytest.mark.parametrize("changes", [
    dict(params=np.array('{"factors": 4, "dtype": "banana"}')),
    dict(params=np.array('{"factors": 4, "learning_rate": -1}')),
    dict(params=np.array('{"factors": 4, "optimizer": "adam"}')),
    dict(format_version=np.array("abc")),
    dict(format_version=np.array([1, 2])),
    dict(user_factors=np.zeros((30, 4), np.float16),
         item_factors=np.zeros((20, 4), np.float16)),
    dict(opt_users=np.full((30, 4), np.nan, np.float32)),
], ids=["dtype param", "negative lr param", "unknown optimizer param", "version str",
        "version array", "float16 factors", "NaN accumulators"])
def test_load_rejects_corrupted_fields_with_valueerror_naming_the_file(model_file, tmp_path,
                                                                       changes):
    path = _variant(model_file, tmp_path / "bad.npz", **changes)
    msg = _assert_load_rejected(path)
    assert str(path) in msg, msg


@pytest.mark.parametrize("key", ["user_factors", "params", "extra"])
def test_load_never_unpickles(model_file, tmp_path, key):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    evil = np.empty(1, dtype=object)
    evil[0] = Payload()
    path = _variant(model_file, tmp_path / "evil.npz", **{key: evil})
    if key == "extra":          # a member aprnb does not know is never read
        assert aprnb.load(path).user_factors_.shape[0] > 0
    else:
        _assert_load_rejected(path)
    assert not marker.exists()
    # a raw pickle stream with the same payload
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(Payload()))
    _assert_load_rejected(raw)
    assert not marker.exists()


# -- a model class's own arrays (_extra_members) ----------------------------------------------
class _Weighted(BPR):
    """BPR with one extra trained array, ``weights_`` (a stand-in for NeuMF's dense layers)."""

    _extra_members = ("weights",)

    def fit(self, train, init=None, callback=None):
        super().fit(train, init, callback)
        self.weights_ = np.arange(6, dtype=self.user_factors_.dtype).reshape(2, 3)
        return self

    def _check_loaded(self, path):
        if self.weights_.shape != (2, 3):
            raise ValueError(f"{path}: weights of shape {self.weights_.shape}, not (2, 3)")


@pytest.fixture
def weighted_file(tmp_path, split, monkeypatch):
    monkeypatch.setitem(aprnb.io.REGISTRY, "_Weighted", _Weighted)
    path = tmp_path / "w.npz"
    _Weighted(**FAST).fit(split[0]).save(path)
    return path


def test_extra_members_round_trip(weighted_file):
    model = aprnb.load(weighted_file)
    assert type(model) is _Weighted
    np.testing.assert_array_equal(model.weights_, np.arange(6).reshape(2, 3))
    assert model.weights_.dtype == model.user_factors_.dtype


@pytest.mark.parametrize("change, fragment", [
    (lambda d: d.pop("x:weights"), "member 'weights' is missing"),
    (lambda d: d.update({"x:weights": np.zeros((3, 3))}), r"weights of shape \(3, 3\)"),
    (lambda d: d.update({"x:weights": np.array("text")}), "not a numeric array")])
def test_extra_members_missing_or_inconsistent_is_a_clear_error(weighted_file, change, fragment):
    with np.load(weighted_file) as f:
        data = {k: f[k] for k in f.files}
    change(data)
    np.savez(weighted_file, **data)
    with pytest.raises(ValueError, match=fragment):
        aprnb.load(weighted_file)
