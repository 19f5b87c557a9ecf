"""Typed errors raised across keras-facemt.

Every error names the bad thing (file, field, value) so a user can act on it
without reading a traceback. Messages end with ``Received: name=value`` where a
value was given.
"""


class FaceMTError(Exception):
    """Base class of every error keras-facemt raises on purpose."""


class ConfigError(FaceMTError, ValueError):
    """A configuration or argument value is invalid (unknown task, negative iter, ...)."""


class SchemaError(FaceMTError, ValueError):
    """A record does not follow the TFRecord schema (missing key, inconsistent lengths)."""


class DataError(FaceMTError, IOError):
    """A data source is missing, empty, corrupt or not a TFRecord file."""


class ExportError(FaceMTError, RuntimeError):
    """An export failed to convert, load or match the Keras model in its runtime."""


class CheckpointError(FaceMTError, RuntimeError):
    """A model directory holds no usable checkpoint."""


class TrainingError(FaceMTError, RuntimeError):
    """Training cannot continue (e.g. too many non-finite losses)."""
