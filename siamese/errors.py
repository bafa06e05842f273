"""The one error type users see: a bad file, key or value. The CLIs turn it into exit status 2."""


# Line breaks (everything str.splitlines splits at) and how a message shows them.
_BREAKS = str.maketrans({c: repr(c)[1:-1] for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"})


class UserError(Exception):
    """A problem with the user's input: config, data, run directory or command line.

    The message is one line and names the culprit (file, key path, line number). It stays one
    line whatever it quotes: a line break inside a quoted key, path or value (from a fuzzed
    file, or a library's message) is shown escaped, as repr() shows it.
    """

    def __init__(self, message: object = "", *rest):
        super().__init__(str(message).translate(_BREAKS), *rest)


class RunError(Exception):
    """A run could not finish although its input was fine (a non-finite loss, an export that
    does not reload to the same numbers). The CLIs exit 1; the last checkpoint is kept."""


class TrainingError(RunError):
    """Training cannot go on (e.g. a non-finite loss); the step was not applied."""


class ExportMismatch(RunError):
    """A reloaded export disagrees with the trained branch; the export was removed."""


class Interrupted(Exception):
    """SIGINT or SIGTERM stopped a run after a checkpoint was written; exit 128 + signal."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.code = 128 + signum


def no_pairs_run(run_dir) -> UserError:
    """The error for a reconstruction-only run on unlabelled images, which has no pairs."""
    return UserError(f"{run_dir}: a reconstruction-only run on unlabelled images has no pairs, "
                     f"threshold or export; start a similarity run from it with --set "
                     f"model.pretrained={run_dir}")
