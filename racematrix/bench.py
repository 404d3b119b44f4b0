"""``nox -s bench``: what the project's commands cost here, each part
(``PARTS``) as data, timed against scratch folders into results/bench.*."""
from __future__ import annotations

import json
import logging
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import distributions, version
from pathlib import Path
from typing import Any

from . import launch_time
from .errors import BadInput, OneLineArgumentParser
from .fileio import write_json_atomic, write_text_atomic
from .index import index_url
from .interpreters import find_interpreter, install_hint
from .markdown import render
from .procs import stop_process_group
from .provenance import machine_info, now_iso
from .rawresult import RawResult, Verdict, load_raw_dirs

logger = logging.getLogger(__name__)
PROJECT = Path(__file__).resolve().parent.parent
ENVS = PROJECT / ".nox"  # warm: the environments this checkout already has
# A part still running past this is stopped; its time is a bound.
LIMIT = 3600.0
# A fixed pure-Python loop timed before each part: how fast the host ran.
HOST_LOOP = 5_000_000


@dataclass(frozen=True)
class Part:
    """One part: what nox runs, where, and what is read after."""
    label: str
    nox: tuple[str, ...]
    read: str = "rows"  # rows (the matrix's), bisect or tests
    environ: Mapping[str, str] = field(default_factory=dict)
    clone: bool = False  # in a fresh clone: the committed files, no .nox
    new_user: bool = False  # a clone, nox alone on NEW_USER_PYTHON, script mode
    rerun: bool = False  # warm: the committed rows first, as a rerun has them
    fill_cache: bool = False  # pip's cache filled first with the rows' wheels
    beside: tuple[str, ...] = ()  # nox's arguments of a load, stopped after
    baseline: Part | None = None  # run first, as the part's reference
    limit: float = LIMIT


MATRIX = ("-s", "matrix", "-j", "auto")
TIME_BISECT = ("-s", "bisect", "--", "--package", "numba-cuda", "--python",
               "3.12", "--metric", "launch-time")
# The Python whose MWE rows the `defaults` part runs both ways.
DEFAULTS_PYTHON = {"MATRIX_PYTHONS": "3.12"}
# A new user's nox (README: `pip install nox`), without the noxfile's
# dependencies: nox's script mode makes their environment in the clone's .nox.
NEW_USER_PYTHON = "3.13"
PARTS = {
    "cold": Part("cold: a fresh clone, empty caches (uv's, matplotlib's, "
                 "all of XDG_CACHE_HOME), nox on Python 3.13 alone",
                 MATRIX, new_user=True, environ={
                     "XDG_CACHE_HOME": "{scratch}/cache",
                     "UV_CACHE_DIR": "{scratch}/cache/uv"}),
    "warm": Part("warm: the same environments again", MATRIX, rerun=True),
    "warm-no-launches": Part("warm, no launch time (MATRIX_LAUNCHES=0)",
                             MATRIX, environ={"MATRIX_LAUNCHES": "0"},
                             rerun=True),
    "defaults": Part(
        "nox's defaults (virtualenv and its pip, the pins resolved by uv; one "
        "at a time, recreated; pip's cache filled with the rows' wheels "
        "first): the same rows",
        ("-s", "matrix", "-fb", "virtualenv", "--reuse-venv", "no"),
        environ=DEFAULTS_PYTHON, clone=True, rerun=True, fill_cache=True,
        baseline=Part("the project, warm: Python 3.12's MWE rows", MATRIX,
                      environ=DEFAULTS_PYTHON, rerun=True)),
    "time-bisect": Part("bisect on launch time", TIME_BISECT, "bisect"),
    "time-bisect-loaded": Part("bisect on launch time, beside the matrix",
                               TIME_BISECT, "bisect", beside=MATRIX),
    "tests": Part("nox -s tests, a fresh clone, nox on Python 3.13 alone",
                  ("-s", "tests"), "tests", new_user=True),
}


def parse_args(argv: list[str]) -> list[str]:
    """The parts asked for, in the order given (comma-separated)."""
    parser = OneLineArgumentParser(prog="nox -s bench --", label="bench",
                                   help_hint="nox -s bench -- --help")
    parser.add_argument("--parts", nargs="+", choices=PARTS,
                        default=list(PARTS), help="default: all")
    return parser.parse_args([word.strip() for arg in argv
                              for word in arg.split(",") if word.strip()]).parts


def run_part(part: Part, scratch: Path) -> dict[str, Any]:
    """Run one part: its figures, read from what it wrote."""
    results = Path(tempfile.mkdtemp(dir=scratch))
    if part.rerun:
        shutil.copytree(PROJECT / "results" / "raw", results / "raw")
    (results / "raw").mkdir(exist_ok=True)
    if part.read == "bisect":  # the race bisects first, as a checkout has
        (results / "bisect").mkdir()
        for path in (PROJECT / "results" / "bisect").glob("*.json"):
            if not path.name.endswith(("launch-time.json", ".partial.json")):
                shutil.copy(path, results / "bisect")
    cwd, python = PROJECT, sys.executable
    if part.clone or part.new_user:
        cwd = results / "project"
        subprocess.run(["git", "clone", "--quiet", str(PROJECT), str(cwd)],
                       check=True)
    if part.new_user:  # `pip install nox`, before the clock
        base = find_interpreter(NEW_USER_PYTHON)
        if not base:
            raise BadInput(f"bench: {part.label}: no Python {NEW_USER_PYTHON}"
                           f" here; {install_hint(NEW_USER_PYTHON)}")
        subprocess.run(["uv", "venv", "-q", "--python", base,
                        str(results / "nox")], check=True)
        python = str(results / "nox" / "bin" / "python")
        subprocess.run(["uv", "pip", "install", "-q", "--python", python,
                        f"nox=={version('nox')}"], check=True)
    environ = {**{k: v for k, v in os.environ.items()
                  if not k.startswith(("MATRIX_", "RACEMATRIX_RESULTS"))},
               **{k: v.format(scratch=scratch) for k, v in part.environ.items()},
               **({"NOX_SCRIPT_MODE": "reuse"} if part.new_user else {})}

    def nox(arguments: tuple[str, ...], into: Path | None,
            out: int = subprocess.PIPE) -> subprocess.Popen[str]:
        where = {"RACEMATRIX_RESULTS": str(into)} if into else {}
        return subprocess.Popen(
            [python, "-m", "nox", *arguments], cwd=cwd,
            env={**environ, **where}, text=True, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True)
    command = " ".join([*(f"{k}={shlex.quote(v)}" for k, v in
                          part.environ.items() if k.startswith("MATRIX_")),
                        "nox", shlex.join(part.nox)])
    logger.info(f"{part.label}: {command}")
    started, clock = now_iso(), time.perf_counter()
    load = nox(part.beside, results / "beside", subprocess.DEVNULL) \
        if part.beside else None
    process = nox(part.nox, None if part.read == "tests" else results)
    cut, output = False, ""
    try:
        output = process.communicate(timeout=part.limit)[0]
    except subprocess.TimeoutExpired:
        cut = True
    finally:  # what it left running, and the load
        seconds = time.perf_counter() - clock
        stop_process_group(process)
        alone = load is not None and load.poll() is not None
        if load:
            stop_process_group(load)
    if cut:
        output = process.communicate()[0]
    if process.returncode:
        logger.warning(f"{part.label}: exited {process.returncode}: "
                       f"{output[-600:]}")
    found: dict[str, Any] = {
        "label": part.label, "command": command, "seconds": round(seconds, 1),
        "exit": process.returncode, **({"cut": True} if cut else {})}
    if part.read == "rows":
        found.update(matrix_figures([
            raw for _, raw in load_raw_dirs([results / "raw"])
            if raw["finished"] >= started], part.environ))
    elif part.read == "bisect":
        data = next((json.loads(path.read_text()) for path in
                     (results / "bisect").glob("*launch-time.json")), {})
        found.update({key: data.get(key, "") for key in
                      ("summary", "boundary", "decisive_probes")})
    elif part.read == "tests":
        lines = output.strip().splitlines()
        summary = next((line for line in reversed(lines) if " passed" in line),
                       "").strip("= ")
        failed = [line.split()[1] for line in lines
                  if line.startswith("FAILED ")]
        found["summary"] = f"{summary}: {', '.join(failed)}" if failed else summary
    if load:
        found["summary"] += (f"; `nox {shlex.join(part.beside)}` ran beside "
                             f"it {'but ended first' if alone else 'to its end'}")
    return found


def matrix_figures(raws: list[RawResult], environ: Mapping[str, str]
                   ) -> dict[str, Any]:
    """A matrix run's figures from the rows it wrote; where its time went,
    by suite and verdict, costliest first."""
    ran = [raw for raw in raws if raw["verdict"] is not Verdict.SKIPPED]
    launches = [raw["launch_seconds"]["n"] for raw in ran
                if raw.get("launch_seconds", {}).get("n") is not None]
    decisions: dict[str, Counter[str]] = {}
    groups: dict[tuple[str, str], list[RawResult]] = {}
    for raw in ran:
        if decision := raw.get("launch_seconds", {}).get("decision"):
            decisions.setdefault(str(raw["verdict"]), Counter())[decision] += 1
        groups.setdefault((raw.get("suite", "mwe"), str(raw["verdict"])),
                          []).append(raw)
    return {"environment": dict(environ), "rows": len(raws), "ran": len(ran),
            "session_seconds": round(sum(r["seconds"] for r in ran), 1),
            "where": sorted(({
                "suite": suite, "verdict": verdict, "rows": len(rows),
                "seconds": round(sum(r["seconds"] for r in rows), 1),
                "launch_seconds": round(sum(r.get("launch_seconds", {}).get(
                    "seconds") or 0.0 for r in rows), 1)}
                for (suite, verdict), rows in groups.items()),
                key=lambda group: -group["seconds"]),
            "mean_pytest_seconds": round(statistics.mean(
                r["pytest_seconds"] for r in ran), 2) if ran else None,
            "launches_per_row": [min(launches), max(launches)]
            if launches else None,
            "python_builds": sorted({r["python_build"] for r in ran}),
            "installers": dict(Counter(r.get("resolution", {}).get(
                "installer") or "not recorded" for r in ran)),
            "decisions": {verdict: dict(counts)
                          for verdict, counts in decisions.items()}}


def mwe_rows(python: str, raws: Path = PROJECT / "results" / "raw"
             ) -> list[RawResult]:
    """The committed MWE rows of ``python`` (simulator on, unpatched)."""
    return [row for _, row in load_raw_dirs(sorted(raws.glob(
        f"py{python}-*-sim1.json"))) if row.get("suite", "mwe") == "mwe"
        and "patch" not in row["spec"]]


def fill_pip_cache(python: str, scratch: Path) -> None:
    """``pip download`` of each committed MWE row's packages of ``python``
    (as installed) by the pip virtualenv seeds, from install's index."""
    pip = scratch / "pip"
    subprocess.run([sys.executable, "-m", "virtualenv", "-q", "-p",
                    find_interpreter(python) or python, str(pip)], check=True)
    for row in filter(lambda row: row["packages"], mwe_rows(python)):
        done = subprocess.run([
            pip / "bin" / "python", "-m", "pip", "download", "-q", "--no-deps",
            "--only-binary", ":all:", "--index-url", index_url(), "-d",
            scratch / "wheels", *(f"{name}=={version}" for name, version in
                                  sorted(row["packages"].items()))],
            capture_output=True, text=True)
        if done.returncode:
            logger.warning(f"pip download for {row['env']}: "
                           f"{done.stderr.strip()[-300:]}")


def run(out_dir: str | Path, command: str, argv: list[str]) -> dict[str, Any]:
    """Run the parts asked for; bench.json/md keep the others' figures."""
    names = parse_args(list(argv))
    path = Path(out_dir) / "bench.json"
    data = json.loads(path.read_text()) if path.exists() else {"parts": {}}
    data["versions"] = {  # the bench's Python build, the tools that ran it
        "python": f"{platform.python_implementation()} "
                  f"{platform.python_version()}",
        **{dist.name: dist.version for dist in distributions()
           if dist.name in ("nox", "uv", "virtualenv")}}
    scratch = Path(tempfile.mkdtemp(prefix="racematrix-bench-"))
    try:
        if any(PARTS[name].rerun for name in names) and \
                not any(ENVS.glob("env-*")):  # warm needs environments
            run_part(Part("warm-up", MATRIX), scratch)
        for name in names:
            part = PARTS[name]
            load, loop = os.getloadavg()[0], round(statistics.median(
                timeit.repeat("for i in range(n): total += i", "total = 0",
                              number=1, repeat=3, globals={"n": HOST_LOOP})), 3)
            if part.fill_cache:  # warm, as a returning user's cache is
                fill_pip_cache(part.environ["MATRIX_PYTHONS"], scratch)
            project = part.baseline and run_part(part.baseline, scratch)
            found = run_part(part, scratch)
            if project:
                found.update(project=project, times_the_project=round(
                    found["seconds"] / project["seconds"], 1))
            data["parts"][name] = {**found, "finished": now_iso(),
                                   "machine": machine_info(),
                                   "load_before": load,
                                   "host_loop_before": loop}
            # Written after each part: a later part's failure loses nothing.
            data.update(command=command, finished=now_iso())
            write_json_atomic(path, data)
            write_text_atomic(path.with_suffix(".md"), render_bench(data))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(render_bench(data))
    return data


def render_bench(data: dict[str, Any]) -> str:
    """results/bench.md: the parts' table, then what their figures say."""
    parts = {name: data["parts"][name] for name in PARTS
             if name in data["parts"]}
    rows_workload = {"switch_interval": launch_time.SWITCH_INTERVAL,
                     "device_calls": launch_time.DEVICE_CALLS,
                     "idle_wait": launch_time.IDLE_WAIT}
    # The study that chose the rows' workload, as recorded (no longer run).
    return render("bench.md", data=data, parts=parts, host_loop=HOST_LOOP,
                  warm=parts.get("warm", {}), rows_workload=rows_workload,
                  study=data["parts"].get("workload"))
