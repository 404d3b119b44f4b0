"""Checks against racematrix/schemas/: a problem in one line, where first."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

SCHEMAS = Path(__file__).resolve().parent / "schemas"


@lru_cache(maxsize=None)
def validator(name: str) -> Draft202012Validator:
    # The tests check each schema against the metaschema, not every start.
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return Draft202012Validator(
        schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def problem(instance: Any, name: str, where: str) -> str | None:
    """``instance``'s first problem against schema ``name``, or None."""
    error = best_match(validator(name).iter_errors(instance))
    if error is None:
        return None
    path = error.json_path.removeprefix("$")
    line = f"{where}{path}: {error.message}"
    if error.validator == "additionalProperties":
        line += f"; known keys: {', '.join(sorted(error.schema['properties']))}"
    description = error.schema.get("description")
    return f"{line} ({description})" if description and path else line
