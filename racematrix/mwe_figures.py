"""``nox -s mwe_figures``: the MWE's rates and times per Python, the fixed
release, the presets, the trigger, and the rate as each knob moves alone."""
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
from .install import ProbeEnvironment, install_resolved, read_environment
from .interpreters import missing_interpreters
from .markdown import render
from .measurement import Built, RaceSuite
from .procs import venv_environ
from .provenance import stamp
from .stats import wilson_interval

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
# Each run's -k selection (None: the whole suite), options and repeats:
# about 1,000 runs of the suite's 22 tests or of the pattern's 16 cases.
RUNS = {"fixed": (None, (), math.ceil(1000 / 22)),
        "faithful": (PATTERN, ("--preset", "faithful"), math.ceil(1000 / 16)),
        "aggressive": (PATTERN, (), math.ceil(1000 / 16)),
        "trigger": (TRIGGER, (), 20),
        "trigger_faithful": (TRIGGER, ("--preset", "faithful"), 20)}
SUITE_RUNS, SWEEP_REPEATS = 20, 8


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


def suite_row(env: ProbeEnvironment, info: dict) -> dict:
    """How often one ``pytest -x`` of the suite reproduced, and its times."""
    runs = [timed_pytest(env, "-x") for _ in range(SUITE_RUNS)]
    imports = timeit.repeat(lambda: subprocess.run(
        ["python", "-c", "import numba.cuda"], check=True,
        env=venv_environ(env.bin, {"NUMBA_ENABLE_CUDASIM": "1"})),
        number=1, repeat=5)
    return {"python": info["python"], "numba": info["packages"]["numba"],
            "reproduced": sum(s["counts"]["target"] > 0 for _, s in runs),
            # -x: the pattern's cases run first, so a failure among them
            # means the pattern alone reproduced, without the trigger.
            "by_pattern": sum(any(name.startswith(PATTERN) and c["target"]
                                  for name, c in s["tests"].items())
                              for _, s in runs), "of": SUITE_RUNS,
            "median_x_seconds": round(statistics.median(
                seconds for seconds, _ in runs), 2),
            "median_import_seconds": round(statistics.median(imports), 2)}


def run(pythons: list[str], envdir: str, out_dir: str, command: str) -> dict:
    missing = missing_interpreters(pythons)
    if missing:
        raise BadInput(f"mwe_figures: {missing}, or set MATRIX_PYTHONS")
    figures: dict[str, Any] = {"pythons": []}
    for python in pythons:
        env, info = environment(envdir, python, "numba")
        figures["pythons"].append(suite_row(env, info))
        logger.info("Python %(python)s: reproduced in %(reproduced)s of "
                    "%(of)s runs of the suite", figures["pythons"][-1])
    fixed = environment(envdir, pythons[-1], "numba-cuda")
    for name, (tests, options, count) in RUNS.items():
        used, held = fixed if name == "fixed" else (env, info)
        _, summary = timed_pytest(
            used, *(["-k", tests] if tests else []), *options, count=count)
        figures[name] = {
            **{k: v for k, v in held["packages"].items()
               if k in ("numba", "numba-cuda")}, "python": held["python"],
            "tests": tests or "whole suite", "options": " ".join(options),
            "cases": len(summary["tests"]), **rate(summary["counts"])}
    low = figures["aggressive"]["ci95"][0]
    cases = figures["aggressive"]["cases"]
    # The chance all the pattern's cases pass, each failing at the lower bound.
    figures["suite_miss"] = {"cases": cases, "per_case_rate_low": low,
                             "probability": (1 - low) ** cases}
    figures["sweep"] = [{"knob": knob, "value": value, **rate(timed_pytest(
        env, "-k", PATTERN, f"--{knob}", value, count=SWEEP_REPEATS)[1][
            "counts"])} for knob, values in SWEEP.items() for value in values]
    figures.update(stamp(command))
    write_json_atomic(Path(out_dir) / "mwe_figures.json", figures)
    write_text_atomic(Path(out_dir) / "mwe_figures.md",
                      text := render("mwe_figures.md", figures=figures))
    logger.info("%s", text)
    return figures
