"""Errors a user can cause. The CLI prints their one line and exits with code 2."""


class UserError(Exception):
    """A problem with the user's input; the message names the problem and the fix."""

    exit_code = 2


class UnknownNameError(UserError, KeyError):
    """A model, dataset, attack or method name that no registry knows."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(UserError, ValueError):
    """An out-of-range or inconsistent setting (eps < 0, steps < 1, ...)."""


class DataError(UserError):
    """Missing, truncated or malformed data files."""


class CheckpointError(UserError):
    """A checkpoint that is missing, truncated, foreign or of another architecture."""
