"""Torch-free ground floor shared by the device, the simulator and the host tools (imports nothing of ours)."""
