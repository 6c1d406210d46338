"""Exceptions of firmware_bridge. Messages say what was expected, what was found and what to do."""

from __future__ import annotations


class BridgeError(Exception):
    """Base class of every error raised by firmware_bridge."""


class GeometryError(BridgeError, ValueError):
    """An LED array geometry is impossible or a profile name is unknown."""


class RecipeError(BridgeError, ValueError):
    """A stack recipe is unknown, malformed or cannot be resolved against a geometry."""
