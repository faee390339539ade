"""Errors the CLI reports as one line (no traceback): bad input, missing models or data."""


class CompressionsError(Exception):
    """Base class for user-facing errors; the CLI prints `error: <message>` and exits with 2."""


class ModelNotFoundError(CompressionsError):
    pass


class DataError(CompressionsError):
    pass


class ConfigError(CompressionsError):
    pass


class ArgumentError(ConfigError):
    """A bad value of one named argument. The library names it as the Python argument or config field it
    is (`budget: ...`), the command line as the flag that sets it (`--budget: ...`)."""

    def __init__(self, argument: str, problem: str):
        super().__init__(f"{argument}: {problem}")
        self.argument, self.problem = argument, problem
