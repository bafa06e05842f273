"""The one error type users see: a bad file, key or value. The CLIs turn it into exit status 2."""


class UserError(Exception):
    """A problem with the user's input: config, data, run directory or command line.

    The message is one line and names the culprit (file, key path, line number).
    """
