"""Exception classes. Library code raises these; the CLI turns them into one red line and exit code 1."""

from __future__ import annotations


class IntentuneError(Exception):
    """Base class of every error that intentune raises on purpose.

    The message says what was expected, what was found, where, and what to do.
    """


class ConfigError(IntentuneError):
    """A config file, a ``--set`` override or a config value is wrong."""


class DataError(IntentuneError):
    """A data file is missing, malformed, or unfit for the requested job."""


class BackboneError(IntentuneError):
    """A backbone name or folder cannot be resolved or loaded."""


class ModelError(IntentuneError):
    """A model folder is missing, incomplete, or of an unknown format; or the model is not fitted."""
