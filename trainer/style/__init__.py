"""Unpaired stain styles: a CycleGAN that turns one stain's look into another's (seed 003).

``config`` (the TOML config of ``stainless-train fit-style``), ``data`` (folders of unpaired images,
synthetic MGG / Wright-Giemsa cells), ``fit`` (the training loop), ``measure`` (hue shift and
nucleus IoU before/after, the before/after strip).
"""
