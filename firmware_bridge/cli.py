"""``stainless-led``: emulate, talk to and test illuminate LED-array controllers.

    stainless-led emulate --profile thesis-43 --pty       # prints the device path, runs until ^C
    stainless-led selftest /dev/pts/5 --json
    stainless-led console sim://sci-round-257
    stainless-led plan sim://thesis-43 --recipe full-nohe [--sequence] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from firmware_bridge.errors import BridgeError
from firmware_bridge.geometry import PROFILES
from firmware_bridge.recipes import resolve_recipe
from firmware_bridge.rigs import get_profile

log = logging.getLogger(__name__)
HISTORY = Path(os.environ.get("STAINLESS_LED_HISTORY", str(Path.home() / ".stainless_led_history")))


def _emulate(args: argparse.Namespace) -> int:
    from firmware_bridge.emulator import Emulator

    emulator = Emulator(get_profile(args.profile), quirks=not args.strict)
    server = emulator.serve_tcp(args.tcp) if args.tcp is not None else emulator.serve_pty()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        if args.json:
            print(json.dumps({"url": server.url, "profile": args.profile, "quirks": not args.strict}), flush=True)
        else:
            print(server.url, flush=True)
        stop.wait()
    finally:
        server.close()
    return 0


def _selftest(args: argparse.Namespace) -> int:
    from firmware_bridge.link import LinkConfig
    from firmware_bridge.selftest import run_selftest

    report = run_selftest(args.url, config=LinkConfig(timeout_s=args.timeout))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for c in report["checks"]:
            print(f"{'ok  ' if c['ok'] else 'FAIL'} {c['name']:<22} {c['detail']}")
        lat = report.get("latency_ms")
        if lat:
            print(f"l.<i> round trip: p50 {lat['p50']:.3f} ms, p99 {lat['p99']:.3f} ms over {lat['n']} commands")
        print("selftest", "passed" if report["ok"] else "FAILED")
    return 0 if report["ok"] else 1


def _plan(args: argparse.Namespace) -> int:
    from firmware_bridge.client import open_led_array

    with open_led_array(args.url) as arr:
        recipe = resolve_recipe(args.recipe, arr.geometry())
        lines = arr.sequence_plan(recipe, args.delay_ms) if args.sequence else arr.plan(recipe)
    if args.json:
        out: dict[str, Any] = {"recipe": recipe.id, "hash": recipe.hash, "geometry": recipe.geometry.name,
                               "mode": "sequence" if args.sequence else "host", "commands": lines}
        if not args.sequence:
            out["channels"] = list(recipe.channel_names)
        print(json.dumps(out, indent=2))
    else:
        print("\n".join(lines))
    return 0


def _console(args: argparse.Namespace) -> int:
    from firmware_bridge.client import open_led_array

    try:
        import readline
    except ImportError:  # not on every platform; the console works without history
        readline = None  # type: ignore[assignment]
    if readline is not None and HISTORY.exists():
        readline.read_history_file(HISTORY)
    with open_led_array(args.url) as arr:
        info = arr.identify()
        print(f"{info.props.device_name}: {info.props.led_count} LEDs, illuminate {info.firmware_version} on "
              f"{arr.url}. Commands as on the device (l.5, sb.128, pprops); :quit to leave.")
        try:
            while True:
                try:
                    line = input("led> ").strip()
                except EOFError:
                    print()
                    break
                if line in (":quit", ":q", "exit"):
                    break
                if line:
                    _console_line(arr, line, raw=args.raw)
        finally:
            if readline is not None:
                readline.write_history_file(HISTORY)
    return 0


def _console_line(arr: Any, line: str, *, raw: bool) -> None:
    try:
        reply = arr.send_line(line, validate=not raw, timeout=30.0)
    except BridgeError as exc:
        print(f"error: {exc}")
        return
    print(reply.text if reply.lines else "ok")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stainless-led", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="count", default=0, help="-v info, -vv debug")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("emulate", help="serve an emulated controller on a pty or TCP port")
    e.add_argument("--profile", default="thesis-43",
                   help=f"built-in profile ({', '.join(sorted(PROFILES))}), rig (uconn-15x15) or rig file (.toml)")
    where = e.add_mutually_exclusive_group()
    where.add_argument("--pty", action="store_true", help="serve on a new pseudo-terminal (default)")
    where.add_argument("--tcp", type=int, metavar="PORT", help="serve on 127.0.0.1:PORT (0 = any free port)")
    e.add_argument("--strict", action="store_true",
                   help="a range-checking controller instead of the illuminate v2.32 parser (the default)")
    e.add_argument("--json", action="store_true", help="print {url, profile, quirks} as JSON")
    e.set_defaults(func=_emulate)
    s = sub.add_parser("selftest", help="check a controller end to end")
    s.add_argument("url")
    s.add_argument("--timeout", type=float, default=2.0, help="per-command timeout (s)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_selftest)
    c = sub.add_parser("console", help="interactive console with history")
    c.add_argument("url")
    c.add_argument("--raw", action="store_true", help="send lines unchecked (no range validation)")
    c.set_defaults(func=_console)
    pl = sub.add_parser("plan", help="print the commands a stack recipe needs")
    pl.add_argument("url")
    pl.add_argument("--recipe", required=True, help="full, full-nohe, le36, ..., or na0-0.6")
    pl.add_argument("--sequence", action="store_true", help="hardware-paced: ssl/ssv upload + rseq")
    pl.add_argument("--delay-ms", type=int, default=20, help="sequence pattern period (ms, >= 5)")
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(func=_plan)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.func(args))
    except (BridgeError, ValueError) as exc:
        print(f"stainless-led {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
