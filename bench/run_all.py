"""Run every benchmark and write the tables to ``bench/results.md``.

    python bench/run_all.py                # full run (about 15-25 minutes on 2 cores)
    python bench/run_all.py --quick        # smoke run: fewer repeats, smaller work
    python bench/run_all.py --only train,evaluate

Each benchmark runs in its own subprocess (so memory, thread pools and JIT state
do not leak between them) and appends its markdown tables to the results file,
which starts with a timestamp and the hardware/software report.
"""
import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

BENCHES = ["startup", "train", "evaluate", "floors", "scaling"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats, smaller work")
    p.add_argument("--only", default=",".join(BENCHES),
                   help=f"comma-separated subset of {BENCHES}")
    p.add_argument("--threads", default="1,2", help="thread counts for train/evaluate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(common.BENCH_DIR / "results.md"),
                   help="markdown output (default bench/results.md)")
    args = p.parse_args(argv)
    chosen = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = sorted(set(chosen) - set(BENCHES))
    if unknown:
        p.error(f"unknown benchmark(s) {unknown}; choose from {BENCHES}")

    stamp = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    rep = common.hardware_report()
    print(f"aprnb benchmarks, {stamp}")
    for k, v in rep.items():
        print(f"  {k}: {v}")
    header = ["# aprnb benchmark results", "",
              f"Run {stamp}{' (--quick)' if args.quick else ''}: "
              f"`python bench/run_all.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
              "", "## Environment", "", common.hardware_markdown(rep), ""]
    load = os.getloadavg()[0]
    if load > 0.5:
        note = (f"load average {load:.2f} at start on {os.cpu_count()} CPUs: other jobs are "
                f"running, multi-thread rows are slowed the most; rerun on a quiet machine")
        print(f"WARNING: {note}", file=sys.stderr)
        header += [f"**Warning:** {note}.", ""]
    failures = []
    with tempfile.TemporaryDirectory(prefix="aprnb-bench-") as d:
        parts = []
        for name in chosen:
            md = Path(d) / f"{name}.md"
            cmd = [sys.executable, str(common.BENCH_DIR / f"{name}.py"), "--seed", str(args.seed),
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
                failures.append(name)
                body += f"\n**{name} failed (exit code {rc}); see the console output.**\n"
            parts.append(f"## {name}\n\n_{took:.0f} s; load average after: "
                         f"{os.getloadavg()[0]:.2f}_\n\n{body}")
    Path(args.out).write_text("\n".join(header + parts))
    print(f"\nwrote {args.out}")
    if failures:
        sys.exit(f"failed: {failures}")


if __name__ == "__main__":
    main()
