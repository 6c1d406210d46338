"""The audit finds mispaired samples among the worst, labels them and lists them for exclusion."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.trainer.conftest import make_store
from trainer.audit import labels_of
from trainer.cli import main
from trainer.data.store import QC_FLAGS


def test_audit_ranks_mispaired_cells_worst_and_excludes_them(trained: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    bad = (3, 11, 17)
    store = make_store(tmp_path / "d.zarr", n=30, seed=5, mismatched=bad)
    assert main(["audit", str(trained), str(store), "--out", str(tmp_path / "a"), "--top", "5", "--json",
                 "--threads", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = list(csv.DictReader((tmp_path / "a" / "audit.csv").open()))
    assert len(rows) == result["samples"] == 30
    assert [float(r["loss"]) for r in rows] == sorted((float(r["loss"]) for r in rows), reverse=True)
    worst_ids = {r["sample_id"] for r in rows[:5]}
    bad_ids = {f"s{i % 3}/0/{i}" for i in bad}
    assert bad_ids <= worst_ids
    assert all("mismatch" in r["labels"] for r in rows if r["sample_id"] in bad_ids)
    assert bad_ids <= set((tmp_path / "a" / "exclude.txt").read_text().split())
    assert (tmp_path / "a" / "gallery_worst.png").exists()


def test_labels_from_qc_columns_and_nuclei() -> None:
    row = {"added": 0.0, "removed": 0.0}
    ok = {"qc_flags": 0, "alignment_score": 0.9, "pls_misalignment_px": 0.2}
    assert labels_of(row, ok, 0.5, 1.0) == ["unexplained"]
    assert labels_of(row, {**ok, "pls_misalignment_px": 2.5}, 0.5, 1.0) == ["pls-misaligned"]
    assert labels_of(row, {**ok, "qc_flags": QC_FLAGS["damaged_cell"]}, 0.5, 1.0) == ["damaged-cell"]
    assert labels_of({"added": 1.0, "removed": 1.0}, ok, 0.5, 1.0) == ["target-artefact", "hallucination"]
