"""Markdown: the one table helper and the Jinja2 environment of the
templates (``racematrix/templates``) every report file is rendered from."""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import jinja2

TEMPLATES = Path(__file__).parent / "templates"


def cell(value: object) -> str:
    """``|`` escaped, line breaks as spaces, None a dash."""
    if value is None:
        return "–"
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """The lines of a GitHub Markdown table."""
    return ["| " + " | ".join(columns) + " |",
            "|" + "|".join("---" for _ in columns) + "|",
            *("| " + " | ".join(cell(value) for value in row) + " |"
              for row in rows)]


def seconds(stat: dict | None, digits: int = 2) -> str:
    """A launch statistic; ``>= X`` where it was cut at the limit."""
    if not stat:
        return "–"
    text = f"{stat['value']:.{digits}f}"
    return f">= {text}" if stat.get("censored") else text


def percent(rate: float | None, digits: int = 1) -> str:
    return "–" if rate is None else f"{100 * rate:.{digits}f}%"


def environment() -> jinja2.Environment:
    import jinja2
    found = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), trim_blocks=True,
        lstrip_blocks=True, keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined, autoescape=False)
    found.filters.update(lines="\n".join, seconds=seconds, percent=percent,
                         cell=cell)
    return found


def render(name: str, **context: object) -> str:
    """``templates/<name>.j2`` rendered, tidied."""
    return tidy(environment().get_template(f"{name}.j2").render(**context))


def tidy(text: str) -> str:
    """One blank line where a template left several, outside code blocks
    (a pasted script keeps its own); one newline at the end."""
    parts = text.split("```")
    parts[::2] = [re.sub(r"\n{3,}", "\n\n", part) for part in parts[::2]]
    return "```".join(parts).strip("\n") + "\n"
