"""aprnb.datasets: download, checksum and cache, all offline.

Sources are tiny files written into ``tmp_path`` and served through ``file://`` URLs
by registry entries the tests add. Tests named ``*_loads`` go through
:func:`aprnb.data.open_dataset` and FAIL (they are not skipped) until it exists.
"""
import hashlib
import os
import sys
import zipfile

import numpy as np
import pytest

import aprnb
from aprnb import datasets

TRAIN_TXT = "0 0 1 2\n1 1 3\n2 0 4\n"     # 3 users, items 0..4, 7 interactions
TEST_TXT = "0 3\n1 4\n2 2\n"               # 3 interactions, none in train

# MovieLens-style log: user, item, rating, timestamp (1-based ids, users 1..3, items
# 10..14). The latest interaction of each user is marked below.
RATINGS = [
    (1, 10, 5, 100), (1, 11, 3, 300), (1, 12, 4, 200),   # user 1: latest item 11
    (2, 10, 2, 50), (2, 13, 1, 40), (2, 14, 5, 60),      # user 2: latest item 14
    (3, 12, 3, 10), (3, 14, 4, 5), (3, 11, 1, 7),        # user 3: latest item 12
]
LATEST = {1: 11, 2: 14, 3: 12}


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def git_blob_id(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def needs_open_dataset():
    """Fail (not skip) with a clear message while aprnb.data.open_dataset is missing."""
    assert hasattr(aprnb.data, "open_dataset"), (
        "aprnb.data.open_dataset does not exist yet; this test fails until it lands")


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)


@pytest.fixture
def tiny(tmp_path, monkeypatch, no_env):
    """Register "tiny": a LightGCN-format set served from tmp_path/src via file://."""
    src = tmp_path / "src"
    train, test = write(src / "train.txt", TRAIN_TXT), write(src / "test.txt", TEST_TXT)
    entry = {"files": [(train.as_uri(), "sha256:" + sha256(train), "train.txt"),
                       (test.as_uri(), sha256(test), "test.txt")],    # bare hex: sha256
             "unzip": None, "path": ".", "format": "lightgcn", "kwargs": {},
             "split": "given"}
    monkeypatch.setitem(datasets.REGISTRY, "tiny", entry)
    return entry


@pytest.fixture
def copies(monkeypatch):
    """Count the file:// downloads (the downloader is looked up at each call)."""
    calls = []
    real = datasets._download_file_url

    def counting(url, output_file, pooch_obj=None, check_only=False):
        calls.append(url)
        return real(url, output_file, pooch_obj, check_only)

    monkeypatch.setattr(datasets, "_download_file_url", counting)
    return calls


def ratings_zip(path, member, sep):
    lines = "".join(sep.join(map(str, r)) + "\n" for r in RATINGS)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, lines)
        zf.writestr(member.split("/")[0] + "/README", "not a ratings file\n")
    return path


def movielens_like(tmp_path, monkeypatch, name):
    """Serve the real registry entry ``name`` from a tiny zip in tmp_path."""
    real = datasets.REGISTRY[name]
    (_, _, fname), = real["files"]
    member = real["unzip"][0]
    archive = ratings_zip(tmp_path / "src" / fname, member, real["kwargs"]["sep"])
    entry = dict(real, files=[(archive.as_uri(), "sha256:" + sha256(archive), fname)])
    monkeypatch.setitem(datasets.REGISTRY, name, entry)
    return entry


# -- download, cache, checksum --------------------------------------------------------------------
def test_download_fetches_verifies_and_caches(tiny, tmp_path, copies):
    home = tmp_path / "cache"
    path = datasets.download("tiny", data_home=home)
    assert path == str(home / "tiny")
    assert (home / "tiny" / "train.txt").read_text() == TRAIN_TXT
    assert (home / "tiny" / "test.txt").read_text() == TEST_TXT
    assert len(copies) == 2
    # Cached: the sources may vanish, nothing is copied again.
    for f in (tmp_path / "src").iterdir():
        f.unlink()
    assert datasets.download("tiny", data_home=home) == path
    assert len(copies) == 2


def test_data_home_accepts_str_and_expands_user(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    path = datasets.download("tiny", data_home="~/mycache")
    assert path == str(tmp_path / "mycache" / "tiny")
    assert os.path.isfile(os.path.join(path, "train.txt"))


def test_env_var_sets_cache_and_data_home_wins(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv(datasets.ENV_VAR, str(tmp_path / "envcache"))
    assert datasets.get_data_home() == str(tmp_path / "envcache")
    path = datasets.download("tiny")
    assert path == str(tmp_path / "envcache" / "tiny")
    assert (tmp_path / "envcache" / "tiny" / "test.txt").is_file()
    assert datasets.get_data_home(tmp_path / "arg") == str(tmp_path / "arg")
    assert datasets.download("tiny", data_home=tmp_path / "arg") == str(tmp_path / "arg" / "tiny")


def test_default_cache_is_pooch_os_cache(no_env, monkeypatch):
    import pooch
    assert datasets.get_data_home() == os.path.abspath(str(pooch.os_cache("aprnb")))
    monkeypatch.setenv(datasets.ENV_VAR, "")          # empty: ignored
    assert datasets.get_data_home() == os.path.abspath(str(pooch.os_cache("aprnb")))


def test_wrong_checksum_raises_naming_the_set_and_keeps_nothing(tiny, tmp_path):
    url, good, fname = tiny["files"][0]
    tiny["files"][0] = (url, "sha256:" + "0" * 64, fname)
    home = tmp_path / "cache"
    with pytest.raises(ValueError, match="tiny") as err:
        datasets.download("tiny", data_home=home)
    msg = str(err.value)
    assert "checksum" in msg and "train.txt" in msg
    assert "delete" in msg and "connection" in msg
    assert not (home / "tiny" / "train.txt").exists()
    assert os.listdir(home / "tiny") == []             # no temporary file left either
    # With the right hash the same call succeeds: nothing bad was cached.
    tiny["files"][0] = (url, good, fname)
    datasets.download("tiny", data_home=home)
    assert (home / "tiny" / "train.txt").read_text() == TRAIN_TXT


def test_corrupt_cached_file_is_never_used(tiny, tmp_path, copies):
    home = tmp_path / "cache"
    datasets.download("tiny", data_home=home)
    cached = home / "tiny" / "train.txt"
    cached.write_text("0 1\n")                          # damaged in the cache
    datasets.download("tiny", data_home=home)          # fetched again, verified
    assert cached.read_text() == TRAIN_TXT
    assert len(copies) == 3
    # Damaged again, and the source changed too: an error, and the damaged copy goes.
    cached.write_text("0 1\n")
    write(tmp_path / "src" / "train.txt", "0 1 2\n")
    with pytest.raises(ValueError, match="'tiny'.*checksum"):
        datasets.download("tiny", data_home=home)
    assert not cached.exists()


def test_md5_hashes_are_accepted(tiny, tmp_path):
    url, _, fname = tiny["files"][0]
    md5 = hashlib.md5(TRAIN_TXT.encode()).hexdigest()
    tiny["files"][0] = (url, "md5:" + md5, fname)
    datasets.download("tiny", data_home=tmp_path / "c")
    tiny["files"][0] = (url, "md5:" + "f" * 32, fname)
    with pytest.raises(ValueError, match="tiny"):
        datasets.download("tiny", data_home=tmp_path / "d")


def test_git_blob_hash_is_checked(tiny, tmp_path, copies):
    url, _, fname = tiny["files"][0]
    blob = git_blob_id(TRAIN_TXT.encode())
    assert datasets._git_blob_sha1(tmp_path / "src" / "train.txt") == blob
    tiny["files"][0] = (url, "git-sha1:" + blob, fname)
    home = tmp_path / "cache"
    datasets.download("tiny", data_home=home)
    cached = home / "tiny" / "train.txt"
    assert cached.read_text() == TRAIN_TXT and len(copies) == 2
    datasets.download("tiny", data_home=home)          # cached and valid: no copy
    assert len(copies) == 2
    cached.write_text("0 1\n")                          # damaged: replaced
    datasets.download("tiny", data_home=home)
    assert cached.read_text() == TRAIN_TXT and len(copies) == 3
    # A source that does not match is refused and not kept.
    tiny["files"][0] = (url, "git-sha1:" + "1" * 40, fname)
    with pytest.raises(ValueError, match="'tiny'.*checksum") as err:
        datasets.download("tiny", data_home=home)
    assert "delete" in str(err.value) and "connection" in str(err.value)
    assert not cached.exists()
    assert sorted(os.listdir(home / "tiny")) == ["test.txt"]


def test_missing_source_is_an_oserror_naming_the_set(tiny, tmp_path):
    (tmp_path / "src" / "test.txt").unlink()
    with pytest.raises(OSError, match="'tiny'.*test.txt"):
        datasets.download("tiny", data_home=tmp_path / "cache")
    assert not (tmp_path / "cache" / "tiny" / "test.txt").exists()


@pytest.mark.parametrize("known_hash", ["sha256:" + "0" * 64, "git-sha1:" + "0" * 40])
def test_http_failure_is_an_oserror_naming_the_set(tiny, tmp_path, known_hash):
    # Nothing listens on the loopback discard port: the connection is refused at once.
    tiny["files"][0] = ("http://127.0.0.1:9/train.txt", known_hash, "train.txt")
    with pytest.raises(OSError, match="'tiny'.*train.txt.*connection"):
        datasets.download("tiny", data_home=tmp_path / "cache")
    assert not (tmp_path / "cache" / "tiny" / "train.txt").exists()


def test_file_downloader_writes_paths_and_file_objects(tmp_path):
    src = write(tmp_path / "a b" / "x.txt", "hello\n")      # a space: %20 in the URL
    url = src.as_uri()
    assert "%20" in url
    out = tmp_path / "out.txt"
    datasets._download_file_url(url, str(out), None)
    assert out.read_text() == "hello\n"
    with open(tmp_path / "out2.txt", "w+b") as fh:
        datasets._download_file_url(url, fh, None)
    assert (tmp_path / "out2.txt").read_text() == "hello\n"
    assert datasets._download_file_url(url, None, None, check_only=True) is True
    assert datasets._download_file_url(url + "-no", None, None, check_only=True) is False
    with pytest.raises(ValueError, match="local"):
        datasets._download_file_url("file://example.com/x.txt", str(out), None)


def test_zip_member_is_extracted_and_cached(tmp_path, monkeypatch, no_env, copies):
    entry = movielens_like(tmp_path, monkeypatch, "movielens-100k")
    home = tmp_path / "cache"
    path = datasets.download("movielens-100k", data_home=home)
    assert path == str(home / "movielens-100k" / "ml-100k" / "u.data")
    assert open(path).readline() == "1\t10\t5\t100\n"
    assert not (home / "movielens-100k" / "ml-100k" / "README").exists()  # members only
    assert (home / "movielens-100k" / "ml-100k.zip").is_file()
    # Removing the extracted file re-extracts from the cached zip, no new download.
    os.remove(path)
    assert datasets.download("movielens-100k", data_home=home) == path
    assert os.path.isfile(path) and len(copies) == 1
    # A zip that fails its checksum raises, naming the set.
    url, _, fname = entry["files"][0]
    entry["files"][0] = (url, "sha256:" + "a" * 64, fname)
    with pytest.raises(ValueError, match="movielens-100k"):
        datasets.download("movielens-100k", data_home=tmp_path / "other")


# -- names, pooch missing -------------------------------------------------------------------------
def test_unknown_name_lists_the_known_ones(tmp_path):
    for call in (datasets.fetch, datasets.download):
        with pytest.raises(ValueError, match="unknown data set 'netflix'") as err:
            call("netflix", data_home=tmp_path)
        for name in ("gowalla", "lastfm", "movielens-100k", "movielens-1m"):
            assert name in str(err.value)
    with pytest.raises(ValueError, match="did you mean 'movielens-1m'"):
        datasets.fetch("movielens-1M", data_home=tmp_path)
    with pytest.raises(TypeError):
        datasets.fetch(None, data_home=tmp_path)
    assert not os.listdir(tmp_path)


def test_missing_pooch_asks_to_install_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pooch", None)
    for call in (datasets.fetch, datasets.download):
        with pytest.raises(ImportError, match=r"pip install 'aprnb\[datasets\]'"):
            call("gowalla", data_home=tmp_path)
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    with pytest.raises(ImportError, match="pooch"):
        datasets.get_data_home()
    assert datasets.get_data_home(tmp_path) == str(tmp_path)   # no pooch needed


def test_registry_entries_are_well_formed():
    lengths = {"sha256": 64, "md5": 32, "git-sha1": 40}
    assert set(datasets.REGISTRY) >= {"gowalla", "lastfm", "movielens-100k", "movielens-1m"}
    for name in ("gowalla", "lastfm", "movielens-100k", "movielens-1m"):
        e = datasets.REGISTRY[name]
        assert e["format"] in {"lightgcn", "lastfm", "ncf", "delimited"}
        assert e["split"] in {"given", "loo", "holdout"}
        for url, known_hash, fname in e["files"]:
            assert url.startswith("https://")
            alg, digest = known_hash.split(":")
            assert len(digest) == lengths[alg] and int(digest, 16) >= 0
            assert os.path.basename(fname) == fname
        if e["unzip"]:
            assert e["path"] in e["unzip"]
    fnames = {n: [f[2] for f in datasets.REGISTRY[n]["files"]] for n in datasets.REGISTRY}
    assert fnames["gowalla"] == ["train.txt", "test.txt"]
    assert fnames["lastfm"] == ["train.tsv", "test.tsv"]
    assert datasets.REGISTRY["movielens-1m"]["kwargs"]["sep"] == "::"
    assert [datasets.REGISTRY[n]["split"] for n in fnames] == ["given", "given", "loo", "loo"]


# -- fetch -> open_dataset -------------------------------------------------------------------------
def test_fetch_forwards_format_split_seed_and_name(tiny, tmp_path, monkeypatch):
    seen = []

    def spy(path, **kw):
        seen.append((path, kw))
        return "dataset"

    monkeypatch.setattr(aprnb.data, "open_dataset", spy, raising=False)
    home = tmp_path / "cache"
    assert datasets.fetch("tiny", data_home=home) == "dataset"
    assert datasets.fetch("tiny", data_home=home, split="holdout", seed=7) == "dataset"
    assert seen[0] == (str(home / "tiny"), dict(format="lightgcn", split="given", seed=0,
                                                name="tiny"))
    assert seen[1][1]["split"] == "holdout" and seen[1][1]["seed"] == 7
    movielens_like(tmp_path, monkeypatch, "movielens-1m")
    datasets.fetch("movielens-1m", data_home=home)
    assert seen[2] == (str(home / "movielens-1m" / "ml-1m" / "ratings.dat"),
                       dict(format="delimited", split="loo", seed=0, name="movielens-1m",
                            sep="::", header=False))


def test_fetch_lightgcn_loads(tiny, tmp_path):
    needs_open_dataset()
    home = tmp_path / "cache"
    ds = datasets.fetch("tiny", data_home=home)
    assert isinstance(ds, aprnb.data.Dataset)
    assert ds.train.shape == ds.test.shape == (3, 5)
    assert ds.train.nnz == 7 and ds.test.nnz == 3
    assert ds.train.multiply(ds.test).nnz == 0
    for f in (tmp_path / "src").iterdir():               # second call: from the cache
        f.unlink()
    again = datasets.fetch("tiny", data_home=home)
    assert (again.train != ds.train).nnz == 0 and (again.test != ds.test).nnz == 0


def test_fetch_with_env_var_loads(tiny, tmp_path, monkeypatch):
    needs_open_dataset()
    monkeypatch.setenv(datasets.ENV_VAR, str(tmp_path / "envcache"))
    ds = datasets.fetch("tiny")
    assert ds.train.nnz == 7 and ds.test.nnz == 3
    assert (tmp_path / "envcache" / "tiny" / "train.txt").is_file()


@pytest.mark.parametrize("name", ["movielens-100k", "movielens-1m"])
def test_fetch_movielens_holds_out_latest_loads(name, tmp_path, monkeypatch, no_env):
    needs_open_dataset()
    movielens_like(tmp_path, monkeypatch, name)
    ds = datasets.fetch(name, data_home=tmp_path / "cache")
    assert ds.train.shape == (3, 5)
    assert ds.train.nnz == len(RATINGS) - 3 and ds.test.nnz == 3
    users = [int(u) for u in ds.user_ids]
    items = [int(i) for i in ds.item_ids]
    for u in range(3):
        (j,) = ds.test.indices[ds.test.indptr[u]:ds.test.indptr[u + 1]]
        assert items[j] == LATEST[users[u]]


# -- the shared real data (skipped when ../shared/data is absent) ---------------------------------
@pytest.mark.realdata
def test_registry_hashes_match_shared_copies(shared_data):
    """The shared Last.fm files and Gowalla test.txt are the upstream files byte for byte."""
    lastfm = datasets.REGISTRY["lastfm"]["files"]
    assert [h.split(":")[1] for _, h, _ in lastfm] == [
        sha256(shared_data / "lastfm" / f) for f in ("train.tsv", "test.tsv")]
    _, test_hash, _ = datasets.REGISTRY["gowalla"]["files"][1]
    assert test_hash.split(":")[1] == sha256(shared_data / "gowalla" / "test.txt")


@pytest.mark.realdata
def test_fetch_lastfm_from_shared_copy_loads(shared_data, tmp_path, monkeypatch, no_env):
    needs_open_dataset()
    real = datasets.REGISTRY["lastfm"]
    files = [((shared_data / "lastfm" / fname).as_uri(), h, fname)
             for _, h, fname in real["files"]]
    monkeypatch.setitem(datasets.REGISTRY, "lastfm", dict(real, files=files))
    ds = datasets.fetch("lastfm", data_home=tmp_path)
    assert (ds.n_users, ds.n_items) == (1892, 4489)
    assert ds.train.nnz == 42135 and ds.test.nnz == 10533
    assert np.all(np.diff(ds.train.indptr) >= 0)
