"""Errors a user can act on. Kept free of TensorFlow so the CLI can catch them cheaply."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; training stopped and the last good checkpoint is kept."""


class RunExists(RuntimeError):
    """The output folder already holds a run and ``--resume`` was not asked for."""
