"""``nox -s matrix``: each ``env`` session's environment, then the last word."""
from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import shlex
import shutil
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from . import patching
from .envspec import EnvSpec
from .errors import BadInput
from .fileio import (clear_stale, folder_problem, results_lock,
                     scratch_folder, write_text_atomic)
from .install import ProbeEnvironment, install_resolved
from .measurement import (Built, LaunchTime, Measurement, RaceSuite,
                          refuse_own_options, run_all, run_launch_time)
from .probers import note_matrix_env
from .suites import patched_packages
from .provenance import machine_info, now_iso
from .rawresult import RawResult, make_raw, measured, read_raw, record
from .report import build_report

if TYPE_CHECKING:
    import nox

    from .suites import Matrix

logger = logging.getLogger(__name__)


def run_environment(session: nox.Session, matrix: Matrix, spec: EnvSpec,
                    results_dir: str, total: int) -> str:
    """Build, measure and record ``spec``'s environment; the progress line."""
    note_matrix_env(session.virtualenv.location, spec)
    config, suite = matrix.configs[spec.suite], matrix.suites[spec.suite]
    count, pytest_args = split_count(session.posargs, config.count)
    base: dict[str, Any] = dict(
        machine=machine_info(), started=now_iso(),
        command=session_command(session.name, session.posargs))
    clock = time.monotonic()

    def finish(detail: str | None = None, **fields: Any) -> str:
        fields = {"packages": {}, "python": "", "python_build": "", **fields}
        raw = make_raw(spec, seconds=time.monotonic() - clock,
                       **{**base, **fields})
        written = record(raw, results_dir, detail)
        if measured(written) and not measured(raw):
            session.log(f"{spec.env_id}: this attempt measured nothing; the "
                        f"row measured {written['finished'][:16]} is kept, "
                        f"with the attempt beside it")
        return note_finished(results_dir, raw, run_id(session.parallel),
                             total, session.virtualenv.location)

    installation = install_resolved(session, spec, suite=suite)
    base["resolution"] = installation.resolution
    if installation.problem:
        kind, reason = installation.problem
        if kind == "bad-input":  # not a measurement: no row for it
            raise BadInput(reason)
        if kind == "skip":
            return finish(skip_reason=reason)
        return finish(installation.detail, env_error=reason)
    environment = installation.environment
    if spec.patch:  # the diff for the first installed package it has
        patch, packages = matrix.patches[spec.patch], environment["packages"]
        package = next((name for name in patched_packages(spec)
                        if name in packages and patch.diff_for(
                            name, packages[name])), spec.target)
        try:
            base["patch"] = patching.apply(session, patch, package,
                                           packages.get(package, "0"))
        except patching.PatchError as error:  # never a result: an error row
            return finish(env_error=str(error))
    # nox's -v lowers its level below DEBUG: the installer's steps, pytest's.
    measurements: list[Measurement] = [RaceSuite(
        count, config.timeout, pytest_args,
        echo=logging.getLogger().getEffectiveLevel() < logging.DEBUG)]
    if suite.launch_time and config.launches:  # its own A/B: no other row
        measurements.append(LaunchTime(
            config.launches, config.max_launches))
    with scratch_folder() as scratch:
        fields = run_all(measurements, Built(
            session, spec, suite, environment=environment,
            scratch=Path(scratch)))
    return finish(fields.pop("env_error_detail", None),
                  **{**environment, **fields})


def check_results_folder(results_dir: str | Path) -> None:
    """BadInput where it cannot hold results; clears a killed run's leavings."""
    if problem := folder_problem(results_dir):
        raise BadInput(f"{problem}; set RACEMATRIX_RESULTS to a folder you "
                       f"can write")
    if scratch := clear_stale():
        logger.info("cleared what a killed run left: %d scratch folder(s)",
                    scratch)


def run_id(parallel: bool) -> int:
    """The nox process of this run: this one, or under -j its parent."""
    return os.getppid() if parallel else os.getpid()


def run_journal(results_dir: str | Path, run: int) -> Path:
    """This run's finished environments, one file each."""
    return Path(results_dir) / ".runs" / str(run)


def row_line(raw: Mapping[str, Any]) -> str:
    """A finished environment in one line: verdict, rates, launches."""
    if raw["verdict"] in ("skipped", "error") and not raw["runs"]:
        return f"{raw['verdict']}: {raw['reason']}"
    kinds = raw.get("kinds") or {"race": {
        "failures": raw["failures"], "runs": raw["runs"]}}
    parts = [raw["verdict"], *(f"{kind} {n['failures']}/{n['runs']}"
                               for kind, n in kinds.items() if n["runs"])]
    if raw["other_errors"] or raw["hangs"]:
        parts.append(f"{raw['other_errors']} other, {raw['hangs']} hung")
    launch = raw.get("launch_seconds") or {}
    if launch.get("error"):
        parts.append(f"launches: {launch['error'][:120]}")
    elif launch.get("n"):
        parts.append(f"{launch['n']} launches, median "
                     f"{launch['median']:.2f} s: {launch['decision']}")
    return ", ".join(parts)


def note_finished(results_dir: str | Path, raw: Mapping[str, Any], run: int,
                  total: int, venv: str | None = None) -> str:
    """Journal ``raw``; the progress line (done of ``total``, time left)."""
    journal = run_journal(results_dir, run)
    write_text_atomic(journal / f"{raw['env']}.json", json.dumps(
        {"env": raw["env"], "verdict": raw["verdict"], "runs": raw["runs"],
         "line": row_line(raw), "started": time.time() - raw["seconds"],
         "venv": venv}))
    entries = _entries(journal)
    done, where = len(entries), f"{len(entries)}/{total}"
    if done < total:
        took = time.time() - min(entry["started"] for entry in entries)
        where += f", ~{took / done * (total - done):.0f} s left"
    return f"[{where}] {raw['env']}: {row_line(raw)}"


def _entries(journal: Path) -> list[dict]:  # each written in one step
    return [json.loads(path.read_text())
            for path in sorted(journal.glob("*.json"))]


def launches_again_alone(results_dir: str | Path,
                         entries: list[dict]) -> list[str]:
    """Each undecided A/B timed again, alone (under -j it may have found no
    free core), the first as ``launch_seconds["beside"]``; a line each."""
    lines = []
    for entry in entries:
        raw = read_raw(Path(results_dir, "raw", f"{entry['env']}.json"))[0] \
            if entry.get("venv") else None  # a missing file: None
        first = cast(dict, raw or {}).get("launch_seconds") or {}
        if raw is None or first.get("decision") != "undecided":
            continue
        rule = first["rule"]  # an undecided record has one: its own pairs
        again = run_launch_time(
            ProbeEnvironment(entry["venv"], raw["python"]), raw["sim"],
            ("--pairs", str(rule["pairs"]), "--max-pairs",
             str(rule["max_pairs"])))
        again["concurrency"] = 1
        again["beside"] = {key: first.get(key) for key in (
            "decision", "ratio", "idle_cpus", "concurrency")}
        record(cast(RawResult, {**raw, "launch_seconds": again}), results_dir)
        lines.append(f"{entry['env']}: launches again, alone: "
                     f"{again.get('decision')} (ratio {again.get('ratio')}; "
                     f"beside the others: undecided, ratio "
                     f"{first.get('ratio')})")
    return lines


def finish_run(results_dir: str | Path, run: int,
               configured: Sequence[EnvSpec],
               command: str = "nox -s matrix") -> tuple[str, list[str]]:
    """Undecided A/Bs again, tables, report, plot; the line and error rows."""
    journal = run_journal(results_dir, run)
    entries = _entries(journal)
    shutil.rmtree(journal, ignore_errors=True)
    for again in launches_again_alone(results_dir, entries):
        logger.info(again)
    results = Path(results_dir)
    line = f"matrix: {len(entries)} environments"
    if entries:
        took = time.time() - min(entry["started"] for entry in entries)
        line += f" in {took:.0f} s: " + ", ".join(
            f"{n} {verdict}" for verdict, n in Counter(
                entry["verdict"] for entry in entries).most_common())
    if not_run := {spec.env_id for spec in configured} - {
            entry["env"] for entry in entries}:
        line += f"; {len(not_run)} not run here"
    if entries:
        with results_lock(results):
            # nox's environment has matplotlib, else `nox -s report` draws.
            build_report([results / "raw"], results, results / "bisect",
                         command, plot=importlib.util.find_spec(
                             "matplotlib") is not None,
                         configured=configured)
        line += "; " + ", ".join(f"{what} {results / name}" for what, name in (
            ("table", "failure_rates.md"), ("report", "REPORT.md"),
            ("plot", "failure_rates.png")))
    return line, [f"{entry['env']}: {entry['line']}" for entry in entries
                  if entry["verdict"] == "error" and not entry["runs"]]


def session_command(session_name: str, posargs: list[str],
                    environ: Mapping[str, str] = os.environ) -> str:
    """The command that reruns a session, MATRIX_* variables included."""
    variables = [f"{name}={shlex.quote(environ[name])}" for name in
                 ("MATRIX_PYTHONS", "MATRIX_SPECS", "MATRIX_SIM")
                 if name in environ]
    command = f"nox -s {shlex.quote(session_name)}"
    if posargs:
        command += " -- " + shlex.join(posargs)
    return " ".join([*variables, command])


def split_count(posargs: list[str], default: int) -> tuple[int, list[str]]:
    """``--count`` and the other pytest arguments (BadInput where bad)."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--count", nargs="?", action="append")
    args, rest = parser.parse_known_args(list(posargs))
    given = args.count or [str(default)]
    if len(given) > 1:
        raise BadInput(f"--count given {len(given)} times "
                       f"({', '.join(map(str, given))}): give it once")
    if given[0] is None:
        raise BadInput("--count needs a value: a positive whole number, "
                       "e.g. `-- --count 20`")
    if not given[0].isdigit() or int(given[0]) < 1:
        raise BadInput(f"--count needs a positive whole number, got "
                       f"{given[0]!r}")
    if own := refuse_own_options(rest):
        raise BadInput(own)
    return int(given[0]), rest
