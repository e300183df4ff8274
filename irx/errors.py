"""Errors irx reports to users as one line (no traceback without --debug)."""

from __future__ import annotations


class IrxError(Exception):
    """Base class: the message is shown to the user as it is."""

    exit_code = 1


class UsageError(IrxError):
    """Bad options or arguments (exit code 2)."""

    exit_code = 2


class InputError(IrxError):
    """An input file that cannot be read or decoded."""


class ModelError(IrxError):
    """A model that cannot be resolved, downloaded, verified or loaded."""


class UnsafeModelError(ModelError):
    """A weights file that would execute code when loaded."""
