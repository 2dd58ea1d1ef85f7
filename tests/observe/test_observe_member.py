"""A cluster member daemon's /metrics carries both planes, and its snapshot the cluster's state;
the Grafana dashboard in docs/ names only metrics that a real scrape has."""

from __future__ import annotations

import json
import os
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemons import scrape

from blockmesh.daemon.local_cluster import LocalMembers

pytestmark = pytest.mark.slow

DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana" / "blockmesh.json"


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMembers]:
    cluster = LocalMembers.create(tmp_path_factory.mktemp("members") / "c")
    with cluster:
        cluster.start_all()
        yield cluster


def dashboard_metric_names() -> set[str]:
    names = set()

    def walk(value: object) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("expr"), str):
                names.update(re.findall(r"\bblockmesh_[a-z0-9_]+", value["expr"]))
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(json.loads(DASHBOARD.read_text()))
    return names


def test_member_metrics_snapshot_and_grafana(members: LocalMembers, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "f.bin").write_bytes(os.urandom(1 << 20))
    added = members.json("node0", "cluster", "add", str(tmp_path / "f.bin"), "--replication",
                         "2", "--name", "observed")
    gateway = members.json("node0", "id", "--json")["Gateway"].split("/")  # /ip4/H/tcp/P
    with urllib.request.urlopen(f"http://{gateway[2]}:{gateway[4]}/ipfs/{added['cid']}",
                                timeout=30) as reply:
        assert len(reply.read()) == 1 << 20
    samples = scrape(members.repo("node0"))
    sample_names = {name.split("{", 1)[0] for name in samples}
    # Both planes on one endpoint.
    assert samples['blockmesh_pbft_committed_height{node="node0"}'] >= 1
    assert "blockmesh_transport_bytes_sent_total" in sample_names
    assert "blockmesh_bitswap_blocks_sent_total" in sample_names
    assert samples['blockmesh_gateway_requests_total{method="GET",status="200"}'] == 1

    used = dashboard_metric_names()
    assert len(used) > 20
    missing = sorted(used - sample_names)
    assert not missing, f"the Grafana dashboard names metrics no scrape has: {missing}"

    monkeypatch.setenv("COLUMNS", "200")
    out = members.cli("node0", "top", "--once").stdout.decode()
    assert "cluster node0" in out and "view 0" in out and added["cid"] in out
