"""The one exception type of the export package: a problem the user can fix from the message."""

from __future__ import annotations


class ExportError(ValueError):
    """An input, option or existing file that export cannot use; the message says what to do."""
