"""Files checked against racematrix/schemas/; a problem is one line: where,
the value found, what was expected."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from .errors import ConfigError

SCHEMAS = Path(__file__).resolve().parent / "schemas"


@lru_cache(maxsize=None)
def validator(name: str) -> Draft202012Validator:
    # The tests check each schema against the metaschema, not every start.
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return Draft202012Validator(
        schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def require_valid(instance: Any, name: str, where: str) -> None:
    wrong = problem(instance, name, where)
    if wrong:
        raise ConfigError(wrong)


def problem(instance: Any, name: str, where: str) -> str | None:
    """The first problem of ``instance`` against schema ``name``, or None."""
    error = best_match(validator(name).iter_errors(instance))
    if error is None:
        return None
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}"
                   for part in error.absolute_path)
    location = f"{where}{path}" if path else where
    expected = _expected(error)
    description = error.schema.get("description")
    if description and path:
        expected += f" ({description})"
    return f"{location}: {_found(error)}; {expected}"


def _found(error: ValidationError) -> str:
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get(
            "properties", {})))
        return f"unknown key {', '.join(map(repr, extra))}"
    if error.validator == "required":
        return error.message.replace("is a required property",
                                     "is missing")
    return f"{json.dumps(error.instance)} is not valid"


def _expected(error: ValidationError) -> str:
    rule = error.validator_value
    return {
        "type": lambda: f"expected {_type_words(rule)}",
        "minimum": lambda: f"expected a number of at least {rule}",
        "enum": lambda: "expected one of " + ", ".join(map(json.dumps, rule)),
        "pattern": lambda: f"expected a string matching {rule}",
        "minItems": lambda: f"expected at least {rule} item(s)",
        "minLength": lambda: "expected a non-empty string",
        "additionalProperties": lambda: "known keys: " + ", ".join(
            sorted(error.schema.get("properties", {}))),
        "required": lambda: "add it",
        "format": lambda: f"expected a {rule} string",
    }.get(str(error.validator), lambda: error.message)()


def _type_words(types: str | list[str]) -> str:
    words = {"array": "a list", "integer": "a whole number", "number":
             "a number", "string": "a string", "object": "a table",
             "boolean": "true or false", "null": "nothing"}
    types = [types] if isinstance(types, str) else types
    return " or ".join(words.get(t, t) for t in types)
