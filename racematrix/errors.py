"""The two kinds of error a user can cause: each is one line that says what
was wrong and what to do (tracebacks are for our bugs)."""
import argparse


class ConfigError(ValueError):
    """A matrix setting (pyproject.toml or a MATRIX_* variable) that cannot
    be used; the message names the key and what is expected."""


class BadInput(ValueError):
    """The user asked for something that does not exist; one line says so."""


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse for our command lines, whose errors are one ``BadInput``
    line naming the command and where its help is, not argparse's usage
    block; the caller decides how to end (a nox session's error, or exit
    status 2)."""

    def __init__(self, *args, label, help_hint, **kwargs):
        super().__init__(*args, **kwargs)
        self.label = label
        self.help_hint = help_hint

    def error(self, message):
        raise BadInput(f"{self.label}: {message} (see `{self.help_hint}`)")
