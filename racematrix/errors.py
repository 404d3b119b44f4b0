"""The errors a user can cause: one line, what was wrong and what to do."""
from __future__ import annotations

import argparse
from typing import Any, NoReturn


class BadInput(ValueError):
    """A setting or request that cannot be used or done."""


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors, refusing a one-value option twice."""

    def __init__(self, *args: Any, label: str, help_hint: str,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.label, self.help_hint = label, help_hint
        self.given: set[str] = set()
        for name in (None, "store", "store_const", "store_true",
                     "store_false"):
            self.register("action", name, _once(
                self._registry_get("action", name)))

    def error(self, message: str) -> NoReturn:
        raise BadInput(f"{self.label}: {message} (see `{self.help_hint}`)")


def _once(action: Any) -> Any:
    """``action`` that refuses a second use of its option."""
    class Once(action):
        def __call__(self, parser: Any, *args: Any) -> None:
            if self.dest in parser.given:
                parser.error(f"{'/'.join(self.option_strings)} given "
                             f"twice: give it once")
            parser.given.add(self.dest)
            super().__call__(parser, *args)
    return Once
