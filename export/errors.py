"""Exceptions of the exporter; messages say what was expected, what was found and what to do."""

from __future__ import annotations


class ExportError(Exception):
    """Base class of the exporter's own errors."""


class ParityError(ExportError):
    """An exported model disagrees with PyTorch (or fp32) beyond the stated tolerance."""


class KeyFileError(ExportError):
    """A signing key file is missing, unreadable, of the wrong type, or would be overwritten."""
