"""Shared helpers of the benchmark scripts: environment report, timing, memory, tables.

Nothing here depends on the optional peers (implicit, cornac, torch); scripts ask
:func:`optional_import` for them and skip a peer with a message when it is missing.
The machine description and the timing statistics live in the package
(``aprnb/_machine.py``, ``aprnb/_timing.py``), where ``aprnb bench`` uses them too.
"""
import contextlib
import importlib
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aprnb import _machine
from aprnb._timing import Stats, time_call  # noqa: F401  (the scripts import them from here)

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent


# ---------------------------------------------------------------------------------------
# Data location
# ---------------------------------------------------------------------------------------
def data_dir():
    """``<repo>/../shared/data`` (CI clones the repo with ``shared/`` beside it)."""
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


def gowalla_dir():
    """``<data>/gowalla``, or exit with a message saying where it was looked for."""
    path = data_dir() / "gowalla"
    if not (path / "train.txt").is_file() or not (path / "test.txt").is_file():
        sys.exit(f"bench: Gowalla data not found: expected {path}/train.txt and test.txt "
                 f"(the LightGCN split). Place the shared/ directory beside the repository "
                 f"checkout ({REPO_DIR.parent}).")
    return path


def load_gowalla():
    """The LightGCN Gowalla split (exits with a message when it is missing)."""
    import aprnb
    return aprnb.data.load_lightgcn(str(gowalla_dir()))


# ---------------------------------------------------------------------------------------
# Optional peers
# ---------------------------------------------------------------------------------------
_SKIPPED = {}


def optional_import(name, purpose=""):
    """Import ``name`` or return None after printing (once) why a peer is skipped."""
    try:
        return importlib.import_module(name)
    except Exception as exc:  # ImportError, or a broken install
        if name not in _SKIPPED:
            _SKIPPED[name] = f"{type(exc).__name__}: {exc}"
            what = f" ({purpose})" if purpose else ""
            how = ("pip install torch (the CPU wheel; the [torch] extra)" if name == "torch"
                   else "pip install .[bench]")
            print(f"[bench] skipping {name}{what}: not importable ({exc}). "
                  f"Install it: {how}", file=sys.stderr)
        return None


def skipped_peers():
    return dict(_SKIPPED)


@contextlib.contextmanager
def blas_threads(n):
    """Limit BLAS (and OpenMP pools that threadpoolctl knows) to ``n`` threads."""
    tpc = optional_import("threadpoolctl", "limiting BLAS threads")
    if tpc is None:
        yield False
        return
    with tpc.threadpool_limits(limits=n):
        yield True


def thread_list(spec, max_threads=None):
    """Parse ``"1,2"`` into ints, dropping values above the available threads."""
    import numba
    cap = max_threads or numba.config.NUMBA_NUM_THREADS
    out = []
    for tok in str(spec).split(","):
        tok = tok.strip()
        if not tok:
            continue
        n = int(tok)
        if n > cap:
            print(f"[bench] {n} threads requested but only {cap} available; skipped",
                  file=sys.stderr)
            continue
        out.append(n)
    if not out:
        sys.exit(f"bench: no usable thread count in {spec!r} (at most {cap})")
    return out


# ---------------------------------------------------------------------------------------
# Hardware / software report
# ---------------------------------------------------------------------------------------
def _mem_total_gb():
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


def git_commit(repo=REPO_DIR):
    """Short commit of the checkout at ``repo`` (``git rev-parse``, "?" without git)."""
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "?"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "?"


def _version(name):
    try:
        mod = importlib.import_module(name)
        return getattr(mod, "__version__", "?")
    except Exception:
        return None


def numba_threading_layer():
    """Run a tiny parallel kernel so that Numba picks its layer, then report it."""
    import numba

    @numba.njit(parallel=True, cache=False)
    def _touch(a):
        for k in numba.prange(a.shape[0]):
            a[k] += 1.0
        return a

    _touch(np.zeros(16))
    try:
        return numba.threading_layer()
    except ValueError:
        return "unknown"


def hardware_report():
    """Dict of the facts a reader needs to interpret the numbers."""
    import aprnb
    machine = _machine.describe()
    rep = {
        "cpu": machine["cpu"],
        "logical_cpus": machine["cores"],
        "usable_cpus": machine["usable_cores"],
        "simd": machine["simd"] or "?",
        "memory_gb": round(_mem_total_gb(), 1),
        "os": machine["platform"],
        "python": machine["python"],
        "numpy": machine["numpy"],
        "scipy": machine["scipy"],
        "numba": machine["numba"],
        "llvmlite": _version("llvmlite"),
        "numba_threads": machine["numba_threads"],
        "numba_threading_layer": numba_threading_layer(),
        "aprnb": f"{aprnb.__version__} (commit {git_commit()})",
        "blas": machine["blas"],
    }
    for peer in ("implicit", "cornac", "torch"):
        v = _version(peer)
        rep[peer] = v if v is not None else "not installed"
    try:
        rep["load_avg_1min"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    return rep


def hardware_markdown(rep=None):
    rep = rep or hardware_report()
    return "\n".join(f"- **{k}**: {v}" for k, v in rep.items())


# ---------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------
def measure(fn, warmup=1, repeat=5):
    """Call ``fn()`` ``warmup`` times untimed, then ``repeat`` times; return :class:`Stats`."""
    for _ in range(warmup):
        fn()
    st = Stats()
    for _ in range(repeat):
        st.add(time_call(fn)[0])
    return st


def interleave(contenders, rounds, warmup=1, log=True):
    """Run every contender once per round, rotating the order each round.

    ``contenders`` maps a name to a callable that returns either one sample
    (seconds) or a dict of named sample lists (e.g. ``{"kernel": [...],
    "wall": [...]}``). Returns ``{name: {metric: Stats}}``. Each contender is
    called ``warmup`` times before the first round (JIT, caches, page faults).
    Interleaving spreads the noise of a shared machine over all contenders
    instead of letting it land on whichever ran during a busy spell.
    """
    names = list(contenders)
    for name in names:
        for _ in range(warmup):
            if log:
                print(f"  warm-up  {name}", file=sys.stderr, flush=True)
            contenders[name]()
    out = {name: {} for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            res = contenders[name]()
            if not isinstance(res, dict):
                res = {"wall": [res]}
            for metric, xs in res.items():
                xs = xs if isinstance(xs, (list, tuple, np.ndarray)) else [xs]
                out[name].setdefault(metric, Stats()).add(*xs)
            if log:
                med = {m: f"{1e3 * statistics.median(v):.1f}ms" for m, v in res.items()
                       if m in ("kernel", "wall") and isinstance(v, (list, tuple)) and v}
                print(f"  round {r + 1}/{rounds}  {name}: {med}", file=sys.stderr, flush=True)
    return out


# ---------------------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------------------
def _status_kb(key):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def current_rss_mb():
    try:
        return _status_kb("VmRSS") / 1024.0
    except (OSError, KeyError):
        import resource
        return float("nan") if sys.platform != "linux" else \
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def peak_rss_mb():
    """Peak resident set of this process so far (``VmHWM``), MB."""
    try:
        return _status_kb("VmHWM") / 1024.0
    except (OSError, KeyError):
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _reset_peak():
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0); False when not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


class PeakRSS:
    """Context manager measuring the peak RSS increase of the body, in MB.

    Uses the kernel's high-water mark after resetting it (exact, catches
    short-lived allocations made by Numba or BLAS); falls back to sampling
    ``VmRSS`` every millisecond from a thread when the reset is not allowed.
    """

    def __enter__(self):
        self.base = current_rss_mb()
        self.exact = _reset_peak()
        self._stop = threading.Event()
        self._max = self.base
        if not self.exact:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self._max = max(self._max, current_rss_mb())
            time.sleep(0.001)

    def __exit__(self, *exc):
        if self.exact:
            self.peak = peak_rss_mb()
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self._max, current_rss_mb())
        self.increase = self.peak - self.base
        return False


# ---------------------------------------------------------------------------------------
# Tables and output
# ---------------------------------------------------------------------------------------
@dataclass
class Section:
    """One result table: printed as text, written as markdown."""
    title: str
    headers: list
    rows: list
    notes: list = field(default_factory=list)

    def markdown(self):
        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(self.headers) + " |")
        lines.append("|" + "|".join("---" for _ in self.headers) + "|")
        for row in self.rows:
            lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |")
        if self.notes:
            lines.append("")
            lines.extend(f"- {n}" for n in self.notes)
        return "\n".join(lines) + "\n"

    def text(self):
        cells = [self.headers] + [[str(c) for c in r] for r in self.rows]
        widths = [max(len(r[k]) for r in cells) for k in range(len(self.headers))]
        sep = "-+-".join("-" * w for w in widths)
        out = [f"== {self.title} ==",
               " | ".join(h.ljust(w) for h, w in zip(self.headers, widths)), sep]
        out += [" | ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells[1:]]
        out += [f"  * {n}" for n in self.notes]
        return "\n".join(out)


def emit(sections, markdown_path=None, header=None):
    """Print the sections; append their markdown to ``markdown_path`` if given."""
    for s in sections:
        print()
        print(s.text())
    if markdown_path:
        with open(markdown_path, "a") as fh:
            if header:
                fh.write(header + "\n\n")
            for s in sections:
                fh.write(s.markdown() + "\n")


def ratio(a, b, digits=2):
    if not (a and b) or not np.isfinite(a) or not np.isfinite(b):
        return "n/a"
    return f"{a / b:.{digits}f}x"


def common_argparser(description, rounds=False):
    """The options every bench script takes; ``rounds``: also ``--rounds`` (interleaved
    rounds; the script's default is 3, or 2 with ``--quick``)."""
    import argparse
    p = argparse.ArgumentParser(description=description)
    if rounds:
        p.add_argument("--rounds", type=int, default=None,
                       help="interleaved rounds (default 3; 2 with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="fewer repeats and smaller work (a smoke run, noisier numbers)")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--markdown", default=None,
                   help="append the result tables as markdown to this file")
    return p


def print_environment():
    rep = hardware_report()
    print("Environment:")
    for k, v in rep.items():
        print(f"  {k}: {v}")
    return rep


def run_python(code, env=None, timeout=600):
    """Run ``python -c code`` in a subprocess; ``(seconds, CompletedProcess)``."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=str(REPO_DIR))
    return time.perf_counter() - t0, proc


def script_main(doc, run, argv=None, parser=None):
    """Shared ``main`` of the bench scripts: parse, print the environment, run, emit.

    ``parser`` (optional) is a ``common_argparser`` a script has extended with its
    own options.
    """
    p = parser or common_argparser(doc.splitlines()[0])
    args = p.parse_args(argv)
    print_environment()
    sections, _ = run(args)
    emit(sections, args.markdown)
