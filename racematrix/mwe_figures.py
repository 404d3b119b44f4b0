"""The MWE's figures, measured again (``nox -s mwe_figures``): per Python
the suite's rate and wall times, the fixed release, the presets, the
trigger, and the pattern's rate as each knob moves alone."""
from __future__ import annotations

import logging
import math
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from . import outcomes
from .envspec import EnvSpec
from .errors import BadInput
from .fileio import write_json_atomic, write_text_atomic
from .install import install_resolved
from .interpreters import missing_interpreters
from .markdown import render
from .measurement import Built, RaceSuite
from .procs import venv_environ
from .provenance import machine_info, now_iso
from .stats import chance_all_pass, wilson_interval
from .venv import ProbeEnvironment, read_environment

logger = logging.getLogger(__name__)
SIM = {"NUMBA_ENABLE_CUDASIM": "1"}
TIMEOUT = 120  # seconds before one test run counts as hung

PATTERN = "test_buffer_allocation"  # CuBIE's pattern, without trigger or controls
TRIGGER = "test_syncthreads_trigger"
# Knob values tried one knob at a time (pytest options of the MWE), from
# Python's default switch interval and one call per thread upwards.
SWEEP = {"switch-interval": ["0.005", "1e-4", "1e-5", "1e-6"],
         "device-calls": ["1", "2", "4", "8", "16"],
         "threads-per-block": ["2", "8", "32", "64"],
         "blocks": ["1", "2", "4"]}


def timed_pytest(env: ProbeEnvironment, *args: str,
                 count: int = 1) -> tuple[float, dict]:
    """(seconds, summary) of one quiet run of the MWE."""
    race = RaceSuite(count, TIMEOUT, args, echo=False)
    fields = race.measure(Built(env, EnvSpec(env.python, ("numba",), True)))
    if fields.get("env_error"):
        raise RuntimeError(fields["env_error"])
    run = race.last_run
    assert run is not None and run.runs is not None  # measure() ran pytest
    return run.seconds, outcomes.summarize(run.runs, count)


def import_seconds(env: ProbeEnvironment, repeats: int = 5) -> float:
    def once() -> float:
        started = time.perf_counter()
        subprocess.run(["python", "-c", "import numba.cuda"], check=True,
                       env=venv_environ(env.bin, SIM))
        return time.perf_counter() - started
    return statistics.median(once() for _ in range(repeats))


def environment(envdir: str, python: str, requirements: list[str]
                ) -> tuple[ProbeEnvironment, dict]:
    spec = EnvSpec(python, tuple(requirements), True)
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


def suite_miss_bound(rate_low: float, cases: int) -> dict:
    """The chance all ``cases`` pass, each failing at the rate's lower bound."""
    return {"cases": cases, "per_case_rate_low": rate_low,
            "probability": chance_all_pass(rate_low, cases)}


def measured(env: ProbeEnvironment, info: dict, tests: str, *args: str,
             count: int) -> tuple[dict, dict]:
    """``tests`` (``-k``, or the whole suite) ``count`` times: rate, summary."""
    selection = [] if tests == "whole suite" else ["-k", tests]
    _, summary = timed_pytest(env, *selection, *args, count=count)
    versions = {name: info["packages"][name] for name in ("numba", "numba-cuda")
                if name in info["packages"]}
    return ({**versions, "python": info["python"], "tests": tests,
             "options": " ".join(args), **rate(summary["counts"])}, summary)


def measure(pythons: list[str], envdir: str, suite_runs: int = 20,
            many: int = 1000, trigger: int = 20, sweep_repeats: int = 8) -> dict:
    figures: dict[str, Any] = {"pythons": [], "machine": machine_info(),
                              "finished": None, "suite_runs": suite_runs}
    for python in pythons:
        env, info = environment(envdir, python, ["numba"])
        reproduced, by_pattern, walls = 0, 0, []
        for _ in range(suite_runs):
            # -x: the pattern's cases run first, so a failure among them
            # means the pattern alone reproduced, without the trigger.
            seconds, summary = timed_pytest(env, "-x")
            reproduced += summary["counts"]["target"] > 0
            by_pattern += any(name.startswith(PATTERN) and counts["target"]
                              for name, counts in summary["tests"].items())
            walls.append(seconds)
        row = {"python": info["python"], "numba": info["packages"]["numba"],
               "reproduced": reproduced, "by_pattern": by_pattern,
               "of": suite_runs,
               "median_x_seconds": round(statistics.median(walls), 2),
               "median_import_seconds": round(import_seconds(env), 2)}
        logger.info("Python %(python)s: reproduced in %(reproduced)s of "
                    "%(of)s runs of the suite", row)
        figures["pythons"].append(row)
        last_env, last_info = env, info
    pattern_cases = 16  # enough repeats for ~1,000 runs; counted below
    suite_tests = 22
    fixed_env, fixed_info = environment(envdir, pythons[-1], ["numba-cuda"])
    figures["fixed"], _ = measured(fixed_env, fixed_info, "whole suite",
                                   count=math.ceil(many / suite_tests))
    figures["faithful"], _ = measured(last_env, last_info, PATTERN,
                                      "--preset", "faithful", count=math.ceil(
                                          many / pattern_cases))
    figures["aggressive"], aggressive = measured(
        last_env, last_info, PATTERN, count=math.ceil(many / pattern_cases))
    figures["suite_miss"] = suite_miss_bound(
        figures["aggressive"]["ci95"][0], len(aggressive["tests"]))
    figures["trigger"], _ = measured(last_env, last_info, TRIGGER,
                                     count=trigger)
    figures["trigger_faithful"], _ = measured(
        last_env, last_info, TRIGGER, "--preset", "faithful", count=trigger)
    figures["sweep"] = sweep(last_env, sweep_repeats)
    figures["sweep_versions"] = {"python": last_info["python"],
                                 "numba": last_info["packages"]["numba"]}
    figures["finished"] = now_iso()
    return figures


def sweep(env: ProbeEnvironment, repeats: int) -> list[dict]:
    """The pattern's rate as each knob moves alone."""
    return [{"knob": knob, "value": value, **rate(timed_pytest(
        env, "-k", PATTERN, f"--{knob}", value, count=repeats)[1]["counts"])}
        for knob, values in SWEEP.items() for value in values]


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
