"""The measurement interface: handed a built environment, a measurement
returns its part of the raw result and writes nothing itself. A new metric is
a class like ``measure_race.RaceSuite`` plus the schema of its raw field,
``schemas/raw-fields/<field>.schema.json`` (``rawresult.validate_raw``)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .envspec import EnvSpec
from .suites import MWE_SUITE, Suite


@dataclass
class Built:
    """An installed environment. ``venv``: a nox Session or a
    ``venv.ProbeEnvironment``; ``keep_dir``: where evidence files the raw
    result names are kept (None: none)."""
    venv: Any
    spec: EnvSpec
    suite: Suite = MWE_SUITE
    keep_dir: Path | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    running: Callable[[], int] = field(default=lambda: 1)
    scratch: Path | None = None
    # Added by measurements that ride along in the suite's pytest process.
    pytest_args: tuple[str, ...] = ()
    pytest_env: dict[str, str] = field(default_factory=dict)


class Measurement(Protocol):
    """``measure(built)`` returns raw fields; one riding along in the suite's
    pytest also has ``suite_args(built)`` and ``suite_env(built)``."""
    name: str

    def measure(self, built: Built) -> dict[str, Any]: ...


def run_all(measurements: Sequence[Measurement], built: Built
            ) -> dict[str, Any]:
    """The measurements' fields, in order, up to one with an ``env_error``
    (later ones would measure a broken environment)."""
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
