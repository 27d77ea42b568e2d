"""Readers for the file formats BPR/APR users actually have.

* :func:`load_lightgcn` -- NGCF/LightGCN ``train.txt``/``test.txt``: ``user item item ...``.
* :func:`load_ncf` -- the official APR/NCF files ``<prefix>.train.rating``,
  ``<prefix>.test.rating`` and optional ``<prefix>.test.negative``.
* :func:`load_interactions` / :func:`load_delimited` -- generic delimited
  ``user, item[, value][, timestamp]`` with arbitrary string or integer ids.

Every reader raises ``ValueError`` naming the file and the 1-based line number
of the first malformed line.
"""
import os
import re
import warnings
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import scipy.sparse as sp


@dataclass
class Dataset:
    """A train/test pair over one user and item index.

    Attributes
    ----------
    train, test : scipy.sparse.csr_matrix of shape (n_users, n_items)
        Binary interaction matrices (``test`` may be None).
    negatives : ndarray of int, shape (n_users, n_neg), optional
        Sampled-protocol negatives per user (-1 padding for users without).
    user_ids, item_ids : ndarray
        Original id of each contiguous index.
    name : str
    split : dict, optional
        How the data was opened and split (the keyword arguments of
        :func:`aprnb.data.open_dataset`); None for data built by hand.
    """
    train: sp.csr_matrix
    test: Optional[sp.csr_matrix] = None
    negatives: Optional[np.ndarray] = None
    user_ids: Optional[np.ndarray] = None
    item_ids: Optional[np.ndarray] = None
    name: str = ""
    interactions: Optional["Interactions"] = field(default=None, repr=False)
    split: Optional[dict] = field(default=None, repr=False)

    @property
    def n_users(self):
        return self.train.shape[0]

    @property
    def n_items(self):
        return self.train.shape[1]

    def __repr__(self):
        t = self.test.nnz if self.test is not None else 0
        return (f"Dataset({self.name!r}: {self.n_users} users, {self.n_items} items, "
                f"{self.train.nnz} train / {t} test interactions)")


@dataclass
class Interactions:
    """Interaction log with contiguous indices and the mapping back to original ids."""
    users: np.ndarray
    items: np.ndarray
    values: Optional[np.ndarray]
    timestamps: Optional[np.ndarray]
    user_ids: np.ndarray
    item_ids: np.ndarray

    @property
    def n_users(self):
        return len(self.user_ids)

    @property
    def n_items(self):
        return len(self.item_ids)

    def __len__(self):
        return len(self.users)

    def to_csr(self):
        """Binary CSR matrix of shape (n_users, n_items); duplicates merged."""
        return _binary_csr(self.users, self.items, (self.n_users, self.n_items))


def _binary_csr(users, items, shape):
    M = sp.csr_matrix((np.ones(len(users), dtype=np.float32), (users, items)), shape=shape)
    M.sum_duplicates()
    M.data[:] = 1.0
    M.indices = M.indices.astype(np.int32)
    M.indptr = M.indptr.astype(np.int32)
    return M


def _check_file(path):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"expected a file path (str or os.PathLike), got {type(path).__name__}")
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a directory; pass the path of a file")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist; check the path (relative paths are "
                                f"resolved from {os.getcwd()})")
    if not os.path.isfile(path):
        raise ValueError(f"{path}: not a regular file; pass the path of a file")
    return path


def _check_folder(folder, holding):
    folder = os.fspath(folder)
    if not os.path.exists(folder):
        raise FileNotFoundError(f"{folder} does not exist; pass the folder holding {holding}")
    if not os.path.isdir(folder):
        raise ValueError(f"{folder}: not a directory; pass the folder holding {holding}")
    return folder


def _lines(path):
    """Yield ``(lineno, line)`` of a UTF-8 text file (a BOM is dropped).

    Undecodable bytes raise ``ValueError`` naming the file and the line.
    """
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}, line {lineno}: not valid UTF-8 text ({e.reason} at "
                                 f"byte {e.start}); save the file as UTF-8") from None


#: Largest id a file may use as an index directly (the index is int32).
MAX_ID = 2**31 - 2
#: An index may be this much larger than the number of ids in the file that
#: defines it, and at least MIN_INDEX, before it is refused as absurd: the ids of
#: a LightGCN, NCF or ``one_based`` file are indices, and an index sized by one
#: huge id would allocate gigabytes for a few bytes of input.
INDEX_SLACK = 16
MIN_INDEX = 2**16


_PLAIN_INT = re.compile(r"-?[0-9]+")


def _plain_int(tok):
    """``int(tok)`` for plain ASCII digits only (``int`` also takes "+5", "1_0", " 5" and
    non-ASCII digits such as "٣"); None for anything else."""
    return int(tok) if _PLAIN_INT.fullmatch(tok) else None


def _parse_int(tok, path, lineno, what):
    v = _plain_int(tok)
    if v is None:
        raise ValueError(f"{path}, line {lineno}: {what} {tok!r} is not an integer (write "
                         f"ids as plain digits 0-9)")
    if v < 0:
        raise ValueError(f"{path}, line {lineno}: {what} {v} is negative; ids must be >= 0")
    if v > MAX_ID:
        raise ValueError(f"{path}, line {lineno}: {what} {v} is beyond {MAX_ID}, the largest "
                         f"index aprnb accepts; ids in this format are indices (0, 1, 2, ...)")
    return v


class _Largest:
    """The largest id seen, and where: for :func:`_check_index_size`."""

    def __init__(self):
        self.value, self.where = -1, None

    def update(self, values, path, lineno):
        m = max(values, default=-1)
        if m > self.value:
            self.value, self.where = m, (path, lineno)


def _check_index_size(largest, n_ids, what):
    """Refuse an index of ``largest.value + 1`` entries that ``n_ids`` ids in the files
    cannot justify (more than ``max(MIN_INDEX, INDEX_SLACK * n_ids)``), naming the file
    and line of the id that asks for it, before anything of that size is allocated."""
    limit = max(MIN_INDEX, INDEX_SLACK * n_ids)
    if largest.value + 1 > limit:
        path, lineno = largest.where
        raise ValueError(f"{path}, line {lineno}: {what} {largest.value} would make an index "
                         f"of {largest.value + 1} {what}s for {n_ids} ids in the data "
                         f"(at most {limit} are accepted); ids in this format are indices "
                         f"0, 1, 2, ...: renumber them, or read the file as delimited data "
                         f"with mapped ids (format='delimited', one_based=None)")


def _read_lightgcn_file(path, top_user, top_item):
    """Return (users, items, lines) for a ``user item item ...`` file; ``top_user`` and
    ``top_item`` (:class:`_Largest`) record the largest ids."""
    users, items = [], []
    n_lines = 0
    for lineno, line in _lines(path):
        toks = line.split()
        if not toks:
            continue
        n_lines += 1
        u = _parse_int(toks[0], path, lineno, "user id")
        its = [_parse_int(t, path, lineno, "item id") for t in toks[1:]]
        top_user.update([u], path, lineno)
        top_item.update(its, path, lineno)
        users.extend([u] * len(its))
        items.extend(its)
    return np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64), n_lines


def load_lightgcn(folder, name=None):
    """Load an NGCF/LightGCN split: ``train.txt`` and ``test.txt`` in ``folder``.

    Each line is ``user item item ...`` with 0-based ids (a user may have no
    items). Returns a :class:`Dataset` whose ``train`` and ``test`` are binary CSR
    matrices over ``n_users = max user id + 1`` and ``n_items = max item id + 1``.
    """
    if not isinstance(folder, (str, os.PathLike)):
        raise TypeError(f"folder must be a path, got {type(folder).__name__}")
    folder = _check_folder(folder, "train.txt and test.txt")
    top_user, top_item = _Largest(), _Largest()
    tr = _read_lightgcn_file(_check_file(os.path.join(folder, "train.txt")), top_user, top_item)
    te = _read_lightgcn_file(_check_file(os.path.join(folder, "test.txt")), top_user, top_item)
    _check_index_size(top_user, tr[2] + te[2], "user")
    _check_index_size(top_item, len(tr[1]) + len(te[1]), "item")
    n_users, n_items = 1 + top_user.value, 1 + top_item.value
    if n_users <= 0 or n_items <= 0:
        raise ValueError(f"{folder}: train.txt and test.txt hold no interactions")
    shape = (n_users, n_items)
    return Dataset(train=_binary_csr(tr[0], tr[1], shape), test=_binary_csr(te[0], te[1], shape),
                   user_ids=np.arange(n_users), item_ids=np.arange(n_items),
                   name=name or os.path.basename(os.path.normpath(folder)))


def _read_rating_file(path, top_user, top_item):
    users, items = [], []
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        toks = line.rstrip("\r\n").split("\t")
        if len(toks) < 2:
            raise ValueError(f"{path}, line {lineno}: expected 'user<TAB>item<TAB>rating"
                             f"<TAB>timestamp', got {line.strip()!r}")
        users.append(_parse_int(toks[0].strip(), path, lineno, "user id"))
        items.append(_parse_int(toks[1].strip(), path, lineno, "item id"))
        top_user.update(users[-1:], path, lineno)
        top_item.update(items[-1:], path, lineno)
    return np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)


def _int_index(n, offset=0):
    """Raw-token -> index lookup for integer ids ``offset .. offset + n - 1`` (None if
    unknown)."""
    def index(tok):
        v = _plain_int(tok)
        if v is None:
            return None
        v -= offset
        return v if 0 <= v < n else None
    return index


def load_ncf(prefix, name=None):
    """Load the official APR/NCF files ``<prefix>.train.rating``, ``.test.rating``
    and, when present, ``.test.negative`` (tab separated, 0-based ids).

    Returns a :class:`Dataset`; ``negatives`` is an int array of shape
    ``(n_users, n_neg)`` with -1 rows for users without a negative list. Every
    negative list is checked against ``.test.rating``: its head ``(user,item)``
    must be a test pair, and no negative may be the user's test item. Items that
    appear only as negatives extend the item index (they are catalogue items the
    training data never shows); unknown users are refused.
    """
    if not isinstance(prefix, (str, os.PathLike)):
        raise TypeError(f"prefix must be a path prefix, got {type(prefix).__name__}")
    prefix = os.fspath(prefix)
    top_user, top_item = _Largest(), _Largest()
    tu, ti = _read_rating_file(_check_file(prefix + ".train.rating"), top_user, top_item)
    su, si = _read_rating_file(_check_file(prefix + ".test.rating"), top_user, top_item)
    neg_path = prefix + ".test.negative"
    neg_rows = _read_negatives(neg_path, form="ncf") if os.path.isfile(neg_path) else None
    n_ids = len(tu) + len(su)
    if neg_rows:
        for lineno, _, _, negs in neg_rows:
            top_item.update([_parse_int(t, neg_path, lineno, "negative item id")
                             for t in negs], neg_path, lineno)
            n_ids += len(negs)
    _check_index_size(top_user, len(tu) + len(su), "user")
    _check_index_size(top_item, n_ids, "item")
    n_users, n_items = 1 + top_user.value, 1 + top_item.value
    if n_users <= 0:
        raise ValueError(f"{prefix}.train.rating holds no interactions")
    shape = (n_users, n_items)
    test = _binary_csr(su, si, shape)
    negatives = (_negative_matrix(neg_rows, neg_path, _int_index(n_users), _int_index(n_items),
                                  test) if neg_rows else None)
    return Dataset(train=_binary_csr(tu, ti, shape), test=test,
                   negatives=negatives, user_ids=np.arange(n_users),
                   item_ids=np.arange(n_items), name=name or os.path.basename(prefix))


def _detect_sep(line):
    if "\t" in line:
        return "\t"
    if "," in line:
        return ","
    if ";" in line:
        return ";"
    return None  # whitespace


def _split(line, sep):
    """Fields of one line, stripped of blanks and of one pair of surrounding quotes."""
    toks = [t.strip() for t in (line.split(sep) if sep else line.split())]
    return [t[1:-1].strip() if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"" else t
            for t in toks]


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


def _data_lines(path, comment):
    """``(lineno, stripped line)`` of the non-blank, non-comment lines of a text file."""
    for lineno, line in _lines(path):
        s = line.strip()
        if s and not (comment and s.startswith(comment)):
            yield lineno, s


def _read_delimited(path, sep, header, comment):
    """Rows ``(user, item, value, timestamp, lineno)`` of a delimited log.

    ``header`` is True (skip the first line), False (every line is data) or
    "auto" (skip the first line when :func:`_looks_like_header` says it names
    columns).
    """
    lines = list(_data_lines(path, comment))
    if not lines:
        return []
    if sep == "auto":
        sep = _detect_sep(lines[0][1])
    if header == "auto":
        header, weak = _looks_like_header(_split(lines[0][1], sep),
                                          _split(lines[1][1], sep) if len(lines) > 1 else None)
        if weak:
            warnings.warn(f"{path}: line {lines[0][0]} ({lines[0][1][:60]!r}) was taken for a "
                          f"header and skipped; pass header=False (CLI: --header no) if it is "
                          f"data", UserWarning, stacklevel=5)
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


def _read_negatives(path, sep="auto", form="auto"):
    """Rows ``(lineno, user, test item or None, [negative items])`` of a negatives file.

    Two forms are read, as raw id tokens:

    * NCF: ``(user,item)<TAB>j1<TAB>j2 ...`` -- the head names the held-out pair;
    * CSV: ``user<sep>"[j1, j2, ...]"`` -- a user and a quoted list, items separated
      by commas and/or blanks (a first line without "[" above lines with one, such
      as ``userId,negatives``, is taken for a header).

    ``form`` is "ncf", "csv" or "auto" (NCF when the first line starts with "(").
    """
    lines = list(_data_lines(path, None))
    if not lines:
        raise ValueError(f"{path}: no negatives found (empty file)")
    rows = []
    if form == "ncf" or (form == "auto" and lines[0][1].startswith("(")):
        seen = {}
        for lineno, s in lines:
            toks = s.split("\t")
            head = toks[0].strip()
            if not (head.startswith("(") and head.endswith(")") and "," in head):
                raise ValueError(f"{path}, line {lineno}: expected '(user,item)' then "
                                 f"tab-separated negative item ids, got {head!r}")
            u, i = (t.strip() for t in head[1:-1].split(",", 1))
            if not u or not i:
                raise ValueError(f"{path}, line {lineno}: empty user or item in {head!r}")
            if u in seen:
                raise ValueError(f"{path}, line {lineno}: user {u} already has a negative "
                                 f"list (line {seen[u]}); keep one line per user")
            seen[u] = lineno
            rows.append((lineno, u, i, [t.strip() for t in toks[1:] if t.strip()]))
        return rows
    if sep == "auto":
        sep = "\t" if "\t" in lines[0][1] else ","
    body = lines
    if "[" not in lines[0][1] and any("[" in s for _, s in lines[1:]):
        body = lines[1:]
    seen = {}
    for lineno, s in body:
        user, _, rest = s.partition(sep)
        user, rest = _split(user, None)[0] if user.strip() else "", rest.strip()
        if rest[:1] in "'\"" and rest[-1:] == rest[:1]:
            rest = rest[1:-1].strip()
        if not user or not (rest.startswith("[") and rest.endswith("]")):
            raise ValueError(f"{path}, line {lineno}: expected 'user{sep}\"[j1, j2, ...]\"' "
                             f"(a user id and a bracketed list of negative item ids), got "
                             f"{s!r}")
        if user in seen:
            raise ValueError(f"{path}, line {lineno}: user {user} already has a negative list "
                             f"(line {seen[user]}); keep one line per user")
        seen[user] = lineno
        # j1, j2 or j1 j2 (numpy's spelling of an array): commas and/or blanks
        negs = [t.strip("'\"") for t in re.split(r"[,\s]+", rest[1:-1].strip()) if t]
        rows.append((lineno, user, None, negs))
    if not rows:
        raise ValueError(f"{path}: no negatives found (only a header line)")
    return rows


def _negative_matrix(rows, path, user_index, item_index, test):
    # The matrix has a row per user, as wide as the longest list: refuse a shape that
    # the lists cannot justify (one long list among many users) before allocating it.
    width = max((len(r[3]) for r in rows), default=0)
    n_tokens = sum(len(r[3]) for r in rows)
    if test.shape[0] * width > max(2**22, INDEX_SLACK * n_tokens):
        raise ValueError(f"{path}: negative lists of up to {width} items for {len(rows)} of "
                         f"{test.shape[0]} users would need a {test.shape[0]} x {width} "
                         f"table; give every user a list of about the same length")
    return _negative_table(rows, path, user_index, item_index, test, width)


def _negative_table(rows, path, user_index, item_index, test, width):
    """The ``(n_users, n_neg)`` negatives array (-1 padding) of parsed negative rows.

    ``user_index``/``item_index`` map raw id tokens to indices (None for unknown
    ids). Each row is checked against the test matrix: its user must have a test
    item, an NCF head must name that held-out pair, and no negative may be one of
    the user's test items (that would score a perfect model as a miss).
    """
    neg = np.full((test.shape[0], max(width, 1)), -1, dtype=np.int64)
    for lineno, u_tok, i_tok, negs in rows:
        u = user_index(u_tok)
        if u is None:
            raise ValueError(f"{path}, line {lineno}: user {u_tok!r} is not in the train or "
                             f"test file; negatives must belong to known users")
        pos = test.indices[test.indptr[u]:test.indptr[u + 1]]
        if len(pos) == 0:
            raise ValueError(f"{path}, line {lineno}: user {u_tok!r} has no test item, so its "
                             f"negatives cannot be used; check that the files belong together")
        if i_tok is not None:
            i = item_index(i_tok)
            if i is None or i not in pos:
                raise ValueError(f"{path}, line {lineno}: the head ({u_tok},{i_tok}) is not a "
                                 f"test pair of the test file; check that the files belong "
                                 f"together")
        idx = [item_index(t) for t in negs]
        if any(j is None for j in idx):
            bad = negs[idx.index(None)]
            raise ValueError(f"{path}, line {lineno}: negative item {bad!r} is in neither the "
                             f"train nor the test file; write negatives with the ids exactly "
                             f"as those files spell them (e.g. '007' is not '7', '7.0' is not "
                             f"'7')")
        clash = np.intersect1d(np.asarray(idx, dtype=np.int64), pos)
        if clash.size:
            raise ValueError(f"{path}, line {lineno}: a negative of user {u_tok!r} is its own "
                             f"test item (index {int(clash[0])}); a negative list must not "
                             f"contain the held-out item")
        neg[u, :len(idx)] = idx
    return neg


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
    rows, where = [], []
    paths = [_check_file(p) for p in paths]    # every path exists before any is parsed
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


def load_lastfm(folder):
    """Load the Last.fm LightGCN-PyTorch split: ``train.tsv``/``test.tsv``, 1-based ids."""
    if not isinstance(folder, (str, os.PathLike)):
        raise TypeError(f"folder must be a path (str or os.PathLike), got "
                        f"{type(folder).__name__}")
    folder = _check_folder(folder, "train.tsv and test.tsv")
    return load_delimited(os.path.join(folder, "train.tsv"), os.path.join(folder, "test.tsv"),
                          sep="\t", one_based=True, name="lastfm")
