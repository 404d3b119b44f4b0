"""``nox -s bisect``: the search over the index's releases in range on the
race or on the launch price, resumable, written to results/bisect/."""
from __future__ import annotations

import argparse
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.version import InvalidVersion, Version

from .bisect_files import (bisect_stem, load_bisects, load_partial,
                           search_key, searched, write_bisect)
from .envspec import parse_package, parse_python, parse_spec
from .errors import BadInput, OneLineArgumentParser
from .index import IndexLookupError, list_releases, nearest_versions
from .install import MODULE_UNDER_TEST
from .interpreters import missing_interpreters
from .probers import TRIES, TRY_SECONDS, ReleaseProber
from .provenance import stamp
from .search import (INITIAL_RUNS, MISS_PROBABILITY, BisectResult, Probe,
                     bisect_releases, probe_limit)

logger = logging.getLogger(__name__)


def _checked(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parse`` as an argparse type: its error is the option's one line."""
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as error:  # BadInput and InvalidVersion too
            raise argparse.ArgumentTypeError(str(error)) from None
    return convert


def parse_guess(text: str) -> str | list[str]:
    """``--guess``: "auto", "none", or release numbers separated by commas."""
    try:
        return text if text in ("auto", "none") else [
            str(Version(part)) for part in text.split(",")]
    except InvalidVersion:
        raise ValueError(f"{text!r} is not auto, none or release numbers "
                         f"separated by commas, e.g. 0.24.0,0.26.0") from None


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = OneLineArgumentParser(
        prog="nox -s bisect --", description=__doc__, label="bisect",
        help_hint="nox -s bisect -- --help")
    add = parser.add_argument
    add("--package", required=True, type=_checked(parse_package),
        help="package whose releases are searched, e.g. numba-cuda")
    add("--python", required=True, type=_checked(parse_python),
        help="Python version, e.g. 3.11")
    add("--from", dest="start", type=_checked(lambda s: str(Version(s))),
        help="oldest release to test")
    add("--to", dest="end", type=_checked(lambda s: str(Version(s))),
        help="newest release to test")
    add("--with", dest="extra", action="append", default=[],
        type=_checked(parse_spec),
        help="requirements added to every probe, e.g. \"numba==0.61.2\"")
    add("--metric", choices=("failure", "launch-time"), default="failure",
        help="what flips: the race (default) or the launch price")
    add("--guess", default="auto", type=_checked(parse_guess),
        help="releases to probe first, e.g. 0.24.0,0.26.0, or none; auto "
             "(default): on launch time, the race bisect's pair")
    args = parser.parse_args(argv)
    args.extra = tuple(dict.fromkeys(r for group in args.extra for r in group))
    if args.start and args.end and Version(args.start) > Version(args.end):
        raise BadInput(f"bisect: --from {args.start} is newer than --to "
                       f"{args.end}; swap them")
    return args


def resolve_guess(args: argparse.Namespace, versions: Sequence[Version],
                  out_dir: str | Path) -> dict | None:
    """``--guess``'s releases, or on launch time the race bisect's pair."""
    if args.guess == "auto" and args.metric == "launch-time":
        key = searched({**vars(args), "with": args.extra, "sim": True})
        for data in load_bisects(out_dir):  # the widest race bisects
            pair = [(data.get("boundary") or {}).get(side, {}).get("version")
                    for side in ("before", "after")]
            if searched(data) == key and not data.get("partial") and \
                    set(pair) <= {str(v) for v in versions}:
                source = bisect_stem(data)
                logger.info("probing first the pair where the race bisect "
                            "(%s.json) placed its flip: %s and %s (`--guess "
                            "none` starts from the middle)", source, *pair)
                return {"versions": pair, "source": source + ".json"}
    if args.guess in ("auto", "none"):
        return None
    by_version = {v: str(v) for v in versions}
    for wanted in map(Version, args.guess):
        if wanted not in by_version:
            raise BadInput(f"bisect: --guess {wanted} is not a release in "
                           f"range; nearest: "
                           f"{', '.join(nearest_versions(wanted, versions))}")
    return {"versions": [by_version[Version(v)] for v in args.guess],
            "source": "--guess"}


def releases_in_range(args: argparse.Namespace
                      ) -> tuple[list[Version], list[str]]:
    """Releases in range: (admitted by Requires-Python, excluded by it)."""
    if shutil.which("uv") is None:
        raise BadInput("bisect: uv is not on PATH; `pip install uv`")
    if missing := missing_interpreters([args.python]):
        raise BadInput(f"bisect: {missing}")
    try:
        versions = list_releases(args.package)
        admitted = set(list_releases(args.package, args.python))
    except IndexLookupError as error:
        raise BadInput(f"bisect: {error}") from None
    for label, bound in (("--from", args.start), ("--to", args.end)):
        if bound is not None and Version(bound) not in versions:
            near = ", ".join(nearest_versions(bound, versions))
            raise BadInput(f"bisect: {args.package} {bound} ({label}) is not "
                           f"on the package index; nearest: {near}")
    in_range = [v for v in versions
                if (args.start is None or v >= Version(args.start))
                and (args.end is None or v <= Version(args.end))]
    return ([v for v in in_range if v in admitted],
            [str(v) for v in in_range if v not in admitted])


def run_bisect(argv: Sequence[str], envdir: str, out_dir: str | Path,
               command: str) -> dict:
    """``nox -s bisect -- ARGS``, resumed from a partial file's probes."""
    args = parse_args(argv)
    versions, excluded = releases_in_range(args)
    started, on_time = time.monotonic(), args.metric == "launch-time"
    order = {str(v): i for i, v in enumerate(versions)}
    search = {"metric": args.metric, "package": args.package,
              "python": args.python, "sim": True, "with": list(args.extra),
              "from": args.start, "to": args.end, "releases": list(order),
              "excluded_by_requires_python": excluded,
              **({"tries": TRIES, "try_seconds": TRY_SECONDS} if on_time
                 else {}),
              "shown_packages": list(dict.fromkeys([
                  args.package, *(Requirement(r).name for r in args.extra),
                  MODULE_UNDER_TEST.split(".")[0]])),
              "probe_limit": probe_limit(len(versions)),
              "miss_probability": MISS_PROBABILITY}
    logger.info("%d releases of %s in range for Python %s (%d more exclude "
                "it by Requires-Python); extra requirements: %s",
                len(versions), args.package, args.python, len(excluded),
                " ".join(args.extra) or "none")
    guess = resolve_guess(args, versions, out_dir)
    prober = ReleaseProber(args, envdir)
    stem = bisect_stem(search)

    def write(result: BisectResult, **more: Any) -> dict:
        return write_bisect(out_dir, stem, {
            **search, **asdict(result), "tested": [
                p.to_json() for p in sorted(result.tested, key=lambda p:
                                            order.get(p.version, len(order)))],
            "decisive_probes": result.decisive_probes,
            "seconds": round(time.monotonic() - started, 1),
            "provenance": stamp(command), **more})

    def save() -> None:
        tested = list(prober.seen.values())
        write(BisectResult(tested, None, f"interrupted after {len(tested)} "
                           f"probe(s) ({', '.join(p.version for p in tested)})"
                           f"; rerun `{command}` to resume with them"),
              partial=True)
    path, saved = load_partial(out_dir, stem, search_key(search))
    more: dict[str, Any] = {}
    if saved:
        keys = {f.name for f in fields(Probe)}
        prober.seen = {entry["version"]: Probe(**{
            k: v for k, v in entry.items() if k in keys})
            for entry in saved["tested"]}
        more["resumed"] = {"probes_reused": len(prober.seen),
                           "versions": list(prober.seen)}
        logger.info("resuming an interrupted bisect: reusing %d saved "
                    "probe(s) (%s) from %s", len(prober.seen),
                    ", ".join(prober.seen), path)
    prober.on_probe = save
    first = guess["versions"] if guess else ()
    result = bisect_releases(versions, prober, 0 if on_time else
                             INITIAL_RUNS, first)
    if guess:
        pair = [side["version"] for side in (result.boundary or {}).values()]
        more["guess"] = {**guess, "held": pair == list(first)
                         if len(first) == 2 and pair else None}
    return write(result, **more)
