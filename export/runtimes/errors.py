"""Why a variant cannot run here, and the one-line form of any error message."""

from __future__ import annotations

from typing import Any


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of an error's message (its type name if empty), at most ``limit`` chars.

    Runtimes raise multi-line messages (ORT's with a C++ stack, inductor's with a log); a
    "not run" reason or a one-line CLI error needs the line that says what happened.
    """
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:limit]


class Unavailable(RuntimeError):
    """A variant that cannot run on this machine (or at this batch size); the message says why.

    Raised inside the layer and returned, not raised, by :func:`export.runtimes.open.open_variant`
    so that callers list it with its reason instead of stopping.
    """

    def __init__(self, reason: str, variant: Any = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.variant = variant  # the Variant it concerns, once open_variant knows it
