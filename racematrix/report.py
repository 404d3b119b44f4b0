"""REPORT.md, the texts for upstream and, with them, the tables, the bisect
folder's Markdown and the pictures, from the raw results."""
from __future__ import annotations

import json
import warnings
from collections.abc import Iterable
from pathlib import Path

from .bisect_files import load_bisects, rerender_bisects
from .envspec import EnvSpec, project_config
from .fileio import write_text_atomic
from .markdown import render
from .suites import Patch, load_patches
from .plots import draw_all
from .rawresult import RawResult, RawResultWarning
from .report_sections import build
from .tables import write_tables

PROJECT = Path(__file__).resolve().parent.parent
MAX_REPORT_CHARS = 65_000
# results/upstream/<name>.md, each from templates/upstream/<name>.md.j2
UPSTREAM = ("numba-cuda-issue", "numba-cuda-pr", "numba-cuda-690-comment",
            "cubie-issue")


def load_json(path: Path) -> dict | None:
    """A result file the report quotes, or None where it was not made."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        warnings.warn(f"left out {path}: not readable JSON ({error})",
                      RawResultWarning, stacklevel=2)
        return None


def declared_patches() -> dict[str, Patch]:
    """The patches pyproject.toml declares (none where Python 3.10 has no
    tomli)."""
    try:
        return load_patches(project_config(PROJECT), PROJECT)
    except ModuleNotFoundError:
        return {}


def build_report(raw_dirs: list, out_dir: str | Path, bisect_dir: str | Path,
                 command: str, plot: bool = True, pool: bool = False,
                 configured: Iterable[EnvSpec] = ()
                 ) -> tuple[list[dict], list[tuple[object, RawResult]]]:
    """Every report file in ``out_dir``; returns (rows, records)."""
    out_dir = Path(out_dir)
    left_out: list[dict] = []
    rows, records = write_tables(raw_dirs, out_dir, command, pool, left_out,
                                 configured)
    rerender_bisects(bisect_dir)
    provenance = json.loads((out_dir / "failure_rates.json").read_text())[
        "provenance"]
    model = build(rows, [dict(r) for _, r in records], load_bisects(bisect_dir),
                  load_bisects(bisect_dir, "launch-time"), provenance,
                  reproducers=load_json(out_dir / "reproducers.json"),
                  out_dir=out_dir,
                  figures=load_json(out_dir / "mwe_figures.json"),
                  fix_launches=load_json(out_dir / "fix_launch_time.json"),
                  described={name: patch.description for name, patch
                             in declared_patches().items()},
                  race_rates=[found for path in sorted(
                      (PROJECT / "patches" / "upstream" / "race_rate")
                      .glob("*.json")) if (found := load_json(path))])
    model["sources"] = {"bug": (PROJECT / "mwe" / "bug.py").read_text(),
                        "slowdown": (PROJECT / "mwe" / "bug_slowdown.py")
                        .read_text()}
    text = render("REPORT.md", **model)
    if len(text) > MAX_REPORT_CHARS:
        raise ValueError(f"report is {len(text)} characters, over GitHub's "
                         f"{MAX_REPORT_CHARS}")
    write_text_atomic(out_dir / "REPORT.md", text)
    for name in UPSTREAM:
        write_text_atomic(out_dir / "upstream" / f"{name}.md",
                          render(f"upstream/{name}.md", **model))
    if plot:
        draw_all(rows, out_dir)
    return rows, records
