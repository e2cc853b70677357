"""Errors a user can cause and fix.

The CLI catches :class:`UserError`, prints its message (no traceback) and exits
with code 2. Every message names the file, key or value that was wrong and what
to do about it.
"""


class UserError(Exception):
    """A mistake in the input (config, data, arguments) that the user can fix."""


class ConfigError(UserError):
    """An experiment file, override or CLI option is invalid."""


class DatasetError(UserError):
    """A dataset folder is missing, incomplete or holds undecodable/invalid files."""


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the run is marked failed."""


class NonFiniteOutputs(UserError):
    """A model's outputs hold NaN or inf: they have no prediction to score."""
