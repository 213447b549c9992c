import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    """Converted models go to a per-session cache, never the user's home."""
    monkeypatch.setenv("HWLAT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def run_cli(*args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m hwlat.cli ARGS`` in a subprocess, as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "hwlat.cli", *args], capture_output=True, text=True, timeout=timeout, env=full_env
    )
