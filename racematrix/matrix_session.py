"""``nox -s matrix``: each ``env`` session's environment, then the last word."""
from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import shutil
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import patching
from .envspec import EnvSpec
from .errors import BadInput
from .fileio import (clear_stale, folder_problem, results_lock,
                     scratch_folder, write_text_atomic)
from .install import install_resolved
from .measurement import (Built, LaunchTime, Measurement, RaceSuite,
                          refuse_own_options, run_all)
from .probers import note_matrix_env
from .suites import patched_packages
from .provenance import machine_info, now_iso
from .rawresult import make_raw, measured, record
from .report import build_report

if TYPE_CHECKING:
    import nox

    from .suites import Matrix

logger = logging.getLogger(__name__)


def run_environment(session: nox.Session, matrix: Matrix, spec: EnvSpec,
                    results_dir: str, total: int, command: str) -> str:
    """Build, measure and record ``spec``'s environment; the progress line."""
    note_matrix_env(session.virtualenv.location, spec)
    config, suite = matrix.configs[spec.suite], matrix.suites[spec.suite]
    count, pytest_args = split_count(session.posargs, config.count)
    base: dict[str, Any] = dict(machine=machine_info(), started=now_iso(),
                                command=command)
    clock = time.monotonic()

    def finish(detail: str | None = None, **fields: Any) -> str:
        raw = make_raw(spec, seconds=time.monotonic() - clock,
                       **{**base, **fields})
        written = record(raw, results_dir, detail)
        if measured(written) and not measured(raw):
            session.log(f"{spec.env_id}: this attempt measured nothing; the "
                        f"row measured {written['finished'][:16]} is kept, "
                        f"with the attempt beside it")
        return note_finished(results_dir, raw, run_id(session.parallel), total)

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
        measurements.append(LaunchTime(config.launches, config.max_launches))
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
    kinds = raw.get("kinds") or {"race": raw}
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
                  total: int) -> str:
    """Journal ``raw``; the progress line (done of ``total``, time left)."""
    journal = run_journal(results_dir, run)
    write_text_atomic(journal / f"{raw['env']}.json", json.dumps(
        {"env": raw["env"], "verdict": raw["verdict"], "runs": raw["runs"],
         "line": row_line(raw), "started": time.time() - raw["seconds"]}))
    entries = _entries(journal)
    done, where = len(entries), f"{len(entries)}/{total}"
    if done < total:
        took = time.time() - min(entry["started"] for entry in entries)
        where += f", ~{took / done * (total - done):.0f} s left"
    return f"[{where}] {raw['env']}: {row_line(raw)}"


def _entries(journal: Path) -> list[dict]:  # each written in one step
    return [json.loads(path.read_text())
            for path in sorted(journal.glob("*.json"))]


def finish_run(results_dir: str | Path, run: int,
               configured: Sequence[EnvSpec],
               command: str = "nox -s matrix") -> tuple[str, list[str]]:
    """Tables, report and plot once; the run's line and its error rows."""
    journal = run_journal(results_dir, run)
    entries = _entries(journal)
    shutil.rmtree(journal, ignore_errors=True)
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
        # Jinja2 and matplotlib: nox's own, from the noxfile's PEP 723 block.
        with results_lock(results):
            build_report([results / "raw"], results, results / "bisect",
                         command, configured=configured)
        line += (f"; table {results}/failure_rates.md, report "
                 f"{results}/REPORT.md, plot {results}/failure_rates.png")
    return line, [f"{entry['env']}: {entry['line']}" for entry in entries
                  if entry["verdict"] == "error" and not entry["runs"]]


def session_command(session_name: str, posargs: list[str],
                    environ: Mapping[str, str] = os.environ) -> str:
    """The command that reruns a session, MATRIX_* variables included."""
    rerun = ["nox", "-s", session_name, *(["--", *posargs] if posargs else [])]
    return " ".join([*(f"{name}={shlex.quote(environ[name])}" for name in (
        "MATRIX_PYTHONS", "MATRIX_SPECS", "MATRIX_SIM") if name in environ),
        shlex.join(rerun)])


def split_count(posargs: list[str], default: int) -> tuple[int, list[str]]:
    """``--count`` and the other pytest arguments (BadInput where bad)."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--count", nargs="?", action="append")
    args, rest = parser.parse_known_args(list(posargs))
    given = args.count or [str(default)]
    if len(given) > 1:
        raise BadInput(f"--count given {len(given)} times "
                       f"({', '.join(map(str, given))}): give it once")
    if not (count := given[0] or "").isdigit() or int(count) < 1:
        raise BadInput(f"--count needs a positive whole number, e.g. "
                       f"`-- --count 20` (got {count!r})")
    if own := refuse_own_options(rest):
        raise BadInput(own)
    return int(count), rest
