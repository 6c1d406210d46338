"""Control commands of the daemon: argument validation (by name) and dispatch to the pipeline."""

from __future__ import annotations

import math
from typing import Any, Protocol

from edge.device.config import EdgeConfig
from edge.device.errors import ControlError
from edge.device.stack import FieldRequest


class Scanner(Protocol):
    """What the handlers drive: the running daemon (:class:`edge.device.app.Pipeline`)."""

    config: EdgeConfig

    def status(self) -> dict[str, Any]: ...

    def submit(self, requests: list[FieldRequest]) -> int: ...

    def stop_scan(self) -> int: ...


def _field(arg: Any, slide_id: str, where: str) -> FieldRequest:
    if not isinstance(arg, dict):
        raise ControlError("bad_args", f"{where}: expected a map {{field_id, stage_um}}, found {type(arg).__name__}")
    unknown = set(arg) - {"field_id", "stage_um", "slide_id"}
    if unknown:
        raise ControlError("bad_args", f"{where}: unknown key(s) {sorted(map(str, unknown))}; valid: field_id, "
                                       "stage_um, slide_id")
    fid = arg.get("field_id")
    if isinstance(fid, bool) or not isinstance(fid, int) or not 0 <= fid < 2**31:
        raise ControlError("bad_args", f"{where}: field_id must be an integer in [0, 2^31), found {fid!r}")
    stage = arg.get("stage_um", [0.0, 0.0])
    if (not isinstance(stage, list | tuple) or len(stage) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in stage)):
        raise ControlError("bad_args", f"{where}: stage_um must be [x, y] finite numbers (µm), found {stage!r}")
    sid = arg.get("slide_id", slide_id)
    if not isinstance(sid, str) or not 0 < len(sid) <= 128:
        raise ControlError("bad_args", f"{where}: slide_id must be a string of 1..128 characters")
    return FieldRequest(sid, fid, (float(stage[0]), float(stage[1])))


def _slide(args: dict[str, Any], default: str) -> str:
    sid = args.get("slide_id", default)
    if not isinstance(sid, str) or not 0 < len(sid) <= 128:
        raise ControlError("bad_args", "slide_id must be a string of 1..128 characters")
    return sid


def _only(args: dict[str, Any], allowed: set[str], cmd: str) -> None:
    unknown = set(args) - allowed
    if unknown:
        raise ControlError("bad_args", f"{cmd}: unknown argument(s) {sorted(map(str, unknown))}; valid: "
                                       f"{', '.join(sorted(allowed)) or 'none'}")


def make_handlers(p: Scanner) -> dict[str, Any]:
    default_slide = p.config.scan.slide_id
    limit = p.config.control.max_fields_per_scan

    def status(args: dict[str, Any]) -> dict[str, Any]:
        _only(args, set(), "status")
        return p.status()

    def scan_field(args: dict[str, Any]) -> dict[str, Any]:
        _only(args, {"field_id", "stage_um", "slide_id"}, "scan_field")
        req = _field(args, default_slide, "scan_field")
        return {"scan_id": p.submit([req]), "queued": 1}

    def start_scan(args: dict[str, Any]) -> dict[str, Any]:
        _only(args, {"fields", "slide_id"}, "start_scan")
        fields = args.get("fields")
        if not isinstance(fields, list) or not fields:
            raise ControlError("bad_args", "start_scan: 'fields' must be a non-empty list of {field_id, stage_um}")
        if len(fields) > limit:
            raise ControlError("bad_args", f"start_scan: {len(fields)} fields exceed the limit of {limit}")
        slide = _slide(args, default_slide)
        reqs = [_field(f, slide, f"start_scan.fields[{i}]") for i, f in enumerate(fields)]
        return {"scan_id": p.submit(reqs), "queued": len(reqs)}

    def stop(args: dict[str, Any]) -> dict[str, Any]:
        _only(args, set(), "stop")
        return {"dropped": p.stop_scan()}

    return {"status": status, "scan_field": scan_field, "start_scan": start_scan, "stop": stop}
