"""The measurement interface. A measurement is handed a built environment
and returns its part of the raw result; it never writes the raw file, the
tables or the report (the session driver above it does).

The race suite (``measure_race``), the launch-time workload
(``measure_launch``) and a client suite (the race suite with the client's
folder) are measurements; the matrix, the bisects and the MWE's figures run
them. A new metric is one module with a class like theirs, plus the schema
of its raw field, ``schemas/raw-fields/<field>.schema.json``, which
``rawresult.validate_raw`` checks wherever the field appears.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .envspec import EnvSpec
from .suites import MWE_SUITE, Suite


@dataclass
class Built:
    """An environment that is installed and ready to measure in.

    ``venv`` is a nox Session or a ``venv.ProbeEnvironment`` (both have
    ``bin`` and ``log``); ``keep_dir`` is where evidence files that the raw
    result names (a launch's stacks) are kept, None to keep none."""
    venv: Any
    spec: EnvSpec
    suite: Suite = MWE_SUITE
    keep_dir: Path | None = None
    # What ``venv.read_environment`` found: Python and every package.
    environment: dict[str, Any] = field(default_factory=dict)
    # How many matrix sessions run right now (load changes a race's rate).
    running: Callable[[], int] = field(default=lambda: 1)
    # A folder of this environment's run, for the measurements' files.
    scratch: Path | None = None
    # What the measurements add to the suite's pytest command line and
    # environment (a measurement that rides along in the suite's process).
    pytest_args: tuple[str, ...] = ()
    pytest_env: dict[str, str] = field(default_factory=dict)


class Measurement(Protocol):
    """``measure(built)`` returns raw-result fields, e.g.
    ``{"launch_seconds": {...}}``. A measurement that rides along in the
    suite's pytest process also has ``suite_args(built)`` and
    ``suite_env(built)``: what it adds to that command line and its
    environment (it then reads its part in ``measure``)."""
    name: str

    def measure(self, built: Built) -> dict[str, Any]: ...


def run_all(measurements: Sequence[Measurement], built: Built
            ) -> dict[str, Any]:
    """Run the measurements in order and merge their fields; one that
    finds no test report (``env_error``) ends the list, since later ones
    would measure a broken environment."""
    built.pytest_args = tuple(
        arg for measurement in measurements
        for arg in getattr(measurement, "suite_args", lambda _: ())(built))
    for measurement in measurements:
        built.pytest_env.update(
            getattr(measurement, "suite_env", lambda _: {})(built))
    fields: dict[str, Any] = {}
    for measurement in measurements:
        fields.update(measurement.measure(built))
        if fields.get("env_error"):
            break
    return fields
