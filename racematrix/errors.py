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

    def error(self, message: str) -> NoReturn:
        raise BadInput(f"{self.label}: {message} (see `{self.help_hint}`)")

    def parse_known_args(self, args: Any = None, namespace: Any = None
                         ) -> Any:
        words = [str(arg).split("=", 1)[0] for arg in args or ()]
        for action in self._actions:  # store, store_const/true/false
            if isinstance(action, (argparse._StoreAction,
                                   argparse._StoreConstAction)) and \
                    sum(map(words.count, action.option_strings)) > 1:
                self.error(f"{'/'.join(action.option_strings)} given twice: "
                           f"give it once")
        return super().parse_known_args(args, namespace)
