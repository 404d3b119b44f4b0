"""The driver of ``nox -s bisect``: the command line, the releases in range
from the index, the search on the race or on launch time with real probes,
the install survey, and the files written to ``results/bisect/``."""
import argparse
import shutil
import time
from dataclasses import fields
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .bisect_files import (bisect_stem, load_partial, race_flip,
                           render_survey, render_survey_summary, search_key,
                           survey_counts, write_partial)
from .bisect_files import write_bisect as write_bisect_files
from .envspec import (ConfigError, parse_package, parse_python, parse_sim,
                      parse_spec)
from .errors import BadInput, OneLineArgumentParser
from .fileio import write_json_atomic, write_text_atomic
from .index import IndexLookupError, list_releases, nearest_versions
from .install import MODULE_UNDER_TEST, install_resolved
from .interpreters import missing_interpreters
from .probers import (LaunchTimeProber, ReleaseProber, launch_time_envs,
                      matrix_envdir, record_installation)
from .provenance import stamp
from .race_search import MISS_PROBABILITY, USABLE, Probe, bisect_releases
from .search import guess_held, probe_limit
from .suites import TEST_TOOLS
from .time_search import (TimeBisectResult, TimeProbe, TimeRule,
                          bisect_on_time)
from .venv import ProbeEnvironment


def parse_args(argv):
    parser = OneLineArgumentParser(
        prog="nox -s bisect --", description=__doc__, label="bisect",
        help_hint="nox -s bisect -- --help")
    parser.add_argument("--package", required=True,
                        type=_checked(parse_package),
                        help="package whose releases are searched, e.g. "
                             "numba or numba-cuda")
    parser.add_argument("--python", required=True, type=_checked(parse_python),
                        help="Python version, e.g. 3.11")
    parser.add_argument("--from", dest="start", help="oldest release to test")
    parser.add_argument("--to", dest="end", help="newest release to test")
    parser.add_argument("--with", dest="extra", action="append",
                        type=_checked(lambda s: parse_spec(s) if s else ()),
                        help="requirements added to every probe, e.g. "
                             "\"numba==0.61.2\"; given twice, both count")
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
    parser.add_argument("--guess", default="auto", type=_checked(parse_guess),
                        help="releases to probe before the middle, e.g. "
                             "0.24.0,0.26.0; each is still placed by its own "
                             "probe, so a wrong guess costs time, never the "
                             "answer. auto (default): on launch time, the "
                             "pair where a finished race bisect of the same "
                             "package and Python placed its flip; none: "
                             "from the middle")
    parser.add_argument("--survey", action="store_true",
                        help="instead of searching: install every release "
                             "in the range by every way of the ladder, run "
                             "nothing, and count which ways work")
    parser.add_argument("--timeout", type=positive_whole_number, default=120,
                        help="seconds before one test run counts as hung")
    args = parser.parse_args(argv)
    args.extra = tuple(dict.fromkeys(
        requirement for group in args.extra or () for requirement in group))
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


def parse_guess(text):
    """``--guess``: "auto", "none", or comma-separated release numbers."""
    if text in ("auto", "none"):
        return text
    guess = [part.strip() for part in text.split(",") if part.strip()]
    try:
        return [str(Version(part)) for part in guess] or _no_guess(text)
    except InvalidVersion:
        _no_guess(text)


def _no_guess(text):
    raise ConfigError(f"{text!r} is not auto, none or release numbers "
                      f"separated by commas, e.g. 0.24.0,0.26.0")


def resolve_guess(args, versions, out_dir, log):
    """What ``--guess`` asks to probe first, as {"versions", "source"}, or
    None: releases named on the command line (each must be in range), or,
    by default on launch time, the race bisect's pair for this search."""
    if args.guess == "none" or (args.guess == "auto" and
                                args.metric != "launch-time"):
        return None
    if args.guess == "auto":
        pair, source = race_flip(out_dir, args.package, args.python,
                                 args.sim, args.extra, versions)
        if not pair:
            return None
        log(f"probing first the pair where the race bisect ({source}) "
            f"placed its flip: {pair[0]} and {pair[1]} (`--guess none` "
            f"starts from the middle)")
        return {"versions": pair, "source": source}
    by_version = {Version(str(v)): str(v) for v in versions}
    for wanted in args.guess:
        if Version(wanted) not in by_version:
            near = ", ".join(nearest_versions(wanted, list(by_version)))
            raise BadInput(f"bisect: --guess {wanted} is not a release in "
                           f"range; nearest: {near}")
    return {"versions": [by_version[Version(v)] for v in args.guess],
            "source": "--guess"}


def with_guess(data, guess):
    """``data`` (a finished bisect's) with what was probed first, and
    whether the search ended at that pair."""
    if guess:
        data["guess"] = {**guess, "held": guess_held(guess["versions"],
                                                     data.get("boundary"))}
    return data


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


def shown_packages(args):
    """Packages whose resolved versions the bisect's table shows: the
    searched one, those added with --with, and the distribution named by
    the module under test's top level."""
    names = [args.package, *(Requirement(r).name for r in args.extra),
             MODULE_UNDER_TEST.split(".")[0]]
    names = [canonicalize_name(n) for n in names]
    return [n for n in dict.fromkeys(names)
            if n not in {canonicalize_name(t) for t in TEST_TOOLS}]


def write_bisect(result, args, out_dir, command, seconds, excluded=(),
                 resumed=None, guess=None):
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
        "provenance": stamp(command),
        **({"resumed": resumed} if resumed else {}),
    }
    return write_bisect_files(out_dir, stem, with_guess(data, guess))


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
        env = ProbeEnvironment(matrix_envdir(envdir, spec), args.python)
        env.create()
        clock = time.monotonic()
        installation = install_resolved(env, spec, every_way=True)
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
            "provenance": stamp(command)}
    data["summary"] = render_survey_summary(data)
    data["decisive_probes"] = 0
    stem = bisect_stem(args.package, args.python, args.sim, args.start,
                       args.end)
    folder = Path(out_dir) / "survey"
    write_json_atomic(folder / f"{stem}.json", data)
    write_text_atomic(folder / f"{stem}.md", render_survey(data))
    return data


def run_bisect(argv, envdir, out_dir, log, command):
    args = parse_args(argv)
    if args.survey:
        return run_survey(args, envdir, out_dir, log, command)
    versions, excluded = checked_releases(args)
    log(f"{len(versions)} releases of {args.package} in range for Python "
        f"{args.python} ({len(excluded)} more exclude it by Requires-Python); "
        f"extra requirements: {' '.join(args.extra) or 'none'}")
    guess = resolve_guess(args, versions, out_dir, log)
    if args.metric == "launch-time":
        return run_time_bisect(args, versions, excluded, envdir, out_dir, log,
                               command, guess=guess)
    started = time.monotonic()
    prober = ReleaseProber(args, envdir, log)
    stem = bisect_stem(args.package, args.python, args.sim, args.start,
                       args.end)

    def partial_data():
        tested = in_release_order(prober.seen.values(), versions)
        done = [p.version for p in tested]
        return {**search_fields(args, versions, excluded),
                "shown_packages": shown_packages(args),
                "tested": [p.to_json() for p in tested], "boundary": None,
                "summary": interrupted_summary(done, command),
                "decisive_probes": sum(p.verdict in USABLE for p in tested),
                "probe_limit": probe_limit(len(versions)), "rate_used": None,
                "runs_to_rule_out": None,
                "miss_probability": MISS_PROBABILITY,
                "seconds": round(time.monotonic() - started, 1),
                "provenance": stamp(command)}
    resumed = resume(prober, args, out_dir, stem, log,
                     lambda entry: Probe(**known_fields(Probe, entry)),
                     partial_data)
    result = bisect_releases(versions, prober, args.initial_runs,
                             guess["versions"] if guess else ())
    return write_bisect(result, args, out_dir, command,
                        time.monotonic() - started, excluded, resumed, guess)


def search_fields(args, versions, excluded):
    """What a bisect file says about its search (``search_key`` reads
    it): package, Python, simulator, extra requirements, range."""
    return {"package": args.package, "python": args.python, "sim": args.sim,
            "with": list(args.extra), "from": args.start, "to": args.end,
            "releases": [str(v) for v in versions],
            "excluded_by_requires_python": list(excluded)}


def in_release_order(probes, versions):
    order = {str(version): index for index, version in enumerate(versions)}
    return sorted(probes, key=lambda probe: order.get(probe.version,
                                                      len(order)))


def interrupted_summary(done, command):
    return (f"interrupted after {len(done)} probe(s)"
            f"{' (' + ', '.join(done) + ')' if done else ''}; rerun "
            f"`{command}` to resume with them")


def known_fields(kind, entry):
    names = {f.name for f in fields(kind)}
    return {key: value for key, value in entry.items() if key in names}


def resume(prober, args, out_dir, stem, log, probe_from_json, partial_data,
           workload=None, restore=lambda saved: None):
    """Seed ``prober`` with the probes an interrupted run of this same
    search (and launch-time ``workload``) saved, saying so, and save the
    probes after each from now on; ``restore(saved)`` takes back whatever
    else the saved data holds. Returns what was reused, for the finished
    file, or None."""
    metric = "launch-time" if args.metric == "launch-time" else "failure"
    path, saved = load_partial(out_dir, stem, search_key(
        {"package": args.package, "python": args.python, "sim": args.sim,
         "with": list(args.extra), "from": args.start, "to": args.end,
         "metric": metric, "workload": workload}))
    resumed = None
    if saved:
        probes = [probe_from_json(entry) for entry in saved["tested"]]
        prober.seen.update({probe.version: probe for probe in probes})
        restore(saved)
        resumed = {"probes_reused": len(probes),
                   "versions": [probe.version for probe in probes],
                   "seconds_before": saved.get("seconds", 0),
                   "from_file": path.name}
        log(f"resuming an interrupted bisect: reusing {len(probes)} saved "
            f"probe(s) ({', '.join(resumed['versions'])}) from {path}")
    prober.on_probe = lambda: write_partial(out_dir, stem, partial_data())
    return resumed


def run_time_bisect(args, versions, excluded, envdir, out_dir, log, command,
                    rule=TimeRule(), guess=None):
    """``nox -s bisect -- ... --metric launch-time``: ``bisect_on_time``
    over ``versions`` with real environments (the ones the race bisect and
    the matrix use), written to ``<package>-py<python>-launch-time.json``
    and ``.md`` under ``out_dir``. ``args`` is bisect_session's parsed
    arguments; ``guess``, ``resolve_guess``'s. Returns the written data."""
    started = time.monotonic()
    prober = LaunchTimeProber(launch_time_envs(args, envdir, log), args.sim,
                              log)
    stem = bisect_stem(args.package, args.python, args.sim, args.start,
                       args.end) + "-launch-time"

    def partial_data():
        tested = in_release_order(prober.seen.values(), versions)
        result = TimeBisectResult(
            [str(v) for v in versions], tested, None,
            interrupted_summary([p.version for p in tested], command), None,
            rule)
        return {"metric": "launch-time", **search_fields(args, versions,
                                                         excluded),
                "workload": prober.workload, **result.to_json(),
                "limit": prober.limit if prober.limit_set else None,
                "seconds": round(time.monotonic() - started, 1),
                "provenance": stamp(command)}
    resumed = resume(prober, args, out_dir, stem, log,
                     lambda entry: TimeProbe(**known_fields(TimeProbe, entry)),
                     partial_data, workload=prober.workload,
                     restore=lambda saved: prober.restore_limit(
                         saved.get("limit")))
    try:
        result = bisect_on_time(versions, prober, rule,
                                guess["versions"] if guess else ())
    finally:
        prober.close()
    return write_time_bisect(result, args, out_dir, command,
                             time.monotonic() - started, excluded, resumed,
                             limit=prober.limit, workload=prober.workload,
                             guess=guess)


def write_time_bisect(result, args, out_dir, command, seconds, excluded=(),
                      resumed=None, limit=None, workload=None, guess=None):
    stem = bisect_stem(args.package, args.python, args.sim, args.start,
                       args.end) + "-launch-time"
    data = {"metric": "launch-time", "package": args.package,
            "python": args.python, "sim": args.sim, "with": list(args.extra),
            "from": args.start, "to": args.end,
            "excluded_by_requires_python": list(excluded),
            **result.to_json(), "seconds": round(seconds, 1),
            "limit": limit, "workload": workload,
            "provenance": stamp(command),
            **({"resumed": resumed} if resumed else {})}
    return write_bisect_files(out_dir, stem, with_guess(data, guess))
