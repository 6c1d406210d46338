"""Model updates from the client side: send ``flash`` / ``rollback`` and follow ``model_update`` to its end.

::

    with ControlClient("tcp://127.0.0.1:5557") as ctl:
        final = follow(ctl, "flash", {"bundle": Path("tiny-1.1.0.stainless").read_bytes()}, wait_s=600)
        final["state"]     # "committed", "rolled back: <reason>" or "refused: <code>"

The daemon answers ``flash`` and ``rollback`` at once (the update runs in its background); the
client then asks ``status`` every ``poll_s`` seconds until the state is final or ``wait_s`` passed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edge.device.flash import FINAL

if TYPE_CHECKING:
    from edge.client import ControlClient


def is_final(state: str) -> bool:
    return state.startswith(FINAL)


def follow(ctl: ControlClient, cmd: str, args: dict[str, Any], wait_s: float = 600.0, poll_s: float = 0.2,
           on_state: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Send ``cmd`` (``flash`` or ``rollback``), then poll ``status`` until ``model_update`` is final;
    returns the last ``model_update`` (its state may still be running when ``wait_s`` ran out)."""
    update: dict[str, Any] = ctl.call(cmd, **args)
    seen = ""
    deadline = time.monotonic() + wait_s
    while True:
        if update["state"] != seen:
            seen = update["state"]
            if on_state is not None:
                on_state(seen)
        if is_final(seen) or time.monotonic() >= deadline:
            return update
        time.sleep(poll_s)  # a client polling a remote daemon: nothing local to wait on
        update = ctl.call("status")["model_update"]
