"""Probes for the bisects: one release's environment built (or the
matrix's reused) and measured with the same measurements the matrix uses,
as often as the search asks. ``ReleaseProber`` feeds the race's search,
``LaunchTimeProber`` the search on launch time."""
import json
import math
import subprocess
import time
from pathlib import Path

from .envspec import EnvSpec
from .install import install, install_resolved
from .measure_launch import (LIMIT, ROW_DEVICE_CALLS, ROW_LOCATION,
                             LaunchServer, workload_options)
from .measure_race import RaceSuite
from .measurement import Built
from .outcomes import RAN, Outcome
from .provenance import gpu_name
from .race_search import Probe, decide_probe
from .rawresult import Verdict, decide_verdict
from .stats import quantile
from .time_search import TimeProbe, TimeRule, median_text
from .venv import ProbeEnvironment

# Where each matrix session notes the folder of its environment, so that
# a bisect of the same release reuses it.
ENV_INDEX = ".racematrix-envs"


def note_matrix_env(location, spec):
    """Called by the matrix session: ``spec``'s environment is at
    ``location`` (a folder under nox's envdir)."""
    index = Path(location).parent / ENV_INDEX
    index.mkdir(parents=True, exist_ok=True)
    (index / f"{spec.env_id}.json").write_text(
        json.dumps({"location": str(Path(location).absolute())}))


def matrix_envdir(envdir, spec):
    """Where ``nox -s matrix`` keeps the environment of ``spec``, so that a
    bisect reuses it; a folder of the bisect's own where the matrix has
    not built it."""
    try:
        noted = json.loads((Path(envdir) / ENV_INDEX /
                            f"{spec.env_id}.json").read_text())["location"]
    except (OSError, ValueError, KeyError):
        noted = None
    if noted and (Path(noted) / "bin" / "python").exists():
        return noted
    return str(Path(envdir) / f"bisect-{spec.env_id}")


class ReleaseProber:
    """``probe(version, min_runs)`` for the search, backed by real
    environments and pytest runs; keeps what each version has seen."""

    def __init__(self, args, envdir, log, on_probe=None):
        self.args = args
        self.envdir = envdir
        self.log = log
        self.suite_size = None  # test runs in one run of the suite
        self.seen = {}
        # Called after each finished probe (the bisect saves its probes so
        # far, so that an interrupted bisect resumes).
        self.on_probe = on_probe or (lambda: None)
        self.installed = set()  # versions installed by this process

    def spec(self, version):
        return EnvSpec(self.args.python,
                       (f"{self.args.package}=={version}", *self.args.extra),
                       self.args.sim)

    def __call__(self, version, min_runs, whole=False):
        previous = self.seen.get(version)
        # More runs for a release that passed so far, or for a rate.
        more = previous and previous.runs < min_runs and (
            previous.verdict == "not-reproduced"
            or whole and previous.verdict == "reproduced")
        if previous and not more:
            return previous
        started = time.monotonic()
        probe = previous or Probe(str(version), "not-reproduced")
        spec = self.spec(version)
        env = ProbeEnvironment(matrix_envdir(self.envdir, spec),
                               self.args.python)
        try:
            if not spec.sim and not gpu_name():
                return self._keep(probe, "skipped", "no CUDA GPU", started)
            if previous is None or version not in self.installed and \
                    not (env.location / "bin" / "python").exists():
                # A probe saved by an interrupted run needs its
                # environment only where it is gone.
                env.create()
                installation = install_resolved(env, spec)
                if previous is None or not installation.problem:
                    record_installation(probe, installation)
                if installation.problem:
                    kind, reason = installation.problem
                    return self._keep(probe, {"skip": "skipped"}.get(
                        kind, "error"), reason, started)
            self.installed.add(version)
            while True:
                verdict = decide_probe(probe.failures, probe.runs, min_runs,
                                       whole=whole)
                if verdict and probe.runs:
                    return self._keep(probe, verdict, _probe_reason(probe,
                                      verdict), started)
                problem = self._batch(env, spec, probe,
                                      self._batch_count(probe, min_runs),
                                      whole)
                if problem:
                    verdict, reason = problem
                    return self._keep(probe, verdict, reason, started)
        except subprocess.SubprocessError as error:
            return self._keep(probe, "error", str(error), started)

    def _batch_count(self, probe, min_runs):
        """pytest-repeat's --count that reaches ``min_runs`` in one process
        (``-x`` still stops it at the first failure)."""
        if not self.suite_size:
            return 1
        return max(1, math.ceil((min_runs - probe.runs) / self.suite_size))

    def _batch(self, env, spec, probe, count, whole=False):
        # Runs asked for whole (a rate: the ends' first look, more runs
        # at the reproducing end) go to the end; the others stop at the
        # first failure, which is all a verdict needs.
        race = RaceSuite(count, self.args.timeout, [] if whole else ["-x"])
        fields = race.measure(Built(env, spec))
        if fields.get("env_error"):
            return "error", fields["env_error"]
        counts = fields["counts"]
        run = race.last_run
        if run.returncode == 0 and count == 1:
            self.suite_size = len(run.runs)
        probe.runs += sum(counts[outcome] for outcome in RAN)
        probe.failures += counts[Outcome.TARGET]
        verdict, reason = decide_verdict(counts)
        if verdict in (Verdict.HUNG, Verdict.ERROR) or not probe.runs:
            messages = fields["summary"]["other_messages"]
            return verdict, reason + (f": {messages[0]['message']}"
                                      if messages else "")
        return None

    def _keep(self, probe, verdict, reason, started):
        probe.verdict = verdict
        probe.reason = reason
        probe.seconds = round(probe.seconds + time.monotonic() - started, 2)
        self.seen[probe.version] = probe
        self.log(f"probe {self.args.package} {probe.version}: {verdict} "
                 f"({reason})")
        self.on_probe()
        return probe


def record_installation(probe, installation):
    """Copy how the release was installed into its probe."""
    probe.way = installation.way
    probe.exclude_newer = installation.exclude_newer
    probe.requirements = list(installation.requirements)
    probe.attempts = installation.resolution()["attempts"]
    probe.packages = dict(installation.packages)
    probe.implementation = installation.implementation


def _probe_reason(probe, verdict):
    if verdict == "reproduced":
        return f"{probe.failures} of {probe.runs} runs failed with the race"
    return f"0 of {probe.runs} runs failed"


# The limit of the bisect on time: the stall threshold (TimeRule's
# stall_factor) times the first release's median, within these bounds. A
# launch past it is a stall, and the rule counts it as one whatever the
# fast end's median drifts to; running it longer would tell the rule
# nothing more, and a slow end's launches are most of a probe's time.
LIMIT_FLOOR = 1.0
LIMIT_PER_MEDIAN = TimeRule.stall_factor
# The bisect's launches: the matrix rows' timing workload. Fewer calls
# would make a look cheaper on an idle machine (400: 195 s against 217-270
# s), but under load a fixed release then hardly stalls: beside the warm
# matrix, 0.30.4's median was 0.59 s against 0.47 s before the fix, and
# the ends could not be told apart (measure_launch says the same of 250).
BISECT_WORKLOAD = {"device_calls": ROW_DEVICE_CALLS, "location": ROW_LOCATION}
# Servers kept alive at once: the two ends and the release being placed.
LIVE_SERVERS = 3


class LaunchTimeProber:
    """``measure(version, launches[, alongside])`` for ``bisect_on_time``,
    backed by real environments: ``env_for(version)`` returns (a ready
    environment, None) or (None, (verdict, reason)) when the release cannot
    be installed. Each release's launches come from a ``LaunchServer``
    (numba imported once, each launch in a fork killed at the limit); with
    ``alongside``, each new launch of the release is followed by one launch
    of each release alongside, so that they share the machine's load.
    Every sample is kept.

    A launch past the limit is evidence, not a gap: it counts at the limit,
    as a stall. The limit starts at ``limit`` and, once the first release
    has been timed, becomes ``LIMIT_PER_MEDIAN`` times its median (at least
    ``LIMIT_FLOOR``, at most ``limit``), so that a stalling release costs
    seconds a launch rather than the whole limit; every sample taken so far
    is cut at the new limit, and all releases are compared at one limit."""

    def __init__(self, env_for, sim, log, limit=LIMIT, on_probe=None,
                 workload=BISECT_WORKLOAD):
        self.on_probe = on_probe or (lambda: None)
        self.workload = dict(workload)
        self.env_for = env_for
        self.sim = sim
        self.log = log
        self.limit = limit
        self.limit_set = False
        self.seen = {}
        self.servers = {}  # version -> LaunchServer, most recent last

    def __call__(self, version, launches, alongside=()):
        order = [str(version), *map(str, alongside)]
        probes = [self.seen.setdefault(v, TimeProbe(v)) for v in order]
        probe = probes[0]
        missing = launches - len(probe.samples)
        if missing > 0 and probe.verdict not in ("error", "skipped"):
            started = time.monotonic()
            timing = [(each, server) for each in probes
                      if (server := self._server(each))]
            for _ in range(missing):
                for each, server in timing:
                    self._launch(each, server)
                if probe.verdict == "error":
                    break
            if probe.samples and not self.limit_set:
                self.set_limit(_median(probe.samples))
            probe.seconds = round(probe.seconds + time.monotonic() - started,
                                  2)
            for each in probes:
                each.past_limit = sum(1 for s in each.samples
                                      if s >= self.limit)
            self.log(f"timed {version}" + (
                f" in turn with {', '.join(order[1:])}" if alongside else "")
                + ": " + "; ".join(
                    f"{p.version} {len(p.samples)} launches, median "
                    f"{median_text(p)}, {p.past_limit} past the "
                    f"{self.limit:g} s limit" for p in probes))
            self.on_probe()
        return probes if alongside else probe

    def _server(self, probe):
        """The release's live server, started where needed; None (and the
        probe's verdict set) where it cannot be timed."""
        if probe.verdict in ("error", "skipped"):
            return None
        server = self.servers.pop(probe.version, None)
        if server is None:
            env, problem = self.env_for(probe.version)
            if problem:
                probe.verdict, probe.reason = problem
                return None
            server = LaunchServer(env, self.sim, self.limit,
                                  workload_options(self.workload))
        self.servers[probe.version] = server  # most recently used last
        while len(self.servers) > LIVE_SERVERS:
            self.servers.pop(next(iter(self.servers))).close()
        if server.failed:
            probe.verdict, probe.reason = "error", server.failed
            return None
        return server

    def _launch(self, probe, server):
        if probe.verdict == "error":
            return
        kind, value = server.launch(self.limit)
        if kind == "error":
            if not probe.samples:
                probe.verdict, probe.reason = "error", value
        elif kind == "race":
            probe.race_errors += 1
        else:
            # Past the limit, the sample is the limit itself (the server
            # answers with it to six decimals, which can round it below).
            probe.samples.append(self.limit if kind == "past"
                                 else min(value, self.limit))

    def close(self):
        for server in self.servers.values():
            server.close()
        self.servers.clear()

    def restore_limit(self, limit):
        """The limit an interrupted run had set, taken back with its saved
        probes (their samples were cut there): set again from a median, it
        could differ, and launches cut at the old limit would no longer
        count as past it."""
        if limit:
            self.limit, self.limit_set = limit, True

    def set_limit(self, median):
        self.limit_set = True
        limit = min(self.limit, max(LIMIT_FLOOR, LIMIT_PER_MEDIAN * median))
        if limit < self.limit:
            self.log(f"launch limit {limit:g} s from now on: "
                     f"{LIMIT_PER_MEDIAN:g} times the first release's median "
                     f"({median:.2f} s); earlier launches cut there")
            self.limit = limit
            for probe in self.seen.values():
                probe.samples = [min(s, limit) for s in probe.samples]
                probe.past_limit = sum(1 for s in probe.samples if s >= limit)


def _median(samples):
    return quantile(samples, 0.5)


def _cached(env_for):
    made = {}

    def cached(version):
        if version not in made:
            made[version] = env_for(version)
        return made[version]
    return cached


def launch_time_envs(args, envdir, log):
    """``env_for(version)`` for ``LaunchTimeProber``: the release's
    environment (built once), or the reason it cannot be timed."""
    def env_for(version):
        spec = EnvSpec(args.python, (f"{args.package}=={version}",
                                     *args.extra), args.sim)
        env = ProbeEnvironment(matrix_envdir(envdir, spec), args.python)
        env.create()
        problem = install(env, spec)
        if problem:
            kind, reason = problem
            return None, ({"skip": "skipped"}.get(kind, "error"), reason)
        return env, None
    return _cached(env_for)
