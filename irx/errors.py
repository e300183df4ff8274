"""Errors irx reports to users as one line (no traceback without --debug)."""

from __future__ import annotations

import re


class IrxError(Exception):
    """Base class: the message is shown to the user as it is."""

    exit_code = 1


class UsageError(IrxError):
    """Bad options or arguments (exit code 2).

    `param` names the Python parameter at fault ("tile", "batch_size"); the message speaks in API terms
    and the CLI rewords it with the flag (see `cli_wording`).
    """

    exit_code = 2

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def cli_wording(error: BaseException) -> str:
    """An error's message as the command line says it: the parameter's name becomes its flag
    (`tile` -> `--tile`, `batch_size` -> `--batch-size`)."""
    message = str(error)
    param = getattr(error, "param", None)
    if not param:
        return message
    flag = "--" + param.replace("_", "-")
    return re.sub(rf"(?<![\w-]){re.escape(param)}(?![\w-])", flag, message, count=1)


class InputError(IrxError):
    """An input file that cannot be read or decoded."""


class ModelError(IrxError):
    """A model that cannot be resolved, downloaded, verified or loaded."""


class UnsafeModelError(ModelError):
    """A weights file that would execute code when loaded."""


class IrxWarning(UserWarning):
    """Something the user should know that does not stop the work (e.g. a model fell back to the bundled one)."""
