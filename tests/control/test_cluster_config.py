"""`cluster init` writes a consistent, loadable cluster; broken files are refused clearly."""

import subprocess
import sys

import pytest

from blockmesh.control.cluster.config import (
    ClusterConfig,
    ClusterConfigError,
    NodeConfig,
    init_cluster,
)
from blockmesh.control.keys import Verifier


def test_init_writes_loadable_files_with_matching_keys(tmp_path):
    init_cluster(tmp_path, 4, "127.0.0.1", 7100)
    cluster = ClusterConfig.load(tmp_path / "cluster.toml")
    assert [n.id for n in cluster.nodes] == ["node0", "node1", "node2", "node3"]
    assert cluster.committee.f == 1 and cluster.nodes[2].address == "127.0.0.1:7102"
    verifier = Verifier(cluster.public_keys())
    for k in range(4):
        node = NodeConfig.load(tmp_path / f"node{k}.toml")
        signature = node.signer().sign(b"msg")
        assert verifier.verify(node.node_id, signature, b"msg")
        assert not verifier.verify(f"node{(k + 1) % 4}", signature, b"msg")
        assert node.cluster_path == tmp_path / "cluster.toml"
    assert (tmp_path / "node0.toml").stat().st_mode & 0o077 == 0
    client = cluster.client_signer()
    assert client.public_key == cluster.client_public_key


def test_bad_sizes_and_files(tmp_path):
    with pytest.raises(ClusterConfigError):
        init_cluster(tmp_path, 5, "127.0.0.1", 7100)
    with pytest.raises(ClusterConfigError):
        ClusterConfig.load(tmp_path / "missing.toml")
    (tmp_path / "broken.toml").write_text("[[nodes]]\nid = 'x'\n")
    with pytest.raises(ClusterConfigError):
        ClusterConfig.load(tmp_path / "broken.toml")


def test_cli_cluster_init(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "blockmesh.cli", "cluster", "init", "--nodes",
                           "7", "--base-port", "7300", "--out", str(tmp_path / "c")],
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert ClusterConfig.load(tmp_path / "c" / "cluster.toml").committee.f == 2
