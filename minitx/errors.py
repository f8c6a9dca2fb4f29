"""The one exception type for mistakes a user can fix.

Anything the user gave us (a config file, a data file, a command-line value, a run directory)
that is wrong raises `UserError` with a one-line message naming the file, key or line and what
is wrong. The command-line entry point prints it and exits with status 2, without a traceback;
every other exception is a bug in minitx and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input, reported in one line and exit status 2."""


class Interrupted(UserError):
    """Training stopped by a signal after saving a checkpoint; exits as the shell reports a
    process the signal stopped, 128 + its number: 130 for Ctrl-C (SIGINT), 143 for SIGTERM."""

    def __init__(self, message, exit_code=130):
        super().__init__(message)
        self.exit_code = exit_code
