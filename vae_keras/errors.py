"""Errors a user can act on. Kept free of TensorFlow so the CLI can catch them cheaply.

Every error the project raises on purpose, for bad input or a state the user can fix, derives from
:class:`XrayVaeError`. The CLI prints such an error as one ``error:`` line and exits with status 2;
anything else is a bug and is shown with its full traceback. Subclasses also derive from the
built-in class callers would expect (``ValueError`` for bad values, ``RuntimeError`` for a run in
the wrong state), so ``except ValueError`` around library calls keeps working.
"""


class XrayVaeError(Exception):
    """Base class of the project's expected errors (bad input, a run folder in the wrong state)."""


class ConfigError(XrayVaeError, ValueError):
    """A configuration value or name is invalid (``VAEConfig`` validation, ``get_config``)."""


class DataError(XrayVaeError, ValueError):
    """A data set, label or argument does not fit what a run or command needs."""


class TrainingDiverged(XrayVaeError, RuntimeError):
    """The loss became NaN or infinite; training stopped and the last good checkpoint is kept."""


class TrainingCollapsed(XrayVaeError, RuntimeError):
    """A classifier or detector never learned more than the label prior (its outputs are constant).

    Raised at the end of training when the mean training loss over the last part of the run is not
    below the loss of predicting each class's training frequency for every input: its scores would
    be those of guessing, so it must not enter a table as a result.
    """


class RunExists(XrayVaeError, RuntimeError):
    """The output folder already holds a run and ``--resume`` was not asked for."""
