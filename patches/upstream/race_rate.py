#!/usr/bin/env python3
"""Run the series' race test N times on a numba-cuda release and count.

    python3 patches/upstream/race_rate.py --spec numba-cuda==0.24.0 \\
        --exclude-newer 2026-01-13T22:37:46Z --runs 100 --processes 10

Makes a virtual environment (uv) with --spec from the package index, puts
the series' first patch (the race test and its support functions) into the
installed package's tests (as fresh files: uv links installed files from its
cache), and runs the test --runs times: --processes processes, each running
it --runs / --processes times with unittest (numba-cuda's tests are unittest
classes; pytest-repeat does not repeat those). With --python it uses that
interpreter's environment as it is instead (for example one with numba-cuda
installed from a checkout with the whole series).

Writes one JSON file to --out: each run's outcome (passed; race: the
simulator's AttributeError; other) and duration (the test alone, timed in
its process), each process's wall time, and the provenance (date, command,
machine, load, Python build, package versions).
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SERIES = HERE / "numba-cuda"
TEST_ID = (
    "numba.cuda.tests.cudasim.test_cudasim_issues.TestCudaSimIssues."
    "test_cuda_module_in_device_function_after_another_thread_leaves"
)
RACE = re.compile(
    r"tid=\[[\d, ]+\] ctaid=\[[\d, ]+\]: module '[\w.]*cuda' has no "
    r"attribute '\w+'"
)
# Runs the test COUNT times in one process with unittest (pytest-repeat does
# not repeat unittest.TestCase tests) and prints one JSON line per run.
RUNNER = """
import json, sys, time, unittest

name, count = sys.argv[1], int(sys.argv[2])
for _ in range(count):
    test = unittest.defaultTestLoader.loadTestsFromName(name)
    result = unittest.TestResult()
    start = time.perf_counter()
    test.run(result)
    seconds = time.perf_counter() - start
    problems = [text for _, text in result.errors + result.failures]
    print(json.dumps({"seconds": seconds, "ran": result.testsRun,
                      "skipped": len(result.skipped), "problems": problems}))
"""


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--spec", help="requirement to install, e.g. numba-cuda==0.24.0")
    where.add_argument(
        "--python",
        dest="use_python",
        help="use this interpreter's environment as it is",
    )
    parser.add_argument(
        "--exclude-newer",
        default=None,
        metavar="DATE",
        help="uv --exclude-newer for --spec (a release's "
        "upload date picks the numba it was made with)",
    )
    parser.add_argument(
        "--base-python",
        default=shutil.which("python3.12"),
        help="interpreter for the new environment (default: python3.12)",
    )
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--processes", type=int, default=10)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/race-rate"))
    parser.add_argument("--out", type=Path, default=HERE / "race_rate")
    parser.add_argument(
        "--label", default=None, help="name of the result file (default: from --spec)"
    )
    args = parser.parse_args()
    if args.runs < 1 or args.processes < 1:
        parser.error("--runs and --processes must be at least 1")
    if args.runs % args.processes:
        parser.error(
            f"--runs ({args.runs}) must be a multiple of --processes ({args.processes})"
        )
    if args.spec and not args.base_python:
        parser.error("no python3.12 on PATH: give --base-python")
    if args.use_python and not args.label:
        parser.error("--python needs --label (what that environment is)")
    return args


def make_environment(args):
    venv = args.workdir / "venv"
    python = venv / "bin" / "python"
    subprocess.run(
        ["uv", "venv", "-q", str(venv), "--python", args.base_python], check=True
    )
    cmd = [
        "uv",
        "pip",
        "install",
        "-q",
        "--python",
        str(python),
        args.spec,
        "pytest",
        "filecheck",
    ]
    if args.exclude_newer:
        cmd += ["--exclude-newer", args.exclude_newer]
    subprocess.run(cmd, check=True)
    add_race_test(python)
    return python


def add_race_test(python):
    """Apply the series' first patch to the installed numba-cuda's tests."""
    site = Path(
        subprocess.check_output(
            [
                str(python),
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ],
            text=True,
        ).strip()
    )
    tests = site / "numba_cuda" / "numba" / "cuda" / "tests" / "cudasim"
    if not tests.is_dir():
        sys.exit(f"{tests}: not found; is this numba-cuda 0.20 or newer?")
    # Replace the files by copies before patching: the installed ones are
    # links into uv's cache.
    fresh = tests.with_name("cudasim.fresh")
    shutil.copytree(tests, fresh)
    shutil.rmtree(tests)
    fresh.rename(tests)
    patch = sorted(SERIES.glob("0001-*.patch"))[0]
    subprocess.run(
        ["git", "apply", "--include=*/tests/cudasim/*", str(patch)],
        cwd=site,
        check=True,
    )


def versions(python):
    out = subprocess.run(
        ["uv", "pip", "freeze", "--python", str(python)], capture_output=True, text=True
    )
    return out.stdout.split()


def run_once(python, workdir, index, count):
    cmd = [str(python), str(workdir / "runner.py"), TEST_ID, str(count)]
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    runs = []
    for line in proc.stdout.splitlines():
        if not line.startswith("{"):
            continue
        seen = json.loads(line)
        if seen["ran"] != 1:
            sys.exit(f"{TEST_ID}: {seen['ran']} tests ran, expected 1")
        if seen["problems"]:
            race = all(RACE.search(text) for text in seen["problems"])
            outcome = "race" if race else "other"
        else:
            outcome = "skipped" if seen["skipped"] else "passed"
        runs.append({"outcome": outcome, "seconds": round(seen["seconds"], 4)})
        if outcome == "other":
            runs[-1]["problems"] = seen["problems"]
    if len(runs) != count:
        tail = (proc.stdout + proc.stderr)[-2000:]
        sys.exit(
            f"process {index}: {len(runs)} of {count} runs reported "
            f"(exit {proc.returncode})\n{tail}"
        )
    return {"wall_seconds": round(wall, 3), "exit": proc.returncode, "runs": runs}


def main():
    args = parse_args()
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    args.workdir.mkdir(parents=True)
    (args.workdir / "runner.py").write_text(RUNNER)
    python = Path(args.use_python) if args.use_python else make_environment(args)
    label = args.label or re.sub(r"[^\w.+-]+", "-", args.spec)
    load = os.getloadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    per_process = args.runs // args.processes
    processes = [
        run_once(python, args.workdir, i, per_process) for i in range(args.processes)
    ]
    runs = [r for p in processes for r in p["runs"]]
    tally = {
        k: sum(r["outcome"] == k for r in runs)
        for k in ("passed", "race", "other", "skipped")
    }
    seconds = sorted(r["seconds"] for r in runs)
    result = {
        "label": label,
        "test": TEST_ID,
        "date": started.isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": {
            "platform": platform.platform(),
            "cores": os.cpu_count(),
            "load_at_start": load,
            "load_at_end": os.getloadavg(),
        },
        "python": subprocess.check_output(
            [str(python), "-c", "import sys; print(sys.version)"], text=True
        ).strip(),
        "packages": versions(python),
        "runs": len(runs),
        "counts": tally,
        "run_seconds": {"max": seconds[-1], "median": seconds[len(seconds) // 2]},
        "process_wall_seconds": {
            "max": max(p["wall_seconds"] for p in processes),
            "min": min(p["wall_seconds"] for p in processes),
        },
        "processes": processes,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"{label}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"{label}: {tally['race']} of {len(runs)} runs failed with the "
        f"race's AttributeError, {tally['other']} otherwise, "
        f"{tally['passed']} passed; per run max {seconds[-1]:.3f} s "
        f"(the test alone); per process of {per_process} runs "
        f"{result['process_wall_seconds']['min']:.1f}-"
        f"{result['process_wall_seconds']['max']:.1f} s wall -> {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
