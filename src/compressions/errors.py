"""Errors the CLI reports as one line (no traceback): bad input, missing models or data."""


class CompressionsError(Exception):
    """Base class for user-facing errors; the CLI prints `error: <message>` and exits with 2."""


class ModelNotFoundError(CompressionsError):
    pass


class DataError(CompressionsError):
    pass


class ConfigError(CompressionsError):
    pass
