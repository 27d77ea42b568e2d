"""Run every benchmark and write the tables to ``bench/results.md``.

    python -m bench.run_all                # full run (about 15-25 minutes on 2 cores)
    python -m bench.run_all --quick        # smoke run: fewer repeats, smaller work
    python -m bench.run_all --only train,evaluate

Each benchmark runs as ``python -m bench.<name>`` in its own subprocess, from the
repository root (so memory, thread pools and JIT state do not leak between them),
and appends its markdown tables to the results file, which starts with a timestamp
and the hardware/software report.
"""
import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import common

BENCHES = ["startup", "train", "evaluate", "floors", "scaling", "loading", "systems"]


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats, smaller work")
    p.add_argument("--only", default=",".join(BENCHES),
                   help=f"comma-separated subset of {BENCHES}")
    p.add_argument("--threads", default="1,2", help="thread counts for train/evaluate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(common.BENCH_DIR / "results.md"),
                   help="markdown output (default bench/results.md)")
    args = p.parse_args(argv)
    args.chosen = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = sorted(set(args.chosen) - set(BENCHES))
    if unknown:
        p.error(f"unknown benchmark(s) {unknown}; choose from {BENCHES}")
    return args


def header(argv, quick):
    """Title, command, environment and (on a busy machine) a warning, as markdown lines."""
    stamp = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    rep = common.hardware_report()
    print(f"aprnb benchmarks, {stamp}")
    for k, v in rep.items():
        print(f"  {k}: {v}")
    lines = ["# aprnb benchmark results", "",
             f"Run {stamp}{' (--quick)' if quick else ''}: "
             f"`python -m bench.run_all {' '.join(argv if argv is not None else sys.argv[1:])}`",
             "", "## Environment", "", common.hardware_markdown(rep), ""]
    load = os.getloadavg()[0]
    if load > 0.5:
        note = (f"load average {load:.2f} at start on {os.cpu_count()} CPUs: other jobs are "
                f"running, multi-thread rows are slowed the most; rerun on a quiet machine")
        print(f"WARNING: {note}", file=sys.stderr)
        lines += [f"**Warning:** {note}.", ""]
    return lines


def run_one(name, args, d):
    """``python -m bench.<name>`` from the repo root; ``(markdown part, exit code)``."""
    md = Path(d) / f"{name}.md"
    cmd = [sys.executable, "-m", f"bench.{name}", "--seed", str(args.seed),
           "--markdown", str(md)]
    if name in ("train", "evaluate"):
        cmd += ["--threads", args.threads]
    if args.quick:
        cmd.append("--quick")
    print(f"\n### {name}: {' '.join(cmd[1:])}", flush=True)
    t0 = time.perf_counter()
    rc = subprocess.call(cmd, cwd=str(common.REPO_DIR), env=dict(os.environ))
    took = time.perf_counter() - t0
    print(f"### {name} finished in {took:.0f} s (exit {rc})", flush=True)
    body = md.read_text() if md.is_file() else ""
    if rc != 0:
        body += f"\n**{name} failed (exit code {rc}); see the console output.**\n"
    return (f"## {name}\n\n_{took:.0f} s; load average after: {os.getloadavg()[0]:.2f}_\n\n"
            f"{body}"), rc


def main(argv=None):
    args = parse(argv)
    lines = header(argv, args.quick)
    failures, parts = [], []
    with tempfile.TemporaryDirectory(prefix="aprnb-bench-") as d:
        for name in args.chosen:
            part, rc = run_one(name, args, d)
            parts.append(part)
            if rc != 0:
                failures.append(name)
    Path(args.out).write_text("\n".join(lines + parts))
    print(f"\nwrote {args.out}")
    if failures:
        sys.exit(f"failed: {failures}")


if __name__ == "__main__":
    main()
