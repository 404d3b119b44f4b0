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

    def _add_action(self, action):
        # An option that holds one value is refused when given twice: the
        # last one silently winning is how a typo loses data. List options
        # (append, extend) add up.
        if action.option_strings and not isinstance(action, LIST_ACTIONS):
            action.__class__ = _once(type(action))
        return super()._add_action(action)

    def parse_known_args(self, args=None, namespace=None):
        self._given_once = set()
        return super().parse_known_args(args, namespace)


# Actions that may be given more than once: they add up, or print and exit.
LIST_ACTIONS = (argparse._AppendAction, argparse._AppendConstAction,
                argparse._ExtendAction, argparse._CountAction,
                argparse._HelpAction, argparse._VersionAction)


def _once(action_class):
    """``action_class`` refusing a second use on one command line."""
    if getattr(action_class, "_refuses_twice", False):
        return action_class

    def __call__(self, parser, namespace, values, option_string=None):
        given = getattr(parser, "_given_once", set())
        if self.dest in given:
            parser.error(f"{'/'.join(self.option_strings)} given twice: give "
                         f"it once")
        given.add(self.dest)
        action_class.__call__(self, parser, namespace, values, option_string)
    return type(action_class.__name__, (action_class,),
                {"__call__": __call__, "_refuses_twice": True})
