"""The device runtime: everything `stainless-edge run` needs on a device (imports no simulator, no torch)."""
