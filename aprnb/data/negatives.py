"""Sampled-protocol negatives files, in the NCF and the CSV form, checked against the test set."""
import re

import numpy as np

from ._text import INDEX_SLACK, _data_lines, _split


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
    """The ``(n_users, n_neg)`` negatives array (-1 padding) of parsed negative rows.

    ``user_index``/``item_index`` map raw id tokens to indices (None for unknown
    ids). The table is as wide as the longest list, so a shape the lists cannot
    justify (one long list among many users) is refused before it is allocated.
    Each row is checked against the test matrix: its user must have a test item,
    an NCF head must name that held-out pair, and no negative may be one of the
    user's test items (that would score a perfect model as a miss).
    """
    width = max((len(r[3]) for r in rows), default=0)
    n_tokens = sum(len(r[3]) for r in rows)
    if test.shape[0] * width > max(2**22, INDEX_SLACK * n_tokens):
        raise ValueError(f"{path}: negative lists of up to {width} items for {len(rows)} of "
                         f"{test.shape[0]} users would need a {test.shape[0]} x {width} "
                         f"table; give every user a list of about the same length")
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
