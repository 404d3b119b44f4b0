"""The bisect's probe: a release's environment (the matrix's where built) and
its suite run as a row runs it, on the launch price with the row's A/B."""
from __future__ import annotations

import logging
import math
import subprocess
import time
from argparse import Namespace
from collections.abc import Callable
from pathlib import Path

from .envspec import EnvSpec, load_config, project_config
from .fileio import scratch_folder
from .install import ProbeEnvironment, install_resolved
from .launch_time import PAIRS
from .measurement import Built, LaunchTime, RaceSuite, run_all
from .outcomes import RAN, Outcome
from .rawresult import Verdict, decide_verdict
from .search import PRICE, RACE, Probe, decide_probe
from .suites import PROJECT

logger = logging.getLogger(__name__)

# Where each matrix session notes its environment's folder, for the bisect.
ENV_INDEX = ".racematrix-envs"
# A/Bs of a release while undecided: TRIES, and on until TRY_SECONDS (a core
# frees when other work ends), RETRY_PAUSE s apart; then it is skipped.
TRIES = 3
TRY_SECONDS = 180.0
RETRY_PAUSE = 5.0


def note_matrix_env(location: str, spec: EnvSpec) -> None:
    """The matrix session's note: a link to ``spec``'s environment."""
    link = Path(location).parent / ENV_INDEX / spec.env_id
    link.parent.mkdir(exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to(Path(location).absolute())


def matrix_envdir(envdir: str | Path, spec: EnvSpec) -> str:
    """The matrix's environment of ``spec``, else the bisect's own."""
    noted = Path(envdir) / ENV_INDEX / spec.env_id
    return str(noted.resolve() if (noted / "bin" / "python").exists()
               else Path(envdir) / f"bisect-{spec.env_id}")


class ReleaseProber:
    """The search's probe; ``seen`` keeps each, ``on_probe()`` after each."""

    def __init__(self, args: Namespace, envdir: str) -> None:
        self.args, self.envdir = args, envdir
        self.on_time = args.metric == "launch-time"
        self.suite_size: int | None = None  # test runs in one run of the suite
        self.seen: dict[str, Probe] = {}
        self.on_probe: Callable[[], None] = lambda: None
        rows = load_config(project_config(PROJECT), {})  # as the matrix's
        self.timeout = rows.timeout
        self.launch_time = LaunchTime(rows.launches or PAIRS,
                                      rows.max_launches)

    def __call__(self, version: str, min_runs: int = 1,
                 whole: bool = False) -> Probe:
        probe = self.seen.get(version)
        if probe and (probe.verdict != "undecided" or probe.tries >= TRIES
                      if self.on_time else probe.verdict not in RACE
                      or decide_probe(probe.failures, probe.runs, min_runs,
                                      whole)):
            return probe
        started, fresh = time.monotonic(), probe is None
        probe = probe or Probe(str(version), "undecided" if self.on_time
                               else "not-reproduced")
        spec = EnvSpec(self.args.python, (f"{self.args.package}=={version}",
                                          *self.args.extra), True)
        env = ProbeEnvironment(matrix_envdir(self.envdir, spec),
                               self.args.python)
        try:
            if fresh or not (env.location / "bin" / "python").exists():
                env.create()  # a saved probe's environment may be gone
                installation = install_resolved(env, spec)
                if fresh or not installation.problem:
                    for name in ("way", "exclude_newer", "implementation",
                                 "requirements", "attempts"):
                        setattr(probe, name, installation.resolution[name])
                    probe.packages = installation.environment.get(
                        "packages", {})
                if installation.problem:
                    kind, reason = installation.problem
                    return self.keep(probe, ("skipped" if kind == "skip"
                                             else "error", reason))
            return self.keep(probe, self.price(env, spec, probe, started)
                             if self.on_time else
                             self.race(env, spec, probe, min_runs, whole))
        except subprocess.SubprocessError as error:
            return self.keep(probe, ("error", str(error)))

    def race(self, env: ProbeEnvironment, spec: EnvSpec, probe: Probe,
             min_runs: int, whole: bool) -> tuple[str, str]:
        """Batches of runs until the verdict is reached."""
        while not (verdict := decide_probe(probe.failures, probe.runs,
                                           min_runs, whole)):
            # pytest-repeat's --count that reaches min_runs in one process.
            count = 1 if not self.suite_size else \
                max(1, math.ceil((min_runs - probe.runs) / self.suite_size))
            suite = RaceSuite(count, self.timeout, [] if whole else ["-x"])
            problem, fields = self.run(env, spec, probe, [suite])
            if problem:
                return problem
            if not fields["counts"][Outcome.TARGET]:  # -x stopped no test
                self.suite_size = len(fields["summary"]["tests"])
        return verdict, (f"{probe.failures} of {probe.runs} runs failed with "
                         f"the race" if probe.failures else
                         f"0 of {probe.runs} runs failed")

    def price(self, env: ProbeEnvironment, spec: EnvSpec, probe: Probe,
              started: float) -> tuple[str, str]:
        """Suite runs with the row's A/B until it decides or TRIES end."""
        while True:
            problem, fields = self.run(env, spec, probe, [
                RaceSuite(1, self.timeout, ["-x"]), self.launch_time])
            if problem:
                return problem
            probe.tries += 1
            record = probe.launch = fields["launch_seconds"]
            decision = record.get("decision")
            said = (f"{decision} after {probe.tries} A/B(s): installed / "
                    f"unlocked swap {record.get('ratio')}x over {record['n']} "
                    f"pairs, {record.get('idle_cpus')} CPUs idle")
            if decision in PRICE or decision == "undecided" and \
                    probe.tries >= TRIES and \
                    time.monotonic() - started >= TRY_SECONDS:
                return decision, said
            if decision != "undecided":
                return "error", record.get("error") or said
            logger.info("probe %s %s: %s; again", self.args.package,
                        probe.version, said)
            time.sleep(RETRY_PAUSE)

    def run(self, env: ProbeEnvironment, spec: EnvSpec, probe: Probe,
            measurements: list) -> tuple[tuple[str, str] | None, dict]:
        """One run added to the probe: (verdict, reason) or None, fields."""
        with scratch_folder() as scratch:
            fields = run_all(measurements, Built(env, spec,
                                                scratch=Path(scratch)))
        if fields.get("env_error"):
            return ("error", fields["env_error"]), fields
        counts = fields["counts"]
        probe.runs += sum(counts[outcome] for outcome in RAN)
        probe.failures += counts[Outcome.TARGET]
        verdict, reason = decide_verdict(counts)
        if verdict in (Verdict.HUNG, Verdict.ERROR) or not probe.runs:
            messages = fields["summary"]["other_messages"]
            return (verdict, reason + (f": {messages[0]['message']}"
                                       if messages else "")), fields
        return None, fields

    def keep(self, probe: Probe, found: tuple[str, str]) -> Probe:
        probe.verdict, probe.reason = found
        self.seen[probe.version] = probe
        logger.info("probe %s %s: %s (%s)", self.args.package, probe.version,
                    *found)
        self.on_probe()
        return probe
