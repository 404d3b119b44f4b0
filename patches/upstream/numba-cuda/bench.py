#!/usr/bin/env python3
"""Time simulated kernel launches whose threads call device functions of
another module, in several environments, interleaved.

    python3 patches/upstream/numba-cuda/bench.py \\
        --env 0.24.0=/tmp/venv-0.24.0/bin/python \\
        --env main=/tmp/venv-main/bin/python \\
        --env series=/tmp/venv-series/bin/python

Each round runs one process per environment, in turn; each process times
--launches launches of a kernel of --threads threads in one block, each
thread calling a device function of another module --calls times (the
pattern where the cuda module is swapped in that module). The first launch
of each process is a warm-up and is not counted. Writes every launch time
and the provenance to --out, and prints the medians.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

DEVICE_MODULE = """
from numba import cuda


@cuda.jit(device=True)
def thread_index():
    return cuda.threadIdx.x
"""

KERNEL_MODULE = """
import json
import sys
import time

import numpy as np
from numba import cuda

from bench_device import thread_index

threads, calls, launches = map(int, sys.argv[1:4])


@cuda.jit
def kernel(out):
    i = cuda.threadIdx.x
    total = 0
    for _ in range(calls):
        total += thread_index()
    out[i] = total


out = np.zeros(threads, dtype=np.int64)
times = []
for _ in range(launches + 1):
    start = time.perf_counter()
    kernel[1, threads](out)
    times.append(time.perf_counter() - start)
assert (out == np.arange(threads) * calls).all()
print(json.dumps(times[1:]))
"""


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--env",
        action="append",
        required=True,
        metavar="LABEL=PYTHON",
        help="an environment to time; repeat for each",
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--launches", type=int, default=5)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--out", type=Path, default=HERE / "bench")
    args = parser.parse_args()
    envs = {}
    for item in args.env:
        label, sep, python = item.partition("=")
        if not sep or not label or not Path(python).exists():
            parser.error(f"--env {item}: expected LABEL=PATH_TO_PYTHON")
        envs[label] = python
    args.envs = envs
    for name in ("rounds", "launches", "threads", "calls"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def version(python):
    code = (
        "import importlib.metadata as m, sys; "
        "print(sys.version.split()[0], m.version('numba-cuda'), "
        "m.version('numba'))"
    )
    return subprocess.check_output([python, "-c", code], text=True).split()


def main():
    args = parse_args()
    work = Path(tempfile.mkdtemp(prefix="sim-bench-"))
    (work / "bench_device.py").write_text(DEVICE_MODULE)
    (work / "bench_kernel.py").write_text(KERNEL_MODULE)
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    started = datetime.datetime.now(datetime.timezone.utc)
    load = os.getloadavg()
    times = {label: [] for label in args.envs}
    for _ in range(args.rounds):
        for label, python in args.envs.items():
            out = subprocess.run(
                [
                    python,
                    "bench_kernel.py",
                    str(args.threads),
                    str(args.calls),
                    str(args.launches),
                ],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
            )
            if out.returncode != 0:
                sys.exit(f"{label}: exit {out.returncode}\n{out.stderr[-2000:]}")
            times[label].extend(json.loads(out.stdout.splitlines()[-1]))
    first = next(iter(args.envs))
    reference = statistics.median(times[first])
    result = {
        "date": started.isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": {
            "platform": platform.platform(),
            "cores": os.cpu_count(),
            "load_at_start": load,
            "load_at_end": os.getloadavg(),
        },
        "workload": {
            "threads": args.threads,
            "calls_per_thread": args.calls,
            "launches_per_process": args.launches,
            "rounds": args.rounds,
        },
        "environments": {
            label: {
                "python": python,
                "versions (python, numba-cuda, numba)": version(python),
                "median_seconds": statistics.median(times[label]),
                "max_seconds": max(times[label]),
                "ratio_to_" + first: statistics.median(times[label]) / reference,
                "launch_seconds": times[label],
            }
            for label, python in args.envs.items()
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench-{started:%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    for label, seen in result["environments"].items():
        print(
            f"{label}: median {seen['median_seconds']:.3f} s per launch "
            f"({seen['ratio_to_' + first]:.2f}x {first}), "
            f"max {seen['max_seconds']:.3f} s, n={len(seen['launch_seconds'])}"
        )
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
