from __future__ import annotations

from edge.device import headers
from edge.device.stack import FieldRequest


def test_field_ids_name_the_field_and_its_stage_position() -> None:
    req = FieldRequest("slide-a", 4, (10, 2.5), scan_id=7)
    assert headers.field_ids(req) == {"slide_id": "slide-a", "field_id": 4, "scan_id": 7, "stage_um": [10.0, 2.5]}
    assert headers.cell_id(req, 3) == "slide-a/7/4/3"


def test_failed_field_and_event_headers() -> None:
    req = FieldRequest("s", 1, (0.0, 0.0), scan_id=2)
    assert headers.failed_field_header(req, "camera timeout") == {
        **headers.field_ids(req), "status": "failed", "cells": 0, "error": "camera timeout"}
    assert headers.event_header("started", "up") == {"event": "started", "message": "up"}
    assert headers.event_header("field_failed", "x", req)["field_id"] == 1
