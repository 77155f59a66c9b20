"""The longer runs: skipped unless COEX_SOAK=1, to keep CI's suite under its 15 minutes."""

from __future__ import annotations

import os

import pytest

SOAK = os.environ.get("COEX_SOAK") == "1"
soak = pytest.mark.skipif(not SOAK, reason="a soak: runs with COEX_SOAK=1")
