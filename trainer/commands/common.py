"""Helpers shared by the subcommands."""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def set_threads(requested: int) -> int:
    """Intra-op threads: ``requested``, or the CPUs shared evenly by the ``torchrun`` processes of this node."""
    import torch  # here, so that the commands without torch start without it

    n = requested or max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    torch.set_num_threads(n)
    return n


def emit(payload: dict[str, Any], as_json: bool, text: str) -> None:
    """Print the result: JSON on stdout with ``--json``, else a human line."""
    print(json.dumps(payload, indent=2, default=str) if as_json else text, file=sys.stdout)
