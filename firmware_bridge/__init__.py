"""LED-array geometry, PLS stack recipes and the serial bridge to the LED controller.

This package imports nothing else of stainless: the simulator, the edge daemon and the trainer
all build on it.
"""

from firmware_bridge.errors import BridgeError, GeometryError, RecipeError
from firmware_bridge.geometry import PROFILES, ArrayGeometry, Led
from firmware_bridge.recipes import RECIPES, Channel, RecipeSpec, StackRecipe, resolve_recipe
from firmware_bridge.rigs import get_profile

__all__ = [
    "PROFILES",
    "RECIPES",
    "ArrayGeometry",
    "BridgeError",
    "Channel",
    "GeometryError",
    "Led",
    "RecipeError",
    "RecipeSpec",
    "StackRecipe",
    "get_profile",
    "resolve_recipe",
]
