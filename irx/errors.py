"""Errors irx reports to users as one line (no traceback without --debug)."""

from __future__ import annotations

import re


class IrxError(Exception):
    """Base class: the message is shown to the user as it is (the CLI names `param` as its flag).

    `param` names the Python parameter(s) the message speaks of ("tile", ("codec", "pix_fmt")): the message
    uses API terms and the CLI rewords each name as its flag (see `cli_wording`).
    """

    exit_code = 1

    def __init__(self, message: str = "", *, param: str | tuple[str, ...] | None = None) -> None:
        super().__init__(message)
        self.param = param


class UsageError(IrxError):
    """Bad options or arguments (exit code 2)."""

    exit_code = 2


def cli_wording(error: BaseException) -> str:
    """An error's message as the command line says it: the parameter's name becomes its flag
    (`tile` -> `--tile`, `batch_size` -> `--batch-size`)."""
    message = str(error)
    param = getattr(error, "param", None) or ()
    for name in (param,) if isinstance(param, str) else param:
        flag = "--" + name.replace("_", "-")
        message = re.sub(rf"(?<![\w./-]){re.escape(name)}(?![\w./-])", flag, message, count=1)
    return message


class InputError(IrxError):
    """An input file that cannot be read or decoded."""


class ModelError(IrxError):
    """A model that cannot be resolved, downloaded, verified or loaded."""


class UnsafeModelError(ModelError):
    """A weights file that would execute code when loaded."""


class IrxWarning(UserWarning):
    """Something the user should know that does not stop the work (e.g. a model fell back to the bundled one)."""
