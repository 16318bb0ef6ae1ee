"""Errors that bbv reports as one line on stderr instead of a traceback."""


class BbvError(Exception):
    """A failure the user can act on; the message says what was wrong and what to do."""

    exit_code = 1


class UsageError(BbvError):
    """Bad command-line input: exit status 2, like click's own usage errors."""

    exit_code = 2

