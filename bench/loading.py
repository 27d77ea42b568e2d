"""Loading delimited logs: aprnb's reader against numpy's C ``np.loadtxt`` (issue 15).

Generates seeded files of ``--lines`` lines in a temporary folder -- ``user<TAB>item``,
``user<TAB>item<TAB>rating`` with integer ratings 1-5, and the same with half-star
ratings (``3.5``) -- and times, interleaved over ``--runs`` rounds after one warm-up:

* ``np.loadtxt(path, dtype=np.int64)`` (``dtype=float`` for the half-star file): the
  reference, a bare array with no ids mapped;
* ``aprnb.data.load_interactions(path)``: the whole reader (header and separator
  detection, the byte scan that lets ``np.loadtxt`` read the file, ``np.loadtxt``,
  the raw-id -> index maps, values);
* ``aprnb.data.load_delimited(path)``: the same plus the binary CSR matrix;
* with ``--careful``, the careful line-by-line parser alone (the reader before issue 15).

Prints median [min-max] seconds, lines/s and the ratio to ``np.loadtxt``. Target:
``load_interactions`` within 3x of ``np.loadtxt`` on the integer files.
"""
import os
import tempfile
from unittest import mock

import numpy as np

from . import common
from .common import Section


def make_files(folder, lines, seed):
    """The three seeded files: ``{name: path}``."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, max(lines // 30, 2), lines)
    items = rng.integers(0, max(lines // 60, 2), lines)
    stars = rng.integers(1, 6, lines)
    files = {}
    for name, cols, fmt in [("user<TAB>item", [users, items], "%d"),
                            ("user<TAB>item<TAB>rating", [users, items, stars], "%d"),
                            ("... rating x.5", [users, items, stars - 0.5 * (stars > 1)],
                             ["%d", "%d", "%.1f"])]:
        path = os.path.join(folder, f"{len(files)}.tsv")
        np.savetxt(path, np.column_stack(cols), fmt=fmt, delimiter="\t")
        files[name] = path
    return files


def _timed(fn):
    def run():
        return common.time_call(fn)[0]
    return run


def careful_interactions(path):
    """``load_interactions`` with the fast path switched off."""
    import aprnb.data.delimited as delimited
    with mock.patch.object(delimited, "_read_fast", lambda *a, **k: None):
        return delimited.load_interactions(path)


def run(args):
    import aprnb.data as data
    lines = 30_000 if args.quick else args.lines
    runs = 1 if args.quick else args.runs
    sections, raw = [], {}
    with tempfile.TemporaryDirectory(prefix="aprnb-loading-") as folder:
        files = make_files(folder, lines, args.seed)
        rows = []
        for name, path in files.items():
            floats = "x.5" in name
            ref = "np.loadtxt(dtype=float)" if floats else "np.loadtxt(dtype=int64)"
            contenders = {
                ref: _timed(lambda: np.loadtxt(path, dtype=float if floats else np.int64)),
                "load_interactions": _timed(lambda: data.load_interactions(path)),
                "load_delimited (+ CSR)": _timed(lambda: data.load_delimited(path)),
            }
            if args.careful:
                contenders["careful parser alone"] = _timed(lambda: careful_interactions(path))
            print(f"[bench] {name}: {lines} lines, {os.path.getsize(path) / 2**20:.1f} MiB",
                  flush=True)
            stats = common.interleave(contenders, rounds=runs, warmup=1)
            base = stats[ref]["wall"].median
            for label, st in stats.items():
                st = st["wall"]
                rows.append([name, label, st.fmt_s(3), f"{lines / st.median / 1e6:.2f}M",
                             common.ratio(st.median, base)])
                raw[(name, label)] = st.samples
        sections.append(Section(
            f"Loading {lines} lines: seconds, median [min-max] of {runs} (interleaved)",
            ["file", "reader", "seconds", "lines/s", "vs np.loadtxt"], rows,
            [f"files generated with seed {args.seed}: users 0..{max(lines // 30, 2) - 1}, "
             f"items 0..{max(lines // 60, 2) - 1}, integer ids.",
             "np.loadtxt returns a bare array; aprnb maps raw ids to indices (sorted, as the "
             "careful parser does) and checks every byte it lets np.loadtxt read.",
             "target: load_interactions <= 3x np.loadtxt on the integer files."]))
    return sections, raw


def main(argv=None):
    p = common.common_argparser(__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=3_000_000, help="lines per file (3M)")
    p.add_argument("--runs", type=int, default=3, help="timed rounds (3)")
    p.add_argument("--careful", action="store_true",
                   help="also time the careful parser alone (slow: ~2 us a line)")
    common.script_main(__doc__, run, argv, parser=p)


if __name__ == "__main__":
    main()
