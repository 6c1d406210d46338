from __future__ import annotations

import sys

import numpy as np
import pytest

from edge.device.memory import tune_malloc


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_thresholds_are_accepted_and_allocation_still_works() -> None:
    assert tune_malloc() is True  # glibc accepts 32 MiB / 128 MiB
    a = np.ones((44, 3, 64, 64), np.float32)  # a cell's input comes from the heap now
    assert float(a.sum()) == a.size
