"""The trainer's exceptions: every message says what was expected, what was found and what to do.

Config errors are :class:`core.config.ConfigError` (one for every config of the project)."""

from __future__ import annotations


class TrainerError(Exception):
    """Base class of the trainer's own errors (configs, checkpoints, training, evaluation)."""


class CheckpointError(TrainerError):
    """A checkpoint is missing, malformed or does not fit the dataset / recipe it is used with."""


class NonFiniteLossError(TrainerError):
    """Training produced a NaN/inf loss; the message gives the step and the last good checkpoint."""
