"""Errors caused by what a user asked for (as opposed to bugs): the CLI prints their
message and exits with status 2 instead of showing a traceback."""


class UserInputError(ValueError):
    """A bad argument, file or value; the message says what is wrong and what is allowed."""


class FmlabWarning(UserWarning):
    """Something a user should know that does not stop the command: a corrupt run that
    is skipped or rerun, a wait for another process. The CLI prints each as one line."""
