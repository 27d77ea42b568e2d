"""Delimited interaction logs: ``user, item[, value][, timestamp]`` with any ids.

Headers are detected (or given), any separator works, values follow the rule of
matrix input (0 is no interaction, a negative value an error, unless
``min_value`` thresholds them), and arbitrary string or integer ids are mapped to
contiguous indices whose raw ids the returned objects keep.

Two readers give the same result. The careful parser (:func:`_read_delimited` and
:func:`_map_ids`) reads any file, line by line in Python, and names the file and
line of the first error. The fast path (:func:`_read_fast`) reads files of integer
ids with a single-character separator through numpy's C ``np.loadtxt``
(:mod:`aprnb.data._fast_delimited`), some 20 times faster; it gives up, and leaves
the files to the careful parser, whenever it cannot be sure of returning what the
careful parser would, and in particular on any error.
"""
import os
import warnings

import numpy as np

from . import _fast_delimited
from ._text import (INDEX_SLACK, MAX_ID, MIN_INDEX, _check_file, _check_index_size, _data_lines,
                    _int_index, _Largest, _lines, _plain_int, _split)
from .dataset import Dataset, Interactions, _binary_csr
from .negatives import _negative_matrix, _read_negatives


def _detect_sep(line):
    if "\t" in line:
        return "\t"
    if "," in line:
        return ","
    if ";" in line:
        return ";"
    return None  # whitespace


#: Column names that mark a first line as a header (compared case-insensitively,
#: with "_", "-" and blanks removed).
HEADER_NAMES = frozenset({
    "user", "users", "userid", "uid", "u", "item", "items", "itemid", "iid", "i", "movieid",
    "movie", "artistid", "artist", "trackid", "track", "productid", "product", "asin",
    "businessid", "bookid", "isbn", "rating", "ratings", "value", "count", "weight",
    "playcount", "listencount", "timestamp", "time", "ts", "date", "negatives", "negative",
    "negativeitems"})


def _is_number(tok):
    try:
        float(tok)
        return True
    except ValueError:
        return False


def _is_int(tok):
    try:
        int(tok)
        return True
    except ValueError:
        return False


def _looks_like_header(first, second):
    """Whether the fields ``first`` of a file's first line name columns (``second``: the
    fields of the next line, or None). Returns ``(bool, weak)``.

    A first line is a header when a value or timestamp field is not a number, or
    when a field is a well-known column name (``userId``, ``item_id``, ``rating``,
    ...). Weaker evidence (``weak=True``): a user or item field made of letters
    only (no digit, so not an id such as ``034545104X``) above an integer one.
    """
    if any(not _is_number(t) for t in first[2:4]):
        return True, False
    if any(t.lower().replace("_", "").replace("-", "").replace(" ", "") in HEADER_NAMES
           for t in first):
        return True, False
    if second is not None and len(second) >= 2:
        weak = any(not any(c.isdigit() for c in a) and not _is_int(a) and _is_int(b)
                   for a, b in zip(first[:2], second[:2]))
        return weak, weak
    return False, False


def _layout(path, first, sep, header):
    """``(sep, header, warning)`` of a file whose first data lines (one or two
    ``(lineno, text)``) are ``first``: the separator and whether the first line is a
    header, resolved from "auto", and the message of the warning that a weakly
    detected header was skipped (None without one)."""
    if sep == "auto":
        sep = _detect_sep(first[0][1])
    warning = None
    if header == "auto":
        header, weak = _looks_like_header(_split(first[0][1], sep),
                                          _split(first[1][1], sep) if len(first) > 1 else None)
        if weak:
            warning = (f"{path}: line {first[0][0]} ({first[0][1][:60]!r}) was taken for a "
                       f"header and skipped; pass header=False (CLI: --header no) if it is "
                       f"data")
    return sep, header, warning


def _read_delimited(path, sep, header, comment):
    """Rows ``(user, item, value, timestamp, lineno)`` of a delimited log.

    ``header`` is True (skip the first line), False (every line is data) or
    "auto" (skip the first line when :func:`_looks_like_header` says it names
    columns).
    """
    lines = list(_data_lines(path, comment))
    if not lines:
        return []
    sep, header, warning = _layout(path, lines[:2], sep, header)
    if warning:
        warnings.warn(warning, UserWarning, stacklevel=5)
    rows = []
    for n, (lineno, s) in enumerate(lines[1:] if header else lines):
        toks = _split(s, sep)
        first = n == 0 and not header
        hint = ("; if the first line is a header, pass header=True (CLI: --header)"
                if first else "")
        if len(toks) < 2 or len(toks) > 4 or not toks[0] or not toks[1]:
            raise ValueError(f"{path}, line {lineno}: expected 'user, item[, value]"
                             f"[, timestamp]' (2 to 4 fields), got {s!r}{hint}")
        val = ts = None
        try:
            if len(toks) >= 3:
                val = float(toks[2])
            if len(toks) == 4:
                ts = float(toks[3])
        except ValueError:
            raise ValueError(f"{path}, line {lineno}: value/timestamp {toks[2:]!r} is not "
                             f"a number (scientific notation such as 3.2e+05 is fine){hint}") \
                from None
        if val is not None and not np.isfinite(val):
            raise ValueError(f"{path}, line {lineno}: value {toks[2]!r} is not finite")
        rows.append((toks[0], toks[1], val, ts, lineno))
    return rows


def _map_ids(tokens, one_based, path_of, what):
    """Contiguous indices for id tokens; returns (index array, original ids)."""
    if one_based is not None:
        offset = 1 if one_based else 0
        idx = np.empty(len(tokens), dtype=np.int64)
        for k, tok in enumerate(tokens):
            v = _plain_int(tok)
            if v is None:
                p, ln = path_of(k)
                raise ValueError(f"{p}, line {ln}: {what} {tok!r} is not an integer; pass "
                                 f"one_based=None to map arbitrary ids")
            if v - offset < 0:
                p, ln = path_of(k)
                raise ValueError(f"{p}, line {ln}: {what} {v} is below the first id "
                                 f"{offset}; check one_based")
            if v - offset > MAX_ID:
                p, ln = path_of(k)
                raise ValueError(f"{p}, line {ln}: {what} {v} is beyond {MAX_ID + offset}, "
                                 f"the largest id aprnb reads as an index; pass "
                                 f"one_based=None to map arbitrary ids")
            idx[k] = v - offset
        if len(idx):
            top = _Largest()
            k = int(np.argmax(idx))
            top.value, top.where = int(idx[k]), path_of(k)
            _check_index_size(top, len(idx), what.split()[0])
        n = int(idx.max()) + 1 if len(idx) else 0
        return idx, np.arange(offset, n + offset)
    # Integer ids are sorted numerically, but only when every token is the
    # canonical spelling of an int64 ("7", not "007", "+7" or "1_000"): otherwise
    # distinct strings could collapse into one id.
    try:
        ints = [int(t) for t in tokens]
        if any(str(v) != t for v, t in zip(ints, tokens)):
            raise ValueError
        keys = np.asarray(ints, dtype=np.int64)
    except (ValueError, OverflowError):
        return _map_strings(tokens, path_of, what)
    ids, idx = np.unique(keys, return_inverse=True)
    return idx.astype(np.int64), ids


def _map_strings(tokens, path_of, what):
    """Sorted unique string ids and the index of each token, through a dict.

    A fixed-width array of the ids costs ``n_ids * longest``; it is refused when
    that is far more than the ids' own length (one very long id among many short
    ones), since a few bytes of input must not cost gigabytes.
    """
    uniq = sorted(set(tokens))
    longest = max(uniq, key=len)
    if len(uniq) * len(longest) > max(2**22, INDEX_SLACK * sum(map(len, uniq))):
        p, ln = path_of(tokens.index(longest))
        raise ValueError(f"{p}, line {ln}: {what} of {len(longest)} characters among "
                         f"{len(uniq)} ids of {sum(map(len, uniq)) // len(uniq)} on average; "
                         f"ids this uneven are refused (check the separator and the quoting)")
    where = {t: k for k, t in enumerate(uniq)}
    idx = np.fromiter((where[t] for t in tokens), dtype=np.int64, count=len(tokens))
    return idx, np.asarray(uniq, dtype=str)


def _check_header(header):
    if not (header == "auto" or isinstance(header, bool)):
        raise TypeError(f"header must be True, False or 'auto', got {header!r}")
    return header


def _keep_rows(vals, rows, path, min_value):
    """Which rows of one file are interactions, by their value field (NaN: no value).

    Without ``min_value`` the rule is that of matrix input: a zero value is no
    interaction (dropped), a negative value is an error. With ``min_value``, rows
    whose value is below it are dropped (e.g. ``min_value=4`` keeps ratings >= 4).
    """
    has = ~np.isnan(vals)
    if min_value is not None:
        return ~has | (vals >= min_value)
    neg = np.flatnonzero(has & (vals < 0))
    if neg.size:
        raise ValueError(f"{path}, line {rows[neg[0]][4]}: value {vals[neg[0]]:g} is negative; "
                         f"a value is read as present (> 0) or absent (0, dropped), as for "
                         f"matrix input. For signed or graded feedback pass min_value= (CLI: "
                         f"--min-value), e.g. min_value=1 keeps values >= 1")
    return ~has | (vals != 0)


# -- the fast path -------------------------------------------------------------------------------
def _head(path, comment):
    """The first two data lines of ``path``, as :func:`_data_lines` reads them, each as
    ``(lineno, text, offset)`` where ``offset`` is the byte at which the line begins.

    None when the careful parser must read the file: it is not UTF-8 (the careful
    parser names the line), or a line read holds a lone CR, which ``np.loadtxt``
    (universal newlines) would count as a line break when it skips lines.
    """
    with open(path, "rb") as fh:
        offset = 3 if fh.read(3) == b"\xef\xbb\xbf" else 0      # _lines drops the BOM
    first = []
    try:
        for lineno, line in _lines(path):
            body = line[:-1] if line.endswith("\n") else line
            if "\r" in (body[:-1] if body.endswith("\r") else body):
                return None
            s = line.strip()
            if s and not (comment and s.startswith(comment)):
                first.append((lineno, s, offset))
                if len(first) == 2:
                    break
            offset += len(line.encode("utf-8"))
    except ValueError:
        return None
    return first


def _fast_ids(keys, one_based):
    """``(index array, original ids)`` of the int64 ids ``keys``, as :func:`_map_ids`
    maps their canonical spellings; None where it would raise (ids out of range for
    ``one_based``).

    With ``one_based=None`` the result is that of ``np.unique(keys,
    return_inverse=True)``; when the ids span at most ``max(MIN_INDEX, 2 * len(keys))``
    values it is computed through a table of that span rather than a sort.
    """
    lo, hi = int(keys.min()), int(keys.max())
    if one_based is not None:
        offset = int(one_based)
        if lo < offset or hi - offset > MAX_ID or hi - offset + 1 > max(
                MIN_INDEX, INDEX_SLACK * len(keys)):
            return None
        return np.subtract(keys, offset, dtype=np.int64), np.arange(offset, hi + 1)
    span = hi - lo + 1
    if span > max(MIN_INDEX, 2 * len(keys)):
        ids, idx = np.unique(keys, return_inverse=True)
        return idx.astype(np.int64), ids
    shifted = np.subtract(keys, lo, dtype=np.int64)
    present = np.zeros(span, dtype=bool)
    present[shifted] = True
    ids = np.flatnonzero(present).astype(np.int64)
    ids += lo
    # an int32 table when the int64 one would outweigh the index array
    rank = np.cumsum(present, dtype=np.int64 if span <= len(keys) or span >= 2**31
                     else np.int32)
    rank -= 1
    return rank[shifted].astype(np.int64, copy=False), ids


def _read_fast(paths, sep, one_based, header, comment, min_value):
    """What :func:`_read_logs` returns, read through ``np.loadtxt``, as
    ``(interactions, warnings)``; None when the careful parser must read the files.

    The first lines (comments, header, separator, number of fields) are read as the
    careful parser reads them; :func:`aprnb.data._fast_delimited.read_body` reads the
    rest, or declines. Anything the careful parser would refuse (an id out of range
    for ``one_based``, a negative or non-finite value) is left to it, so that it names
    the line; so are non-finite timestamps.
    """
    files, notes = [], []
    for path in paths:
        first = _head(path, comment)
        if not first:
            return None
        sep_, header_, note = _layout(path, first, sep, header)
        if header_ and len(first) < 2:
            return None
        lineno, text, offset = first[1] if header_ else first[0]
        k = len(_split(text, sep_))
        if not _fast_delimited.fast_separator(sep_):
            return None
        if comment and not (isinstance(comment, str) and comment[0] not in
                            _fast_delimited.allowed_bytes(sep_, k).decode()):
            return None          # a data line might start with the comment marker
        cols = _fast_delimited.read_body(path, offset, lineno, sep_, k)
        if cols is None:
            return None
        files.append(cols)
        notes.append(note)
    mapped = []
    for j in (0, 1):
        keys = files[0][j] if len(files) == 1 else np.concatenate([f[j] for f in files])
        mapped.append(_fast_ids(keys, one_based))
        if mapped[-1] is None:
            return None
    (uidx, uids), (iidx, iids) = mapped
    out, start = [], 0
    for path, (users, _, vals, tss) in zip(paths, files):
        sl = slice(start, start + len(users))
        start += len(users)
        if vals is None:                 # no value field: every row is an interaction
            users, items = ((uidx, iidx) if len(files) == 1
                            else (uidx[sl].copy(), iidx[sl].copy()))
            out.append(Interactions(users=users, items=items, values=None, timestamps=None,
                                    user_ids=uids, item_ids=iids))
            continue
        if not np.isfinite(vals).all() or (min_value is None and (vals < 0).any()) or (
                tss is not None and not np.isfinite(tss).all()):
            return None
        keep = _keep_rows(vals, None, path, min_value)
        vals = vals[keep]
        tss = tss[keep] if tss is not None else None
        out.append(Interactions(users=uidx[sl][keep], items=iidx[sl][keep],
                                values=None if np.isnan(vals).all() else vals,
                                timestamps=None if tss is None or np.isnan(tss).all() else tss,
                                user_ids=uids, item_ids=iids))
    return out, [n for n in notes if n]


def _read_logs(paths, sep, one_based, header, comment, min_value=None):
    """Parse delimited files and map their ids to one shared index."""
    if min_value is not None and (isinstance(min_value, bool) or not isinstance(
            min_value, (int, float, np.integer, np.floating)) or not np.isfinite(min_value)):
        raise TypeError(f"min_value must be None or a finite number, got {min_value!r}")
    if not (one_based is None or isinstance(one_based, bool)):
        raise TypeError(f"one_based must be None, True or False, got {one_based!r}")
    header = _check_header(header)
    if not (sep is None or isinstance(sep, str)) or sep == "":
        raise TypeError(f"sep must be a non-empty string, None (whitespace) or 'auto', "
                        f"got {sep!r}")
    paths = [_check_file(p) for p in paths]    # every path exists before any is parsed
    fast = _read_fast(paths, sep, one_based, header, comment, min_value)
    if fast is not None:
        out, notes = fast
        for note in notes:      # stacklevel: as _read_delimited's warning, one frame deeper
            warnings.warn(note, UserWarning, stacklevel=4)
        return out
    # the careful parser: any file, and the file and line of the first error
    rows, where = [], []
    for p in paths:
        r = _read_delimited(p, sep, header, comment)
        if not r:
            raise ValueError(f"{p}: no interactions found (empty file or only comments)")
        rows.append(r)
        where.extend((p, x[4]) for x in r)
    flat = [x for r in rows for x in r]
    uidx, uids = _map_ids([x[0] for x in flat], one_based, lambda k: where[k], "user id")
    iidx, iids = _map_ids([x[1] for x in flat], one_based, lambda k: where[k], "item id")
    out, start = [], 0
    for p, r in zip(paths, rows):
        sl = slice(start, start + len(r))
        start += len(r)
        vals = np.array([np.nan if x[2] is None else x[2] for x in r], dtype=np.float64)
        tss = np.array([np.nan if x[3] is None else x[3] for x in r], dtype=np.float64)
        keep = _keep_rows(vals, r, p, min_value)
        vals, tss = vals[keep], tss[keep]
        out.append(Interactions(users=uidx[sl][keep], items=iidx[sl][keep],
                                values=None if np.isnan(vals).all() else vals,
                                timestamps=None if np.isnan(tss).all() else tss,
                                user_ids=uids, item_ids=iids))
    return out


def load_interactions(paths, sep="auto", one_based=None, header="auto", comment="#",
                      min_value=None):
    """Read one or more delimited files ``user, item[, value][, timestamp]``.

    Parameters
    ----------
    paths : str, os.PathLike or list of them
        Files that share one id space (e.g. a train file and a test file).
    sep : str or None or "auto"
        Field separator (several characters, such as ``"::"``, are fine);
        ``None`` splits on whitespace; ``"auto"`` picks tab, comma, semicolon or
        whitespace from the first line. A field in double quotes is unquoted.
    one_based : bool or None
        ``None`` (default) maps arbitrary string or integer ids to contiguous
        indices (sorted by id). ``True``/``False`` reads integer ids as
        1-based/0-based indices directly.
    header : True, False or "auto"
        Skip the first non-comment line of each file (True), never (False), or
        when it names columns ("auto", the default): a non-numeric value or
        timestamp field, a well-known column name such as ``userId`` or
        ``rating``, or a non-integer user/item field above integer ones. With
        string ids whose first line uses none of those names, pass True.
    comment : str
        Lines starting with it are skipped.
    min_value : float, optional
        Without it, a value field is read as matrix input is: a row with value 0
        is no interaction (dropped), a negative value is an error. With it, rows
        whose value is below ``min_value`` are dropped (``min_value=4`` keeps
        ratings of 4 and 5). Rows without a value field are always interactions.
        Dropped rows still name their user and item in the id maps.

    Returns
    -------
    list of Interactions
        One per file, sharing ``user_ids`` and ``item_ids``.
    """
    single = isinstance(paths, (str, os.PathLike))
    paths = [paths] if single else list(paths)
    if not paths:
        raise ValueError("paths is empty; pass at least one file")
    return _read_logs(paths, sep, one_based, header, comment, min_value)


def _token_index(ids, one_based):
    """Raw-token -> index lookup over a dataset's id map (None if unknown)."""
    if one_based is not None:
        return _int_index(len(ids), int(one_based))
    table = {str(v): k for k, v in enumerate(ids.tolist())}
    return table.get


def load_delimited(train_path, test_path=None, sep="auto", one_based=None, header="auto",
                   name=None, negatives_path=None, min_value=None):
    """Load a train (and optional test and negatives) delimited file into a :class:`Dataset`.

    See :func:`load_interactions` for the format. With no ``test_path``, ``test``
    is None and ``interactions`` keeps the raw log (with timestamps when present)
    for :func:`aprnb.data.leave_one_out`. ``negatives_path`` (needs a test file)
    holds sampled-protocol negatives, in the NCF form ``(user,item)<TAB>j1<TAB>...``
    or the CSV form ``user,"[j1, j2, ...]"``, written with the files' raw ids. Every
    negative must be an item of the train or test file, spelled as there: an
    unknown one (``7`` for ``007``, ``7.0`` for ``7``) is refused rather than
    added as an item no model has seen. Its header line, if any, is detected on
    its own (``header`` applies to the train and test files).
    """
    paths = [train_path] if test_path is None else [train_path, test_path]
    neg_rows = None
    if negatives_path is not None:
        if test_path is None:
            raise ValueError("negatives need a test file: pass test_path (CLI: --test) too")
        negatives_path = _check_file(negatives_path)
        neg_rows = _read_negatives(negatives_path)
    logs = _read_logs(paths, sep, one_based, header, "#", min_value)
    shape = (logs[0].n_users, logs[0].n_items)
    train = _binary_csr(logs[0].users, logs[0].items, shape)
    test = _binary_csr(logs[1].users, logs[1].items, shape) if test_path is not None else None
    negatives = None
    if neg_rows:
        negatives = _negative_matrix(neg_rows, negatives_path,
                                     _token_index(logs[0].user_ids, one_based),
                                     _token_index(logs[0].item_ids, one_based), test)
    return Dataset(train=train, test=test, negatives=negatives, user_ids=logs[0].user_ids,
                   item_ids=logs[0].item_ids, interactions=logs[0],
                   name=name or os.path.splitext(os.path.basename(os.fspath(train_path)))[0])
