"""`blockmesh bench dht` end to end at its smallest size: three daemons, no kubo. The bench
checks the bytes the seeker gets against the file it added, so a DHT that finds no provider
fails it; times are only reported, never asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_bench_dht_finds_the_content_through_the_dht(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "blockmesh.cli", "bench", "dht", "--nodes", "3", "--repeat", "1",
         "--size-kib", "64", "--no-kubo", "--workdir", str(tmp_path), "--json"],
        capture_output=True, timeout=120, check=False,
        env=dict(os.environ, BLOCKMESH_PATH=str(tmp_path / "unused")))
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    result = json.loads(done.stdout)
    assert result["nodes"] == 3 and result["size"] == 64 * 1024
    assert result["kubo_unavailable"] and result["ratio"] is None
    (trial,) = result["trials"]
    assert trial["kubo_total"] is None
    assert 0 < trial["blockmesh_ttfb"] <= trial["blockmesh_total"]
    # The seeker knew only node 0, which lacks the content: a provider lookup had to run.
    assert trial["lookups"] and all(lk["messages"] >= 1 and lk["hops"] >= 1
                                    for lk in trial["lookups"])
    assert 1 <= result["seeker_table"] <= 2  # servers only: the seeker is a client
