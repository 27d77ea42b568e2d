"""Hostile files, absurd sizes and misuse, each run in a subprocess under a memory cap.

Every case runs in a fresh ``python`` whose address space is capped at
:data:`CAP` (``resource.setrlimit(RLIMIT_AS)``) and which is killed after
:data:`TIMEOUT` seconds, so that a regression (an allocation sized by a forged
number, a zip bomb inflated) shows up as a failed test, not as a dead machine.
A case passes when the library raises the exception type the contract names,
with a message that names the file (and line) or says what to change, and
nothing else escapes: no MemoryError, no zlib.error, no RecursionError.
"""
import io
import json
import os
import random
import resource
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp

import aprnb

CAP = 1 << 30          # 1 GiB of address space: numba, numpy and scipy fit in it
TIMEOUT = 120

PRELUDE = textwrap.dedent("""
    import json, sys
    import numpy as np, scipy.sparse as sp
    import aprnb, aprnb.data as D

    def outcome(f):
        try:
            f()
            return "ok"
        except BaseException as e:      # the test decides what is acceptable
            return f"{type(e).__name__}: {e}"
""")


def _cap():
    resource.setrlimit(resource.RLIMIT_AS, (CAP, CAP))


def run_capped(body, cwd):
    """Run ``PRELUDE + body`` under the cap; ``body`` prints one JSON object of outcomes."""
    env = dict(os.environ, NUMBA_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(body)],
                          preexec_fn=_cap, capture_output=True, text=True, timeout=TIMEOUT,
                          cwd=cwd, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def assert_outcomes(outcomes, expected):
    """``expected``: case -> (exception type name, message fragment)."""
    assert set(outcomes) == set(expected)
    for case, (exc, fragment) in expected.items():
        got = outcomes[case]
        assert got.startswith(exc + ":") and fragment in got, (case, got)


# ---------------------------------------------------------------------------------------
# 1. ids that would size an index: refused before any allocation
# ---------------------------------------------------------------------------------------
def test_forged_ids_in_data_files(tmp_path):
    def write(name, text):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)

    write("lg1/train.txt", "100000000000 1\n")          # 16 bytes: 745 GiB of index
    write("lg1/test.txt", "0 1\n")
    write("lg2/train.txt", "0 2147483653\n")             # beyond int32
    write("lg2/test.txt", "0 1\n")
    write("lg3/train.txt", "0 1\n1 2000000000\n")        # within int32, absurd for the file
    write("lg3/test.txt", "0 2\n")
    write("n1.train.rating", "0\t1\t5\t1\n")
    write("n1.test.rating", "99999999999\t1\t5\t1\n")
    write("n2.train.rating", "0\t1\t5\t1\n1\t2\t5\t1\n")
    write("n2.test.rating", "0\t2\t5\t1\n")
    write("n2.test.negative", "(0,2)\t3\t2147483000\n")
    write("n3.train.rating", "65535\t0\t1\t0\n0\t0\t1\t0\n")
    write("n3.test.rating", "0\t1\t1\t0\n")
    write("n3.test.negative", "(0,1)\t" + "\t".join(["0"] * 5000) + "\n")
    write("lg4/train.txt", "0 \u0663 1\n")           # int() reads Arabic-Indic digits
    write("lg4/test.txt", "0 2\n")
    write("long.csv", "".join(f"u{k},i{k % 7}\n" for k in range(20000)) + "x" * 20000
          + ",i1\n")                                     # 1.5 GB as a fixed-width array
    write("one.csv", "1,5\n3000000000,7\n")
    write("one2.csv", "1,5\n2,1500000000\n")
    out = run_capped("""
        print(json.dumps({
            "lightgcn user 1e11": outcome(lambda: D.load_lightgcn("lg1")),
            "lightgcn item > int32": outcome(lambda: D.load_lightgcn("lg2")),
            "lightgcn item 2e9": outcome(lambda: D.load_lightgcn("lg3")),
            "ncf test user 1e11": outcome(lambda: D.load_ncf("n1")),
            "ncf negative 2.1e9": outcome(lambda: D.load_ncf("n2")),
            "one_based user 3e9": outcome(lambda: D.load_delimited("one.csv", one_based=True)),
            "one_based item 1.5e9": outcome(
                lambda: D.load_delimited("one2.csv", one_based=False)),
            "open_dataset": outcome(lambda: D.open_dataset("lg3")),
            "ncf one long negative list": outcome(lambda: D.load_ncf("n3")),
            "non-ASCII digits": outcome(lambda: D.load_lightgcn("lg4")),
            "one very long string id": outcome(lambda: D.load_delimited("long.csv")),
        }))
    """, tmp_path)
    assert_outcomes(out, {
        "lightgcn user 1e11": ("ValueError", "lg1/train.txt, line 1: user id 100000000000 is "
                                             "beyond 2147483646"),
        "lightgcn item > int32": ("ValueError", "lg2/train.txt, line 1: item id 2147483653"),
        "lightgcn item 2e9": ("ValueError", "lg3/train.txt, line 2: item 2000000000 would make "
                                            "an index"),
        "ncf test user 1e11": ("ValueError", "n1.test.rating, line 1"),
        "ncf negative 2.1e9": ("ValueError", "n2.test.negative, line 1: item 2147483000"),
        "one_based user 3e9": ("ValueError", "one.csv, line 2: user id 3000000000 is beyond"),
        "one_based item 1.5e9": ("ValueError", "one2.csv, line 2: item 1500000000 would make"),
        "open_dataset": ("ValueError", "would make an index"),
        "ncf one long negative list": ("ValueError", "n3.test.negative: negative lists of up "
                                                     "to 5000 items"),
        "non-ASCII digits": ("ValueError", "lg4/train.txt, line 1: item id '\u0663' is not an "
                                           "integer"),
        "one very long string id": ("ValueError", "long.csv, line 20001: user id of 20000 "
                                                  "characters"),
    })


def test_a_real_sized_index_is_accepted(tmp_path):
    """The cap is about ids the file cannot justify, not about large data: ids up to
    INDEX_SLACK times the number of ids (or MIN_INDEX = 65536) are fine."""
    (tmp_path / "train.txt").write_text("0 1 2\n60000 3\n")
    (tmp_path / "test.txt").write_text("0 3\n")
    ds = aprnb.data.load_lightgcn(tmp_path)
    assert ds.n_users == 60001


# ---------------------------------------------------------------------------------------
# 2. model files: fuzzed, truncated, forged, bombs, foreign members
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def good_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    (folder / "tr.csv").write_text("u,i\n" + "".join(f"u{u},i{(u * 3 + k) % 9}\n"
                                                     for u in range(12) for k in range(3)))
    (folder / "te.csv").write_text("u,i\n" + "".join(f"u{u},i{(u * 3 + 4) % 9}\n"
                                                     for u in range(12)))
    ds = aprnb.data.open_dataset(folder / "tr.csv", test=folder / "te.csv")
    aprnb.APR(factors=4, epochs=2, n_threads=1, random_state=0,
              show_progress=False).fit(ds).save(folder / "good.npz")
    return folder / "good.npz"


def _members(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _npy(array_header, payload=b""):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, array_header)
    return buf.getvalue() + payload


def _zip(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _bomb(path, name, shape=(300_000, 1024)):
    """A real zip bomb: a deflated ``.npy`` member of ~1.2 GB of zeros in ~5 MB."""
    header = _npy({"descr": "<f4", "fortran_order": False, "shape": shape})
    total = int(np.prod(shape)) * 4
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open(name, "w", force_zip64=True) as fh:
            fh.write(header)
            block = bytes(1 << 24)
            for _ in range(total // len(block)):
                fh.write(block)
            fh.write(bytes(total % len(block)))
    return path


@pytest.fixture(scope="module")
def hostile_files(good_model, tmp_path_factory):
    """name -> path of a model file that must be refused with a ValueError."""
    d = tmp_path_factory.mktemp("hostile")
    raw = good_model.read_bytes()
    members = _members(good_model)
    files = {}

    def variant(name, **changes):
        arrays = dict(members)
        for k, v in changes.items():
            if v is None:
                arrays.pop(k)
            else:
                arrays[k] = v
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        files[name] = d / f"{name}.npz"
        files[name].write_bytes(buf.getvalue())

    for cut in (0, 1, 22, len(raw) // 3, len(raw) // 2, len(raw) - 23, len(raw) - 1):
        files[f"truncated at {cut}"] = d / f"cut{cut}.npz"
        files[f"truncated at {cut}"].write_bytes(raw[:cut])
    files["not a zip"] = d / "text.npz"
    files["not a zip"].write_text("user,item\n1,2\n")
    # a header declaring a (10^6, 10^6) array in a file of a few KB
    buf = io.BytesIO()
    np.savez(buf, **members)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zf:
        stored = {n: zf.read(n) for n in zf.namelist()}
    big = dict(stored)
    big["user_factors.npy"] = _npy({"descr": "<f4", "fortran_order": False,
                                    "shape": (10**6, 10**6)},
                                   members["user_factors"].tobytes())
    files["forged shape"] = _zip(d / "forged.npz", big)
    files["bomb in a known member"] = _bomb(_zip(d / "bomb.npz", {
        n: v for n, v in stored.items() if n != "user_factors.npy"}), "user_factors.npy")
    bz = d / "bz2.npz"                  # bzip2 inflates whole blocks, whatever is declared
    with zipfile.ZipFile(bz, "w", compression=zipfile.ZIP_BZIP2) as zf:
        for n, v in stored.items():
            zf.writestr(n, v)
    files["bzip2 member"] = bz
    obj = dict(stored)
    obj["params.npy"] = _npy({"descr": "|O", "fortran_order": False, "shape": (1,)}, b"\0" * 8)
    files["object header"] = _zip(d / "object.npz", obj)
    deep = "[" * 100_000 + "]" * 100_000
    variant("deeply nested params", params=np.array(deep))
    variant("deeply nested provenance", provenance=np.array(deep))
    variant("history not JSON", history=np.array("{" * 10))
    variant("zero user rows", user_factors=members["user_factors"][:0])
    variant("zero item rows", item_factors=members["item_factors"][:0],
            opt_items=members["opt_items"][:0])
    shifted = sp.csr_matrix((np.ones(len(members["train_indices"])),
                             (members["train_indices"] + 1) % 9, members["train_indptr"]),
                            shape=(12, 9))
    shifted.sort_indices()              # sound, but not the matrix the fingerprint names
    variant("provenance tampered", train_indices=shifted.indices)
    variant("unsorted training rows", train_indices=(members["train_indices"] + 1) % 9)
    variant("unsigned row pointers that go back", train_indptr=np.array(
        [0, 1000000] + [2] * 10 + [len(members["train_indices"])], dtype=np.uint64))
    variant("provenance: seen not a list", provenance=np.array(json.dumps(
        {"train_fingerprint": "x", "seen": 5})))
    variant("provenance: split not a mapping", provenance=np.array(json.dumps(
        {"train_fingerprint": "x", "split": "abc"})))
    variant("ids not distinct", item_ids=np.full(9, -1))
    variant("ids of another length", user_ids=members["user_ids"][:3])
    variant("class not a string", **{"class": np.arange(3)})
    return files


def test_hostile_model_files_are_valueerrors(hostile_files, tmp_path):
    names = sorted(hostile_files)
    body = "paths = " + repr({n: str(hostile_files[n]) for n in names}) + """
print(json.dumps({n: outcome(lambda p=p: aprnb.load(p)) for n, p in paths.items()}))
"""
    out = run_capped(body, tmp_path)
    for name in names:
        got = out[name]
        assert got.startswith("ValueError: ") and str(hostile_files[name]) in got, (name, got)
    # the specific checks, not only a fallback, caught these
    assert "declares shape (1000000, 1000000)" in out["forged shape"]
    assert "claims to inflate" in out["bomb in a known member"]
    assert "object array" in out["object header"]
    assert "unsupported compression method 12" in out["bzip2 member"]
    for name in ("deeply nested params", "deeply nested provenance"):
        assert "nested deeper than 32" in out[name], out[name]
    assert "do not match their recorded fingerprint" in out["provenance tampered"]
    assert "corrupted factor tables" in out["zero user rows"]


def test_foreign_and_bomb_members_are_never_read(good_model, tmp_path):
    path = tmp_path / "extra.npz"
    path.write_bytes(good_model.read_bytes())
    _bomb(path, "extra_bomb.npy")
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("notes.txt", b"hello")
        zf.writestr("payload.npy", _npy({"descr": "|O", "fortran_order": False,
                                         "shape": (1,)}, b"\x80\x04K\x01."))
    out = run_capped(f"""
        m = []
        r = outcome(lambda: m.append(aprnb.load({str(path)!r})))
        print(json.dumps({{"load": r, "users": int(m[0].n_users_) if m else -1}}))
    """, tmp_path)
    assert out == {"load": "ok", "users": 12}


@pytest.mark.parametrize("seed", range(4))
def test_fuzzed_model_files_load_or_are_valueerrors(good_model, tmp_path, seed):
    """Random byte flips anywhere in a model file: each file either loads (a flip in the
    data of a factor table gives another valid model) or raises ValueError."""
    raw = bytearray(good_model.read_bytes())
    rng = random.Random(seed)
    paths = []
    for n in range(40):
        data = bytearray(raw)
        for _ in range(rng.choice([1, 2, 8])):
            data[rng.randrange(len(data))] = rng.randrange(256)
        p = tmp_path / f"fuzz{n}.npz"
        p.write_bytes(bytes(data))
        paths.append(str(p))
    out = run_capped(f"""
        paths = {paths!r}
        print(json.dumps({{p: outcome(lambda p=p: aprnb.load(p)) for p in paths}}))
    """, tmp_path)
    for p, got in out.items():
        assert got == "ok" or (got.startswith("ValueError: ") and p in got), (p, got)


def test_missing_model_file_stays_filenotfounderror(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        aprnb.load(tmp_path / "nope.npz")


# ---------------------------------------------------------------------------------------
# 3. permissions of saved models
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_save_honours_the_umask(good_model, tmp_path, umask, mode):
    model = aprnb.load(good_model)
    old = os.umask(umask)
    try:
        model.save(tmp_path / "m.npz")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "m.npz").st_mode & 0o777 == mode
    assert os.listdir(tmp_path) == ["m.npz"]


def test_overwrite_keeps_the_existing_mode(good_model, tmp_path):
    target = tmp_path / "m.npz"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    old = os.umask(0o077)
    try:
        aprnb.load(good_model).save(target)
    finally:
        os.umask(old)
    assert os.stat(target).st_mode & 0o777 == 0o640
    assert aprnb.load(target).n_users_ == 12


def test_save_follows_a_symlink_and_refuses_special_files(good_model, tmp_path):
    model = aprnb.load(good_model)
    (tmp_path / "store").mkdir()
    real = tmp_path / "store" / "real.npz"
    real.write_bytes(b"old")
    os.symlink(real, tmp_path / "link.npz")
    model.save(tmp_path / "link.npz")
    assert os.path.islink(tmp_path / "link.npz") and aprnb.load(real).n_users_ == 12
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ValueError, match="fifo: not a regular file"):
        model.save(tmp_path / "fifo")
    assert sorted(os.listdir(tmp_path)) == ["fifo", "link.npz", "store"]


def test_save_into_a_missing_folder_is_an_oserror(good_model, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; create it first"):
        aprnb.load(good_model).save(tmp_path / "no" / "m.npz")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------------
# 4. misuse of evaluation, 8. degenerate parameters: refused before any allocation
# ---------------------------------------------------------------------------------------
def test_absurd_sizes_and_misuse(tmp_path):
    out = run_capped("""
        rng = np.random.default_rng(0)
        X = sp.csr_matrix((rng.random((50, 40)) < 0.2).astype(np.float32))
        train, test = D.leave_one_out(X, random_state=0)
        P, Q = rng.standard_normal((50, 4)), rng.standard_normal((40, 4))
        m = aprnb.BPR(factors=4, epochs=1, n_threads=1, show_progress=False).fit(train)
        print(json.dumps({
            "evaluate k=1e7": outcome(lambda: aprnb.evaluate((P, Q), train, test, k=[10**7])),
            "evaluate k=2**70": outcome(lambda: aprnb.evaluate((P, Q), train, test, k=2**70)),
            "robustness k=2**70": outcome(lambda: aprnb.robustness((P, Q), train, test,
                                                                   k=2**70)),
            "validation_k=5000": outcome(lambda: aprnb.BPR(epochs=1, show_progress=False).fit(
                train, callback=aprnb.Validation(test, k=5000))),
            "recommend k=1e7": outcome(lambda: m.recommend([0], k=10**7)),
            "users repeated": outcome(
                lambda: aprnb.evaluate((P, Q), train, test, users=[0, 0, 0, 1])),
            "test is train": outcome(lambda: aprnb.evaluate((P, Q), train, train)),
            "test is train, model": outcome(lambda: aprnb.evaluate(m, train, train)),
            "batch_size 1e12": outcome(lambda: aprnb.APR(
                batch_size=10**12, epochs=1, show_progress=False).fit(train)),
            "init_std 0": outcome(lambda: aprnb.BPR(
                init_std=0.0, epochs=1, show_progress=False).fit(train)),
        }))
    """, tmp_path)
    assert_outcomes(out, {
        "evaluate k=1e7": ("ValueError", "k=10000000 is far larger than the number of items"),
        "recommend k=1e7": ("ValueError", "k=10000000 is far larger"),
        "evaluate k=2**70": ("ValueError", "is far larger than the number of items"),
        "robustness k=2**70": ("ValueError", "is far larger than the number of items"),
        "validation_k=5000": ("ValueError", "Validation k=5000 is far larger"),
        "users repeated": ("ValueError", "users repeats [0]"),
        "test is train": ("ValueError", "test interactions are also training interactions"),
        "test is train, model": ("ValueError", "are ones this BPR was trained on"),
        "batch_size 1e12": ("ValueError", "batch_size=1000000000000 exceeds the"),
        "init_std 0": ("ValueError", "init_std=0 starts every factor at zero"),
    })


def test_partial_overlap_of_test_and_train_warns():
    rng = np.random.default_rng(1)
    X = (rng.random((30, 20)) < 0.3).astype(np.float32)
    train, test = aprnb.data.leave_one_out(X, random_state=0)
    u, i = 0, train.indices[train.indptr[0]]            # one training pair into test
    test = (test + sp.csr_matrix(([1.0], ([u], [i])), shape=X.shape)).tocsr()
    P, Q = rng.standard_normal((30, 3)), rng.standard_normal((20, 3))
    with pytest.warns(RuntimeWarning, match="test interactions are also training"):
        aprnb.evaluate((P, Q), train, test, k=[5])
    aprnb.evaluate((P, Q), train, test, k=[5], exclude_train=False)      # no warning needed


# ---------------------------------------------------------------------------------------
# 6. the CLI under the cap: one line on stderr, 2 for usage errors, 1 for failures
# ---------------------------------------------------------------------------------------
def _cli(args, cwd):
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "aprnb", *map(str, args)], cwd=cwd,
                          preexec_fn=_cap, capture_output=True, text=True, timeout=TIMEOUT,
                          env=env)


def test_cli_errors_are_one_line_with_the_right_exit_code(tmp_path, good_model):
    (tmp_path / "lg").mkdir()
    (tmp_path / "lg" / "train.txt").write_text("100000000000 1\n")
    (tmp_path / "lg" / "test.txt").write_text("0 1\n")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04garbage")
    cases = [
        (["train", "--data", tmp_path / "lg", "--out", tmp_path / "m.npz"], 2, "beyond"),
        (["train", "--data", tmp_path / "missing", "--out", tmp_path / "m.npz"], 1,
         "missing does not exist"),
        (["train", "--epochs", "x", "--out", "m.npz"], 2, "invalid int value: 'x'"),
        (["train"], 2, "the following arguments are required: --out"),
        (["evaluate", "--model", tmp_path / "bad.npz"], 2, "not a readable aprnb model file"),
        (["evaluate", "--model", tmp_path / "none.npz"], 1, "none.npz does not exist"),
        (["recommend", "--model", good_model, "--users", "u1", "--k", "100000000"], 2,
         "k=100000000 is far larger"),
        (["train", "--data", tmp_path / "lg", "--out", tmp_path / "no" / "m.npz"], 1,
         "does not exist; create it first"),
        (["evaluate", "--model", good_model, "--k", "99999999999999999999999"], 2,
         "is far larger than the number of items"),
        (["train", "--data", good_model.parent / "tr.csv", "--split", "loo", "--k", "5000",
          "--out", tmp_path / "m.npz"], 2, "--k=5000 is far larger"),
    ]
    for args, code, fragment in cases:
        proc = _cli(args, tmp_path)
        assert proc.returncode == code, (args, proc.returncode, proc.stderr)
        assert proc.stderr.count("\n") == 1 and fragment in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert sorted(os.listdir(tmp_path)) == ["bad.npz", "lg"]


def test_cli_memory_error_is_one_line(monkeypatch, capsys, tmp_path):
    from aprnb.cli import main

    def boom(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(aprnb.data, "open_dataset", boom)
    code = main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "m.npz")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "out of memory" in err
