"""The Jinja2 templates (``templates/``) of every report file, and their filters."""
from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any


def cell(value: object) -> str:
    """``|`` escaped, line breaks as spaces, None a dash."""
    return "–" if value is None else \
        str(value).replace("|", "\\|").replace("\n", " ")


def seconds(value: float | None, bound: bool = False) -> str:
    """A launch statistic; ``>= X`` where it was cut at its limit (a bound)."""
    return "–" if value is None else (">= " if bound else "") + f"{value:.2f}"


def percent(rate: float | None, digits: int = 1) -> str:
    return "–" if rate is None else f"{100 * rate:.{digits}f}%"


@functools.cache  # one Environment: Jinja2 compiles each template once
def environment() -> Any:
    import jinja2
    found = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined)
    found.filters.update(seconds=seconds, percent=percent, cell=cell)
    return found


def render(name: str, **context: object) -> str:
    """``templates/<name>.j2`` rendered, tidied."""
    return tidy(environment().get_template(f"{name}.j2").render(**context))


def tidy(text: str) -> str:
    """One blank line where a template left several (code blocks keep theirs)."""
    parts = text.split("```")
    parts[::2] = [re.sub(r"\n{3,}", "\n\n", part) for part in parts[::2]]
    return "```".join(parts).strip("\n") + "\n"
