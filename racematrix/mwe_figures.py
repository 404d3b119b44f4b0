"""The MWE's figures, measured again (``nox -s mwe_figures``): per Python
the suite's rate and wall times, the fixed release, the presets, the
trigger, and the pattern's rate as each knob moves alone."""
from __future__ import annotations

import logging
import math
import statistics
import subprocess
import timeit
from pathlib import Path
from typing import Any

from . import outcomes
from .envspec import EnvSpec
from .errors import BadInput
from .fileio import write_json_atomic, write_text_atomic
from .install import install_resolved
from .interpreters import missing_interpreters
from .markdown import render
from .measure_race import RaceSuite
from .measurement import Built
from .procs import venv_environ
from .provenance import machine_info, now_iso
from .stats import chance_all_pass, wilson_interval
from .venv import ProbeEnvironment, read_environment

logger = logging.getLogger(__name__)
TIMEOUT = 120  # seconds before one test run counts as hung
PATTERN = "test_buffer_allocation"  # CuBIE's pattern, without trigger or controls
TRIGGER = "test_syncthreads_trigger"
# Knob values tried one knob at a time (pytest options of the MWE), from
# Python's default switch interval and one call per thread upwards.
SWEEP = {"switch-interval": ["0.005", "1e-4", "1e-5", "1e-6"],
         "device-calls": ["1", "2", "4", "8", "16"],
         "threads-per-block": ["2", "8", "32", "64"],
         "blocks": ["1", "2", "4"]}
# Repeats of the pattern's cases and of the whole suite for ~1,000 runs.
PATTERN_CASES, SUITE_TESTS = 16, 22


def timed_pytest(env: ProbeEnvironment, *args: str,
                 count: int = 1) -> tuple[float, dict]:
    """(seconds, summary) of one quiet run of the MWE."""
    run = RaceSuite(count, TIMEOUT, args, echo=False).run(
        Built(env, EnvSpec(env.python, ("numba",), True)))
    if run.runs is None:
        raise RuntimeError(run.no_report_reason(args))
    return run.seconds, outcomes.summarize(run.runs, count)


def environment(envdir: str, python: str, requirement: str
                ) -> tuple[ProbeEnvironment, dict]:
    spec = EnvSpec(python, (requirement,), True)
    env = ProbeEnvironment(Path(envdir) / f"figures-{spec.env_id}", python)
    env.create()
    problem = install_resolved(env, spec).problem
    if problem:
        raise RuntimeError(f"cannot build {spec.env_id}: {problem[1]}")
    return env, read_environment(env)


def rate(counts: dict) -> dict:
    runs = counts["target"] + counts["other"] + counts["hang"] + counts["pass"]
    return {"runs": runs, "failures": counts["target"],
            "other": counts["other"] + counts["hang"],
            "failure_rate": counts["target"] / runs if runs else None,
            "ci95": list(wilson_interval(counts["target"], runs))}


def measured(env: ProbeEnvironment, info: dict, tests: str, *args: str,
             count: int) -> tuple[dict, dict]:
    """``tests`` (``-k``, or the whole suite) ``count`` times: rate, summary."""
    selection = [] if tests == "whole suite" else ["-k", tests]
    _, summary = timed_pytest(env, *selection, *args, count=count)
    versions = {name: info["packages"][name] for name in ("numba", "numba-cuda")
                if name in info["packages"]}
    return ({**versions, "python": info["python"], "tests": tests,
             "options": " ".join(args), **rate(summary["counts"])}, summary)


def suite_row(env: ProbeEnvironment, info: dict, runs: int) -> dict:
    """How often one ``pytest -x`` of the suite reproduced, and its times."""
    reproduced, by_pattern, walls = 0, 0, []
    for _ in range(runs):
        # -x: the pattern's cases run first, so a failure among them
        # means the pattern alone reproduced, without the trigger.
        seconds, summary = timed_pytest(env, "-x")
        reproduced += summary["counts"]["target"] > 0
        by_pattern += any(name.startswith(PATTERN) and counts["target"]
                          for name, counts in summary["tests"].items())
        walls.append(seconds)
    imports = timeit.repeat(lambda: subprocess.run(
        ["python", "-c", "import numba.cuda"], check=True,
        env=venv_environ(env.bin, {"NUMBA_ENABLE_CUDASIM": "1"})),
        number=1, repeat=5)
    return {"python": info["python"], "numba": info["packages"]["numba"],
            "reproduced": reproduced, "by_pattern": by_pattern, "of": runs,
            "median_x_seconds": round(statistics.median(walls), 2),
            "median_import_seconds": round(statistics.median(imports), 2)}


def measure(pythons: list[str], envdir: str, suite_runs: int = 20,
            many: int = 1000, trigger: int = 20, sweep_repeats: int = 8) -> dict:
    figures: dict[str, Any] = {"pythons": [], "machine": machine_info(),
                               "suite_runs": suite_runs}
    for python in pythons:
        env, info = environment(envdir, python, "numba")
        figures["pythons"].append(suite_row(env, info, suite_runs))
        logger.info("Python %(python)s: reproduced in %(reproduced)s of "
                    "%(of)s runs of the suite", figures["pythons"][-1])
    fixed_env, fixed_info = environment(envdir, pythons[-1], "numba-cuda")
    figures["fixed"], _ = measured(fixed_env, fixed_info, "whole suite",
                                   count=math.ceil(many / SUITE_TESTS))
    pattern_count = math.ceil(many / PATTERN_CASES)
    figures["faithful"], _ = measured(env, info, PATTERN, "--preset",
                                      "faithful", count=pattern_count)
    figures["aggressive"], aggressive = measured(env, info, PATTERN,
                                                 count=pattern_count)
    low, cases = figures["aggressive"]["ci95"][0], len(aggressive["tests"])
    # The chance all the pattern's cases pass, each failing at the lower bound.
    figures["suite_miss"] = {"cases": cases, "per_case_rate_low": low,
                             "probability": chance_all_pass(low, cases)}
    figures["trigger"], _ = measured(env, info, TRIGGER, count=trigger)
    figures["trigger_faithful"], _ = measured(env, info, TRIGGER, "--preset",
                                              "faithful", count=trigger)
    figures["sweep"] = [{"knob": knob, "value": value, **rate(timed_pytest(
        env, "-k", PATTERN, f"--{knob}", value, count=sweep_repeats)[1][
            "counts"])} for knob, values in SWEEP.items() for value in values]
    figures["sweep_versions"] = {"python": info["python"],
                                 "numba": info["packages"]["numba"]}
    figures["finished"] = now_iso()
    return figures


def run(pythons: list[str], envdir: str, out_dir: str, command: str) -> dict:
    missing = missing_interpreters(pythons)
    if missing:
        raise BadInput(f"mwe_figures: {missing}, or set MATRIX_PYTHONS")
    figures = measure(pythons, envdir)
    figures["command"] = command
    write_json_atomic(Path(out_dir) / "mwe_figures.json", figures)
    write_text_atomic(Path(out_dir) / "mwe_figures.md",
                      text := render("mwe_figures.md", figures=figures))
    logger.info("%s", text)
    return figures
