"""Errors that bbv reports as one line on stderr instead of a traceback."""


class BbvError(Exception):
    """A failure the user can act on; the message says what was wrong and what to do."""

    exit_code = 1


class UsageError(BbvError):
    """Bad command-line input: exit status 2, like click's own usage errors."""

    exit_code = 2


class Signalled(BaseException):
    """bbv was stopped by signal N (util/signals.py): exit status 128+N. A BaseException like
    KeyboardInterrupt, so that no `except Exception` swallows it and every `finally` runs."""

    def __init__(self, signum: int):
        import signal

        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        return 128 + self.signum
