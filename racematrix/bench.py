"""Benchmark of the matrix itself (``nox -s bench``): wall time of the
default matrix (simulator on) cold and warm, the overhead per environment,
and the same matrix under nox's defaults (virtualenv + pip, one session at a
time, environments recreated) as a ratio measured in the same run.

"Cold" means no virtual environment exists yet; the package caches of uv and
pip are left as they are (warm), since downloading every numba release again
measures the network, not the tool.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .fileio import write_json_atomic, write_text_atomic
from .provenance import machine_info, now_iso

PROJECT = Path(__file__).resolve().parent.parent


def timed_matrix(label, envdir, results_dir, extra_args, log):
    """Time the matrix and the report after it (tables, REPORT.md, plot):
    run one at a time, nox queues the report itself; in parallel it cannot,
    so it is run afterwards, and timed too."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATRIX_")}
    env.update(MATRIX_SIM="1", RACEMATRIX_RESULTS=str(results_dir))
    command = [sys.executable, "-m", "nox", "-s", "matrix", "--envdir",
               str(envdir), *extra_args]
    log(f"{label}: {' '.join(command[2:])}")
    started = time.perf_counter()
    done = subprocess.run(command, cwd=PROJECT, env=env, capture_output=True,
                          text=True)
    if "-j" in extra_args:
        subprocess.run([*command[:4], "report", *command[5:7]], cwd=PROJECT,
                       env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        log(f"{label}: nox exited {done.returncode}: {done.stdout[-800:]}")
    raws = [json.loads(p.read_text())
            for p in Path(results_dir, "raw").glob("*.json")]
    ran = [r for r in raws if r["verdict"] != "skipped"]
    pytest_seconds = [r.get("pytest_seconds", 0.0) for r in ran]
    return {"label": label, "command": "nox " + " ".join(command[3:]),
            "seconds": round(seconds, 1), "environments": len(raws),
            "ran": len(ran), "exit": done.returncode,
            "seconds_per_environment": round(seconds / max(len(raws), 1), 2),
            "mean_pytest_seconds": round(statistics.mean(pytest_seconds), 2)
            if pytest_seconds else None,
            "mean_overhead_seconds": round(statistics.mean(
                r["seconds"] - r.get("pytest_seconds", 0.0) for r in ran), 2)
            if ran else None}


def run(out_dir, log, command, jobs="auto"):
    scratch = Path(tempfile.mkdtemp(prefix="racematrix-bench-"))
    try:
        ours = scratch / "envs-uv"
        cold = timed_matrix("cold (uv, -j auto)", ours, scratch / "r1",
                            ["-j", jobs], log)
        warm = timed_matrix("warm (uv, -j auto, reused)", ours, scratch / "r2",
                            ["-j", jobs], log)
        warm_serial = timed_matrix("warm (uv, no -j, reused)", ours,
                                   scratch / "r4", [], log)
        defaults = timed_matrix(
            "nox defaults (-fb virtualenv, no -j, recreated)",
            scratch / "envs-virtualenv", scratch / "r3",
            ["-fb", "virtualenv", "--reuse-venv", "no"], log)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    data = {"runs": [cold, warm, warm_serial, defaults],
            "ratio_defaults_to_cold": round(defaults["seconds"] / cold["seconds"], 2),
            "ratio_defaults_to_warm": round(defaults["seconds"] / min(
                warm["seconds"], warm_serial["seconds"]), 2),
            "machine": machine_info(), "command": command,
            "finished": now_iso()}
    text = render(data)
    write_json_atomic(Path(out_dir) / "bench.json", data)
    write_text_atomic(Path(out_dir) / "bench.md", text)
    print(text)
    return data


def render(data):
    machine = data["machine"]
    lines = ["# Benchmark: the default matrix, simulator on", "",
             f"`{data['command']}`, finished {data['finished']} on "
             f"{machine['os']}, {machine['cores']} cores. Package caches warm; "
             f"\"cold\" means no virtual environment existed.", "",
             "| run | wall (s) | environments | ran | s per environment | "
             "mean pytest (s) | mean overhead (s) |",
             "|---|---|---|---|---|---|---|"]
    for run in data["runs"]:
        lines.append(f"| {run['label']} | {run['seconds']} | "
                     f"{run['environments']} | {run['ran']} | "
                     f"{run['seconds_per_environment']} | "
                     f"{run['mean_pytest_seconds']} | "
                     f"{run['mean_overhead_seconds']} |")
    lines += ["", f"nox's defaults take {data['ratio_defaults_to_cold']}x the "
                  f"cold time and {data['ratio_defaults_to_warm']}x the faster "
                  f"warm time. Every time includes the report after the "
                  f"matrix (tables, REPORT.md, plot)."]
    return "\n".join(lines) + "\n"
