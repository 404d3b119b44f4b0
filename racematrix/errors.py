"""The errors a user can cause: one line, what was wrong and what to do."""
from __future__ import annotations

import argparse
from typing import Any, NoReturn


class ConfigError(ValueError):
    """A matrix setting that cannot be used (names the key, what is wanted)."""


class BadInput(ValueError):
    """Something asked for that does not exist or cannot be done."""


# Actions that may be given more than once: they add up, or print and exit.
LIST_ACTIONS = (argparse._AppendAction, argparse._AppendConstAction,
                argparse._ExtendAction, argparse._CountAction,
                argparse._HelpAction, argparse._VersionAction)


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are one ``BadInput`` line, refusing a
    one-value option given twice (the last silently winning loses data)."""

    def __init__(self, *args: Any, label: str, help_hint: str,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.label, self.help_hint = label, help_hint
        self.given: set[str] = set()

    def error(self, message: str) -> NoReturn:
        raise BadInput(f"{self.label}: {message} (see `{self.help_hint}`)")

    def parse_known_args(self, args: Any = None, namespace: Any = None
                         ) -> Any:
        self.given = set()
        return super().parse_known_args(args, namespace)

    def _add_action(self, action: Any) -> Any:
        if action.option_strings and not isinstance(action, LIST_ACTIONS):
            parent = type(action)

            def once(self: argparse.Action, parser: Any, *args: Any) -> None:
                given = getattr(parser, "given", set())
                if self.dest in given:
                    parser.error(f"{'/'.join(self.option_strings)} given "
                                 f"twice: give it once")
                given.add(self.dest)
                parent.__call__(self, parser, *args)
            action.__class__ = type(parent.__name__, (parent,),
                                    {"__call__": once})
        return super()._add_action(action)
