"""The delimited reader's fast path (numpy's ``np.loadtxt``) against its careful parser.

Issue 15: the careful parser reads 3M lines in seconds; the fast path reads files of
integer ids through ``np.loadtxt`` and must return exactly what the careful parser
returns -- the same arrays (dtype, shape, bytes), id maps and warnings -- or leave the
files to the careful parser, which raises the same errors naming the file and line.
``careful`` below runs the careful parser alone; the public functions try the fast
path first.
"""
import os
import tempfile
import warnings
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aprnb.data import _fast_delimited as FD
from aprnb.data import delimited as DL
from aprnb.data import load_delimited, load_interactions
from checks import write_file
from test_hostile import run_capped

FIELDS = ("users", "items", "values", "timestamps", "user_ids", "item_ids")


# -- running both readers ----------------------------------------------------------------------
def run(call):
    """``("ok", result, warnings)`` or ``("error", type, message, warnings)`` of ``call()``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = ("ok", call())
        except Exception as e:          # noqa: BLE001 -- the outcome is compared
            out = ("error", type(e), str(e))
    return out + ([(w.category, str(w.message), os.path.basename(w.filename))
                   for w in caught],)


def careful(call):
    """:func:`run` with the fast path switched off."""
    with mock.patch.object(DL, "_read_fast", lambda *a, **k: None):
        return run(call)


def spied(call):
    """``(fast path taken, outcome)`` of the public reader."""
    taken, real = [], DL._read_fast

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        taken.append(out is not None)
        return out
    with mock.patch.object(DL, "_read_fast", spy):
        out = run(call)
    return (taken or [False])[0], out


def fast_only(call):
    """:func:`run` with the careful parser made to fail: the fast path must read."""
    def refuse(*args, **kwargs):
        raise AssertionError("the careful parser was called")
    with mock.patch.object(DL, "_read_delimited", refuse):
        return run(call)


def assert_identical(a, b):
    """Two outcomes of :func:`run` are the same, arrays compared by dtype, shape and bytes."""
    assert a[0] == b[0], (a, b)
    assert a[-1] == b[-1], ("warnings differ", a[-1], b[-1])
    if a[0] == "error":
        assert a[1:3] == b[1:3]
        return
    logs_a, logs_b = a[1], b[1]
    if not isinstance(logs_a, list):                     # a Dataset
        for name in ("train", "test"):
            x, y = getattr(logs_a, name), getattr(logs_b, name)
            assert (x is None) == (y is None)
            if x is not None:
                assert x.shape == y.shape and (x != y).nnz == 0
                for attr in ("data", "indices", "indptr"):
                    assert getattr(x, attr).dtype == getattr(y, attr).dtype
        logs_a, logs_b = [logs_a.interactions], [logs_b.interactions]
    assert len(logs_a) == len(logs_b)
    for x, y in zip(logs_a, logs_b):
        for name in FIELDS:
            u, v = getattr(x, name), getattr(y, name)
            assert (u is None) == (v is None), name
            if u is not None:
                assert (u.dtype, u.shape) == (v.dtype, v.shape), name
                assert u.tobytes() == v.tobytes(), (name, u, v)


def both(call):
    """The public and the careful outcome of ``call``, checked identical; the former."""
    public = run(call)
    assert_identical(public, careful(call))
    return public


# -- random files ------------------------------------------------------------------------------
CANONICAL = st.one_of(st.integers(-3, 40), st.integers(0, 10**6),
                      st.integers(-2**63, 2**63 - 1),
                      st.sampled_from([0, 1, 2**63 - 1, -2**63, 10**17, -10**17, 10**18,
                                       10**18 - 1, 999999999999999999])).map(str)
#: Integer ids the careful parser does not read as numbers (or at all), and spellings
#: ``np.loadtxt`` would read as integers: they must never reach it.
ODD_IDS = st.sampled_from(["007", "+7", "-0", "00", "-07", "7.0", "1e3", "1E3", "7.",
                           "12345678901234567890", "-9223372036854775809",
                           "9223372036854775808", "u1", "x", "\u0663", "1_000", '"7"',
                           "'8'", " 7", "0x1f", "7e", "--1", "1-2", "-"])
CLEAN_VALUES = st.one_of(
    st.integers(0, 5).map(str),
    st.floats(0, 1e6, allow_nan=False).map(repr),
    st.sampled_from(["3.2466e+05", "1.4641E+05", ".5", "5.", "0.0", "-0", "-0.0", "+2",
                     "0005", "2.50", "1e-3", "12345678901234567890", "1e308"]))
ODD_VALUES = st.sampled_from(["-1", "-2.5", "nan", "inf", "-inf", "1e999", "abc", "", "1_0",
                              "0x1p3", "NaN", "--1", "1.2.3", "-", "+"])
CLEAN_TIMES = st.one_of(st.integers(-10**12, 10**12).map(str),
                        st.sampled_from(["978300760", "1600000100.5", "1.6e9", "-0", "0"]))
ODD_TIMES = st.sampled_from(["nan", "inf", "1e999", "yesterday", "-inf"])


@st.composite
def log_file(draw, clean):
    """``(text, sep, has_header)``: a random delimited file, the ``sep`` to pass and
    whether its first line names columns (``clean``: only what the fast path must
    read itself)."""
    k = draw(st.sampled_from([2, 3, 4]))
    sep = draw(st.sampled_from(["\t", ",", ";", " ", "|"]))
    nl = draw(st.sampled_from(["\n", "\r\n"]))
    ids = st.sampled_from(draw(st.lists(CANONICAL if clean else st.one_of(CANONICAL, ODD_IDS),
                                        min_size=1, max_size=8)))
    values = CLEAN_VALUES if clean else st.one_of(CLEAN_VALUES, ODD_VALUES)
    times = CLEAN_TIMES if clean else st.one_of(CLEAN_TIMES, ODD_TIMES)
    lines = []
    for _ in range(draw(st.integers(1, 25))):
        fields = [draw(ids), draw(ids)] + [draw(values), draw(times)][:k - 2]
        if not clean and draw(st.integers(0, 9)) == 0:       # a wrong number of fields
            fields = fields[:draw(st.integers(1, 5))] + ["1"] * draw(st.integers(0, 2))
        line = sep.join(fields)
        if sep == " " and not clean and draw(st.booleans()):
            line = line.replace(" ", draw(st.sampled_from(["  ", "\t", " \t "])))
        lines.append(line)
        if draw(st.integers(0, 7)) == 0:
            lines.append(draw(st.sampled_from(["", "   " if not clean else ""])))
    if not clean and draw(st.integers(0, 4)) == 0:          # something only careful reads
        at = draw(st.integers(0, len(lines) - 1))
        lines[at] = draw(st.sampled_from([
            lines[at] + "\r", "\r" + lines[at], lines[at] + sep, sep + lines[at],
            lines[at].replace(sep, " " + sep), "# a comment", lines[at] + " # note",
            '"' + lines[at] + '"', lines[at] + "\x0c", "\u00e9" + lines[at],
            lines[at].replace(sep, sep + sep)]))
    header = draw(st.sampled_from(["none", "strong", "weak"]))
    if header == "strong":
        lines.insert(0, sep.join(["userId", "itemId", "rating", "timestamp"][:k]))
    elif header == "weak":
        lines.insert(0, sep.join(["visitor", "place", "1", "2"][:k]))
    prelude = draw(st.lists(st.sampled_from(["# made by hand", "", "# caf\u00e9 \u00e9t\u00e9",
                                             "  ", "#", "# a\rb" if not clean else "#"]),
                            max_size=3))
    text = nl.join(prelude + lines) + (nl if draw(st.booleans()) else "")
    if draw(st.booleans()):
        text = "\ufeff" + text
    # "auto" finds tab, comma, semicolon and whitespace
    given = sep if sep == "|" else draw(st.sampled_from(["auto", "auto", sep]))
    return text, given, header != "none"


def write_logs(folder, files):
    """Write ``[(text, sep, has_header), ...]``; return the paths and the first file's
    ``sep``."""
    paths = []
    for n, (text, _, _) in enumerate(files):
        path = os.path.join(folder, f"log{n}.txt")
        with open(path, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        paths.append(path)
    return paths, files[0][1]


ARGS = dict(one_based=st.sampled_from([None, None, True, False]),
            header=st.sampled_from(["auto", "auto", True, False]),
            min_value=st.sampled_from([None, None, 0, 1, 2.5, -1]),
            chunk=st.sampled_from([3, 16, 64, FD.CHUNK]))


@settings(max_examples=300, deadline=None)
@given(files=st.lists(log_file(clean=False), min_size=1, max_size=2), **ARGS)
def test_property_fast_path_is_the_careful_parser(files, one_based, header, min_value, chunk):
    """Any file, clean or not: the public reader returns or raises what the careful
    parser does (a small ``CHUNK`` makes lines cross scan chunks)."""
    with tempfile.TemporaryDirectory() as folder, mock.patch.object(FD, "CHUNK", chunk):
        paths, sep = write_logs(folder, files)
        both(lambda: load_interactions(paths, sep=sep, one_based=one_based, header=header,
                                       min_value=min_value))


@settings(max_examples=200, deadline=None)
@given(file=log_file(clean=True), test=st.none() | log_file(clean=True),
       auto=st.booleans(), min_value=st.sampled_from([None, 0, 1, 2.5]),
       chunk=ARGS["chunk"])
def test_property_clean_integer_files_take_the_fast_path(file, test, auto, min_value, chunk):
    """Integer ids, finite non-negative values, any separator, header, comments at the
    top, blank lines, CRLF, a BOM: read by ``np.loadtxt`` alone, and identical."""
    files = [file] if test is None or test[1:] != file[1:] else [file, test]
    header, sep = ("auto" if auto else file[2]), file[1]
    with tempfile.TemporaryDirectory() as folder, mock.patch.object(FD, "CHUNK", chunk):
        paths, _ = write_logs(folder, files)
        call = lambda: load_interactions(paths, sep=sep, header=header,   # noqa: E731
                                         min_value=min_value)
        assert_identical(fast_only(call), careful(call))


# -- the fast path is taken, and only when it may be -------------------------------------------
CLEAN = {
    "tab": "1\t10\n2\t10\n2\t11\n",
    "comma, header, CRLF": "userId,itemId\r\n1,10\r\n2,10\r\n",
    "whitespace, blanks": "  1   10\n\n2\t 11  \n   \n3 12",
    "ratings": "1\t10\t5\n2\t10\t3.5\n2\t11\t0\n",
    "ratings and timestamps": "1;10;4;978300760\n2;10;1.5e0;978300761.5\n",
    "comments and BOM on top": "\ufeff# exported\n\n# caf\u00e9\nuser|item\n7|8\n-7|9\n",
    "extreme ids": f"{2**63 - 1},0\n{-2**63},1\n999999999999999999,2\n"
                   f"1234567890123456789,-100000000000000000\n",
    "long values": "1,2,12345678901234567890\n1,3,1\n",
    "negative zero values": "1,2,-0,5\n1,3,2,-0\n",
}


@pytest.mark.parametrize("name", list(CLEAN))
def test_fast_path_reads_clean_integer_files(tmp_path, name):
    path = write_file(tmp_path / "log.txt", CLEAN[name])
    sep = "|" if "|" in CLEAN[name] else "auto"
    for kw in (dict(), dict(min_value=0)):
        call = lambda: load_interactions(path, sep=sep, **kw)             # noqa: E731
        assert_identical(fast_only(call), careful(call))
    zero_based = lambda: load_delimited(path, sep=sep, one_based=False)   # noqa: E731
    if CLEAN[name].count("-") == 0 and "extreme" not in name:
        assert_identical(fast_only(zero_based), careful(zero_based))


DECLINED = {
    "leading zeros": "007,1\n7,2\n",
    "plus sign": "+7,1\n7,2\n",
    "minus zero id": "-0,1\n0,2\n",
    "float id beside values": "7.0,1,5\n7,2,5\n",
    "exponent id beside values": "1e3,1,5\n1000,2,5\n",
    "20-digit id": "12345678901234567890,1\n1,2\n",
    "id just beyond int64": "9223372036854775808,1\n1,2\n",
    "id just below int64": "-9223372036854775809,1\n1,2\n",
    "string ids": "u1,i1\nu2,i2\n",
    "quoted ids": '"1","2"\n"3","4"\n',
    "lone CR": "1,2\r3,4\n",
    "lone CR in a header": "user,it\rem\n1,2\n",
    "comment mid-file": "1,2\n# note\n3,4\n",
    "blank around a field": "1, 2\n3,4\n",
    "multi-character separator": "1::2\n3::4\n",
    "negative value": "1,2,-1\n3,4,1\n",
    "nan value": "1,2,nan\n3,4,1\n",
    "infinite value": "1,2,1e999\n3,4,1\n",
    "infinite timestamp": "1,2,1,1e999\n3,4,1,5\n",
    "mixed field counts": "1,2\n3,4,5\n",
    "trailing separator": "1\t2\t\n3\t4\t\n",
    "non-ASCII digit": "\u0663,1\n1,2\n",
    "invalid UTF-8 later": None,
    "header only": "user,item\n",
}


@pytest.mark.parametrize("name", list(DECLINED))
def test_fast_path_declines_what_only_the_careful_parser_reads(tmp_path, name):
    """Each of these would make ``np.loadtxt`` conflate ids, misread a line or raise:
    the careful parser reads it (or names the line)."""
    if DECLINED[name] is None:
        path = write_file(tmp_path / "log.txt", b"1,2\n3,4\n5,\xff\n", mode="wb")
    else:
        path = write_file(tmp_path / "log.txt", DECLINED[name])
    sep = "::" if "::" in (DECLINED[name] or "") else "auto"
    taken, got = spied(lambda: load_interactions(path, sep=sep))
    assert not taken
    assert_identical(got, careful(lambda: load_interactions(path, sep=sep)))


@pytest.mark.parametrize("comment", ["%", "1", ("#", "1"), "-", None, ""])
def test_comment_markers_a_data_line_could_start_with(tmp_path, comment):
    """With comment="1" the careful parser skips the lines that start with 1."""
    path = write_file(tmp_path / "log.csv", "% note\n1,2\n10,3\n-5,4\n2,5\n")
    taken, got = spied(lambda: load_interactions(path, comment=comment))
    assert_identical(got, careful(lambda: load_interactions(path, comment=comment)))
    assert taken == (comment == "%")


def test_fast_path_declines_one_based_ids_out_of_range(tmp_path):
    for text, fragment in [("1,5\n0,7\n", "line 2: user id 0 is below the first id 1"),
                           ("1,5\n3000000000,7\n", "line 2: user id 3000000000 is beyond"),
                           ("1,5\n2,1500000000\n", "line 2: item 1499999999 would make")]:
        path = write_file(tmp_path / "log.csv", text)
        taken, got = spied(lambda: load_delimited(path, one_based=True))
        assert not taken and got[0] == "error" and fragment in got[2], got
        assert_identical(got, careful(lambda: load_delimited(path, one_based=True)))


def test_string_ids_and_odd_spellings_stay_distinct(tmp_path):
    """"007" and "7" are two users, sorted as strings, as the careful parser has them."""
    path = write_file(tmp_path / "log.tsv", "".join(f"{k}\t{k % 5}\n" for k in range(500))
                      + "007\t1\n")
    got = both(lambda: load_interactions(path))
    [log] = got[1]
    assert log.user_ids.dtype.kind == "U" and {"7", "007"} <= set(log.user_ids.tolist())
    assert log.item_ids.tolist() == [0, 1, 2, 3, 4]          # items are still integers


# -- errors deep in a big file -----------------------------------------------------------------
BAD_LINE = 1234
BROKEN = [
    ("2 fields", "17", "expected 'user, item[, value][, timestamp]'"),
    ("5 fields", "17\t18\t1\t2\t3", "expected 'user, item[, value][, timestamp]'"),
    ("empty item", "17\t\t1", "expected 'user, item[, value][, timestamp]'"),
    ("value not a number", "17\t18\tabc", "value/timestamp ['abc'] is not a number"),
    ("value not finite", "17\t18\tnan", "value 'nan' is not finite"),
    ("negative value", "17\t18\t-2", "value -2 is negative"),
    ("timestamp not a number", "17\t18\t1\tsoon", "is not a number"),
]


@pytest.mark.parametrize("name,line,fragment", BROKEN, ids=[b[0] for b in BROKEN])
def test_an_error_deep_in_a_big_file_names_its_line(tmp_path, name, line, fragment):
    rng = np.random.default_rng(0)
    k = 4 if "timestamp" in name else 3
    rows = [f"{u}\t{i}\t{v}" + (f"\t{t}" if k == 4 else "")
            for u, i, v, t in zip(rng.integers(0, 500, 5000), rng.integers(0, 300, 5000),
                                  rng.integers(1, 6, 5000), rng.integers(0, 10**9, 5000))]
    rows[BAD_LINE - 1] = line
    path = write_file(tmp_path / "big.tsv", "\n".join(rows) + "\n")
    got = both(lambda: load_interactions(path))
    assert got[0] == "error" and got[1] is ValueError
    assert f"{path}, line {BAD_LINE}: " in got[2] and fragment in got[2], got[2]


def test_one_based_error_deep_in_a_big_file_names_its_line(tmp_path):
    rows = [f"{k % 700 + 1}\t{k % 300 + 1}" for k in range(5000)]
    rows[BAD_LINE - 1] = "0\t5"
    path = write_file(tmp_path / "big.tsv", "\n".join(rows) + "\n")
    got = both(lambda: load_delimited(path, one_based=True))
    assert got[0] == "error" and f"line {BAD_LINE}: user id 0 is below" in got[2]


def test_invalid_utf8_deep_in_a_big_file_names_its_line(tmp_path):
    rows = [f"{k % 700}\t{k % 300}".encode() for k in range(5000)]
    rows[BAD_LINE - 1] = b"12\t\xff"
    path = write_file(tmp_path / "big.tsv", b"\n".join(rows) + b"\n", mode="wb")
    got = both(lambda: load_interactions(path))
    assert got[0] == "error" and f"line {BAD_LINE}: not valid UTF-8" in got[2]


def test_a_big_clean_file_crossing_chunks_is_read_by_the_fast_path(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    u, i = rng.integers(0, 10**6, 20000), rng.integers(-50, 50, 20000)
    path = write_file(tmp_path / "big.csv", "user,item,rating\n"
                      + "".join(f"{a},{b},{(a + b) % 5}\n" for a, b in zip(u, i)))
    monkeypatch.setattr(FD, "CHUNK", 4096)
    got = fast_only(lambda: load_delimited(path, min_value=1))
    assert_identical(got, careful(lambda: load_delimited(path, min_value=1)))
    ds = got[1]
    assert ds.user_ids.tolist() == sorted(set(u.tolist()))
    assert ds.item_ids.dtype == np.int64 and ds.item_ids[0] == -50


def test_weak_header_warning_is_the_careful_one(tmp_path):
    path = write_file(tmp_path / "log.csv", "visitor,place\n1,10\n2,10\n")
    got = fast_only(lambda: load_delimited(path))
    assert_identical(got, careful(lambda: load_delimited(path)))
    assert len(got[-1]) == 1 and "was taken for a header" in got[-1][0][1]


def test_train_and_test_files_share_the_id_map(tmp_path):
    tr = write_file(tmp_path / "tr.tsv", "1\t10\t5\n2\t11\t4\n")
    te = write_file(tmp_path / "te.csv", "userId,itemId\n3,10\n1,12\n")
    got = fast_only(lambda: load_delimited(tr, te))
    assert_identical(got, careful(lambda: load_delimited(tr, te)))
    assert got[1].user_ids.tolist() == [1, 2, 3] and got[1].test.shape == (3, 3)


# -- the id map -----------------------------------------------------------------------------
@settings(max_examples=100, deadline=None)
@given(keys=st.lists(st.one_of(st.integers(-5, 5), st.integers(-2**63, 2**63 - 1),
                               st.integers(0, 10**5)), min_size=1, max_size=60))
def test_property_fast_ids_are_numpy_unique(keys):
    keys = np.asarray(keys, dtype=np.int64)
    idx, ids = DL._fast_ids(keys, None)
    want_ids, want_idx = np.unique(keys, return_inverse=True)
    assert ids.dtype == want_ids.dtype and ids.tobytes() == want_ids.tobytes()
    assert idx.dtype == np.int64 and idx.tobytes() == want_idx.astype(np.int64).tobytes()


def test_sparse_ids_load_without_a_large_table(tmp_path):
    """Mapped ids far apart use a sort, not a table of their span; one_based ids that
    would size a huge index are refused (by the careful parser) before any allocation."""
    (tmp_path / "far.csv").write_text("0,1\n4000000000000000000,2\n-4000000000000000000,1\n")
    (tmp_path / "one.csv").write_text("1,5\n3000000000,7\n")
    out = run_capped("""
        ds = D.load_delimited("far.csv")
        print(json.dumps({"far": ds.user_ids.tolist(),
                          "one": outcome(lambda: D.load_delimited("one.csv", one_based=True))}))
    """, tmp_path)
    assert out["far"] == [-4000000000000000000, 0, 4000000000000000000]
    assert out["one"].startswith("ValueError: ") and "line 2: user id 3000000000" in out["one"]
