"""The real side of ``nox -s bisect``: releases from the index, one virtual
environment per probed release, the MWE run in batches until the verdict
holds, and the results written to ``results/bisect/``."""
import argparse
import math
import shutil
import subprocess
import time
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from . import outcomes, results
from .bisect import (MISS_PROBABILITY, Probe, bisect_releases, bisect_stem,
                     decide_probe, probe_limit, render_bisect)
from .companions import WAYS, outcomes_by_way
from .envspec import ConfigError, EnvSpec, parse_python, parse_sim, parse_spec
from .index import IndexLookupError, list_releases, nearest_versions
from .interpreters import missing_interpreters
from .provenance import gpu_name, machine_info
from .runner import (MODULE_UNDER_TEST, TEST_TOOLS, BadInput, ProbeEnvironment,
                     install_resolved, run_mwe)


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        raise BadInput(f"bisect: {message} (see `nox -s bisect -- --help`)")


def parse_args(argv):
    parser = ArgumentParser(prog="nox -s bisect --", description=__doc__)
    parser.add_argument("--package", required=True,
                        help="package whose releases are searched, e.g. "
                             "numba or numba-cuda")
    parser.add_argument("--python", required=True, type=_checked(parse_python),
                        help="Python version, e.g. 3.11")
    parser.add_argument("--from", dest="start", help="oldest release to test")
    parser.add_argument("--to", dest="end", help="newest release to test")
    parser.add_argument("--with", dest="extra", default="",
                        type=_checked(lambda s: parse_spec(s) if s else ()),
                        help="requirements added to every probe, e.g. "
                             "\"numba==0.61.2\"")
    parser.add_argument("--sim", default="1", type=_checked(parse_sim),
                        help="1: simulator on (default); 0: on a GPU")
    parser.add_argument("--initial-runs", type=positive_whole_number,
                        default=22,
                        help="runs for the first probe of each end "
                             "(default: 22, one run of the suite)")
    parser.add_argument("--metric", choices=("failure", "launch-time"),
                        default="failure",
                        help="what flips: the race's failures (default), or "
                             "launch time (the price of the fix; see "
                             "racematrix/timing.py for the rule)")
    parser.add_argument("--survey", action="store_true",
                        help="instead of searching: install every release "
                             "in the range by every way of the ladder, run "
                             "nothing, and count which ways work")
    parser.add_argument("--timeout", type=positive_whole_number, default=120,
                        help="seconds before one test run counts as hung")
    args = parser.parse_args(argv)
    for name in ("start", "end"):
        value = getattr(args, name)
        if value is not None:
            try:
                Version(value)
            except InvalidVersion:
                raise BadInput(f"bisect: --{'from' if name == 'start' else 'to'}"
                               f" {value!r} is not a version number") from None
    if args.start and args.end and Version(args.start) > Version(args.end):
        raise BadInput(f"bisect: --from {args.start} is newer than --to "
                       f"{args.end}; swap them")
    return args


def positive_whole_number(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"needs a positive whole number, got {text!r}")
    return value


def _checked(parse):
    def convert(text):
        try:
            return parse(text)
        except ConfigError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return convert


def releases_in_range(package, python, start, end):
    """Final releases of ``package`` from ``start`` to ``end`` inclusive, as
    (those whose Requires-Python admits ``python``, those it excludes)."""
    try:
        versions = list_releases(package)
        admitted = set(list_releases(package, python))
    except IndexLookupError as error:
        raise BadInput(f"bisect: {error}") from None
    for label, bound in (("--from", start), ("--to", end)):
        if bound is not None and Version(bound) not in versions:
            near = ", ".join(nearest_versions(bound, versions))
            raise BadInput(f"bisect: {package} {bound} ({label}) is not on the "
                           f"package index; nearest: {near}")
    in_range = [v for v in versions
                if (start is None or v >= Version(start))
                and (end is None or v <= Version(end))]
    return ([v for v in in_range if v in admitted],
            [str(v) for v in in_range if v not in admitted])


def matrix_envdir(envdir, spec):
    """Where ``nox -s matrix`` keeps the environment of ``spec``, so that a
    bisect reuses it; a folder of the bisect's own when nox's naming is not
    available."""
    try:
        from nox.sessions import _normalize_path
        name = f"matrix-{spec.python}({spec.spec}, sim{int(spec.sim)})"
        return _normalize_path(str(envdir), name)
    except ImportError:
        return str(Path(envdir) / f"bisect-{spec.env_id}")


class ReleaseProber:
    """``probe(version, min_runs)`` for the search, backed by real
    environments and pytest runs; keeps what each version has seen."""

    def __init__(self, args, envdir, log):
        self.args = args
        self.envdir = envdir
        self.log = log
        self.suite_size = None  # test runs in one run of the suite
        self.seen = {}

    def spec(self, version):
        return EnvSpec(self.args.python,
                       (f"{self.args.package}=={version}", *self.args.extra),
                       self.args.sim)

    def __call__(self, version, min_runs):
        previous = self.seen.get(version)
        if previous and (previous.verdict != "not-reproduced"
                         or previous.runs >= min_runs):
            return previous
        started = time.monotonic()
        probe = previous or Probe(str(version), "not-reproduced")
        spec = self.spec(version)
        env = ProbeEnvironment(matrix_envdir(self.envdir, spec),
                               self.args.python, self.log)
        try:
            if not spec.sim and not gpu_name():
                return self._keep(probe, "skipped", "no CUDA GPU", started)
            if previous is None:
                env.create()
                installation = install_resolved(env, spec, log=self.log)
                record_installation(probe, installation)
                if installation.problem:
                    kind, reason = installation.problem
                    return self._keep(probe, {"skip": "skipped"}.get(
                        kind, "error"), reason, started)
            while True:
                verdict = decide_probe(probe.failures, probe.runs, min_runs)
                if verdict and probe.runs:
                    return self._keep(probe, verdict, _probe_reason(probe,
                                      verdict), started)
                problem = self._batch(env, spec, probe,
                                      self._batch_count(probe, min_runs))
                if problem:
                    return self._keep(probe, "error", problem, started)
        except subprocess.SubprocessError as error:
            return self._keep(probe, "error", str(error), started)

    def _batch_count(self, probe, min_runs):
        """pytest-repeat's --count that reaches ``min_runs`` in one process
        (``-x`` still stops it at the first failure)."""
        if not self.suite_size:
            return 1
        return max(1, math.ceil((min_runs - probe.runs) / self.suite_size))

    def _batch(self, env, spec, probe, count):
        # The first run of the suite goes to the end, so that the failure
        # rate it gives is not cut short; later ones stop at the first
        # failure, which is all a verdict needs.
        run = run_mwe(env, spec.sim, count, self.args.timeout,
                      ["-x"] if probe.runs else [])
        if run.runs is None:
            return run.no_report_reason()
        counts = outcomes.summarize(run.runs, count)["counts"]
        if run.returncode == 0 and count == 1:
            self.suite_size = len(run.runs)
        probe.runs += counts["target"] + counts["other"] + counts["hang"] \
            + counts["pass"]
        probe.failures += counts["target"]
        if counts["target"] == 0 and (counts["other"] or counts["hang"]):
            message = next(r.message for r in run.runs
                           if r.outcome in (outcomes.OTHER, outcomes.HANG))
            return f"a test failed another way: {message}"
        if probe.runs == 0:
            return "every test was skipped"
        return None

    def _keep(self, probe, verdict, reason, started):
        probe.verdict = verdict
        probe.reason = reason
        probe.seconds = round(probe.seconds + time.monotonic() - started, 2)
        self.seen[probe.version] = probe
        self.log(f"probe {self.args.package} {probe.version}: {verdict} "
                 f"({reason})")
        return probe


def record_installation(probe, installation):
    """Copy how the release was installed into its probe."""
    probe.way = installation.way
    probe.exclude_newer = installation.exclude_newer
    probe.requirements = list(installation.requirements)
    probe.attempts = installation.resolution()["attempts"]
    probe.packages = dict(installation.packages)
    probe.implementation = installation.implementation


def shown_packages(args):
    """Packages whose resolved versions the bisect's table shows: the
    searched one, those added with --with, and the distribution named by
    the module under test's top level."""
    names = [args.package, *(Requirement(r).name for r in args.extra),
             MODULE_UNDER_TEST.split(".")[0]]
    names = [canonicalize_name(n) for n in names]
    return [n for n in dict.fromkeys(names)
            if n not in {canonicalize_name(t) for t in TEST_TOOLS}]


def _probe_reason(probe, verdict):
    if verdict == "reproduced":
        return f"{probe.failures} of {probe.runs} runs failed with the race"
    return f"0 of {probe.runs} runs failed"


def write_bisect(result, args, out_dir, command, seconds, excluded=()):
    """``<package>-py<python>.json`` and ``.md`` under ``out_dir``, with
    the range in the name where --from or --to narrowed it."""
    stem = bisect_stem(args.package, args.python, args.sim, args.start,
                       args.end)
    data = {
        "package": args.package, "python": args.python, "sim": args.sim,
        "with": list(args.extra), "from": args.start, "to": args.end,
        "releases": result.versions,
        "excluded_by_requires_python": list(excluded),
        "shown_packages": shown_packages(args),
        "tested": [p.to_json() for p in result.tested],
        "boundary": result.boundary, "summary": result.summary,
        "decisive_probes": result.decisive_probes,
        "probe_limit": probe_limit(len(result.versions)),
        "rate_used": result.rate_used,
        "runs_to_rule_out": result.runs_to_rule_out,
        "miss_probability": MISS_PROBABILITY,
        "seconds": round(seconds, 1),
        "provenance": {"command": command, "finished": results.now_iso(),
                       "machine": machine_info()},
    }
    out_dir = Path(out_dir)
    results.write_json_atomic(out_dir / f"{stem}.json", data)
    results.write_text_atomic(out_dir / f"{stem}.md", render_bisect(data))
    return data


def checked_releases(args):
    if shutil.which("uv") is None:
        raise BadInput("bisect: uv is not on PATH; `pip install uv`")
    missing = missing_interpreters([args.python])
    if missing:
        raise BadInput(f"bisect: {missing}")
    return releases_in_range(args.package, args.python, args.start, args.end)


def run_survey(args, envdir, out_dir, log, command):
    """Every release in range installed by every way of the ladder (no MWE
    runs): how many import, pass the smoke launch and bring the searched
    package's own code, way by way. Written to ``<out_dir>/survey/``,
    beside the bisects but not among them."""
    versions, excluded = checked_releases(args)
    started = time.monotonic()
    prober = ReleaseProber(args, envdir, log)
    entries = []
    for version in versions:
        spec = prober.spec(version)
        env = ProbeEnvironment(matrix_envdir(envdir, spec), args.python, log)
        env.create()
        clock = time.monotonic()
        installation = install_resolved(env, spec, log=log, every_way=True)
        probe = Probe(str(version), "skipped" if installation.problem and
                      installation.problem[0] == "skip" else
                      "error" if installation.problem else "installed",
                      reason=installation.problem[1] if installation.problem
                      else "", seconds=round(time.monotonic() - clock, 1))
        record_installation(probe, installation)
        entries.append(probe.to_json())
    data = {"package": args.package, "python": args.python, "sim": args.sim,
            "with": list(args.extra), "releases": [str(v) for v in versions],
            "excluded_by_requires_python": list(excluded),
            "surveyed": entries, "counts": survey_counts(entries),
            "seconds": round(time.monotonic() - started, 1),
            "provenance": {"command": command, "finished": results.now_iso(),
                           "machine": machine_info()}}
    data["summary"] = render_survey_summary(data)
    data["decisive_probes"] = 0
    stem = bisect_stem(args.package, args.python, args.sim, args.start,
                       args.end)
    folder = Path(out_dir) / "survey"
    results.write_json_atomic(folder / f"{stem}.json", data)
    results.write_text_atomic(folder / f"{stem}.md", render_survey(data))
    return data


def survey_counts(entries):
    """Per way: releases that work by that way alone, and by that way or
    an earlier one (what the ladder gets when it stops there)."""
    alone = {way: 0 for way in WAYS}
    ladder = {way: 0 for way in WAYS}
    for entry in entries:
        outcomes = outcomes_by_way(entry["attempts"])
        reached = False
        for way in WAYS:
            ok = outcomes.get(way) == "ok"
            reached = reached or ok
            alone[way] += ok
            ladder[way] += reached
    return {"releases": len(entries), "alone": alone, "by_ladder": ladder}


def render_survey_summary(data):
    counts = data["counts"]
    steps = "; ".join(f"{way}: {counts['by_ladder'][way]}" for way in WAYS)
    return (f"of {counts['releases']} releases, those whose own code imports "
            f"and runs the smoke launch, by the ladder up to each way: {steps}")


def render_survey(data):
    counts = data["counts"]
    lines = [f"# Install survey: {data['package']} on Python {data['python']}",
             "", f"{data['summary']}.", "",
             "| way | works by this way alone | by this way or an earlier one |",
             "|---|---|---|"]
    lines += [f"| {way} | {counts['alone'][way]} | {counts['by_ladder'][way]} |"
              for way in WAYS]
    lines += ["", "| version | " + " | ".join(WAYS) + " | reason |",
              "|---|" + "---|" * len(WAYS) + "---|"]
    for entry in data["surveyed"]:
        outcomes = outcomes_by_way(entry["attempts"])
        lines.append(f"| {entry['version']} | " + " | ".join(
            outcomes.get(way, "–") for way in WAYS) + " | "
            + entry["reason"].replace("|", "/")[:200] + " |")
    lines += ["", f"Command: `{data['provenance']['command']}`; "
                  f"{data['seconds']} s; finished "
                  f"{data['provenance']['finished']}."]
    return "\n".join(lines) + "\n"


def run_bisect(argv, envdir, out_dir, log, command):
    args = parse_args(argv)
    if args.survey:
        return run_survey(args, envdir, out_dir, log, command)
    versions, excluded = checked_releases(args)
    log(f"{len(versions)} releases of {args.package} in range for Python "
        f"{args.python} ({len(excluded)} more exclude it by Requires-Python); "
        f"extra requirements: {' '.join(args.extra) or 'none'}")
    if args.metric == "launch-time":
        from .timing import run_time_bisect
        return run_time_bisect(args, versions, excluded, envdir, out_dir, log,
                               command)
    started = time.monotonic()
    prober = ReleaseProber(args, envdir, log)
    result = bisect_releases(versions, prober, args.initial_runs)
    return write_bisect(result, args, out_dir, command,
                        time.monotonic() - started, excluded)
