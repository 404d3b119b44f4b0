"""The files of ``results/bisect/``: names, the widest bisect of a search,
an interrupted search's partial file, and their Markdown."""
from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterable
from itertools import groupby
from pathlib import Path

from packaging.utils import canonicalize_name

from .fileio import write_json_atomic, write_text_atomic
from .markdown import render
from .rawresult import RawResultWarning
from .search import USABLE

TIME = "launch-time"
# An interrupted bisect's probes so far, beside (never over) a finished one.
PARTIAL = ".partial"


def bisect_stem(search: dict) -> str:
    """A bisect's file name (a narrower range never replaces a wider one)."""
    start, end = search.get("from"), search.get("to")
    return f"{search['package']}-py{search['python']}" + (
        f"-{start or 'first'}-{end or 'last'}" if start or end else "") + (
        "-launch-time" if search.get("metric") == TIME else "")


def searched(data: dict) -> tuple:
    """What a bisect searched, whatever its range or metric."""
    return (canonicalize_name(str(data.get("package"))), data.get("python"),
            bool(data.get("sim")), tuple(data.get("with") or ()))


def search_key(data: dict) -> tuple:
    """What makes two runs the same search, whose saved probes are reused."""
    return (*searched(data), data.get("from"), data.get("to"),
            data.get("metric", "failure"), data.get("tries"))


def widest_bisects(bisects: Iterable[dict]) -> list[dict]:
    """Per search, the finished bisect over the most releases, newest."""
    bisects = list(bisects)
    widest = {searched(data): data for data in sorted(bisects, key=lambda d: (
        not d.get("partial"), len(d.get("releases") or ()),
        d.get("provenance", {}).get("finished", "")))}
    return [data for data in bisects if widest[searched(data)] is data]


def read_bisects(folder: str | Path) -> dict[Path, dict]:
    found = {}
    for path in sorted(Path(folder).glob("*.json")):
        try:
            found[path] = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            warnings.warn(f"left out {path}: not readable JSON ({error})",
                          RawResultWarning, stacklevel=3)
    return found


def load_bisects(folder: str | Path, metric: str = "failure") -> list[dict]:
    """The widest bisect of each search in ``folder`` on ``metric``."""
    return widest_bisects(data for data in read_bisects(folder).values()
                          if data.get("metric", "failure") == metric)


def load_partial(out_dir: str | Path, stem: str, key: tuple
                 ) -> tuple[Path, dict | None]:
    """(path, data or None) of the partial file of the search ``key``."""
    path = Path(out_dir) / f"{stem}{PARTIAL}.json"
    with contextlib.suppress(OSError, ValueError, AttributeError):
        if search_key(data := json.loads(path.read_text())) == key:
            return path, data
    return path, None


def write_bisect(out_dir: str | Path, stem: str, data: dict) -> dict:
    """``<stem>.json`` and ``.md``; a finished one removes its partial."""
    out_dir = Path(out_dir)
    name = stem + PARTIAL if data.get("partial") else stem
    write_json_atomic(out_dir / f"{name}.json", data)
    write_text_atomic(out_dir / f"{name}.md", markdown(data))
    if name == stem:
        for suffix in (".json", ".md"):
            (out_dir / f"{stem}{PARTIAL}{suffix}").unlink(missing_ok=True)
    return data


def rerender_bisects(folder: str | Path) -> None:
    """Rewrite every ``.md`` in ``folder`` from its ``.json``."""
    for path, data in read_bisects(folder).items():
        write_text_atomic(path.with_suffix(".md"), markdown(data))


def markdown(data: dict) -> str:
    return render("bisect.md", data=data, timed=data.get("metric") == TIME,
                  shown=data.get("shown_packages") or [],
                  groups=condensed_probes(data["tested"]))


def condensed_probes(tested: list[dict]) -> list[tuple[str, str, dict, int]]:
    """Releases not placed for one reason, as (first, last, probe, count)."""
    def reason(probe: dict) -> object:
        key = probe["reason"]
        if probe["verdict"] in USABLE:
            return id(probe)  # a placed release is a row of its own
        if probe["verdict"] == "skipped" and key.startswith("no wheel"):
            return "no wheel for " + key.rsplit(" for ", 1)[-1]
        return key
    groups = [(key, list(run)) for key, run in groupby(tested, reason)]
    return [(run[0]["version"], run[-1]["version"], dict(run[0], reason=key)
             if len(run) > 1 else run[0], len(run)) for key, run in groups]
