"""The virtual bench: the device runtime driven by the simulator (camera, truth, demo, detector checks)."""
