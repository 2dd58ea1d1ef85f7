"""`cluster init` writes a consistent, loadable cluster; broken files are refused clearly."""

import shutil
import subprocess
import sys
import tomllib

import pytest
import tomli_w

from blockmesh.control.cluster.config import (
    ClusterConfig,
    ClusterConfigError,
    NodeConfig,
    add_client,
    init_cluster,
)
from blockmesh.control.cluster.identity import ClientIdentity
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
    assert (tmp_path / "node0.toml").stat().st_mode & 0o777 == 0o600
    client = cluster.writer_identity(0).signer()
    assert client.public_key == cluster.clients[0].public_key


def test_cluster_file_holds_no_private_key_and_key_files_are_private(tmp_path):
    init_cluster(tmp_path, 4, "127.0.0.1", 7100, clients=3)
    text = (tmp_path / "cluster.toml").read_text()
    assert "private_key" not in text
    for k in range(3):
        key_file = tmp_path / "clients" / f"client{k}.key"
        assert key_file.stat().st_mode & 0o777 == 0o600
        identity = ClientIdentity.load(key_file)
        assert identity.private_key not in text
    for k in range(4):
        node = NodeConfig.load(tmp_path / f"node{k}.toml")
        assert node.private_key not in text
    assert (tmp_path / "clients").stat().st_mode & 0o077 == 0


def test_old_cluster_file_with_client_private_keys_is_refused_then_migrated(tmp_path):
    init_cluster(tmp_path, 4, "127.0.0.1", 7100, clients=2)
    raw = tomllib.loads((tmp_path / "cluster.toml").read_text())
    for entry in raw["clients"]:
        identity = ClientIdentity.load(tmp_path / "clients" / f"{entry['id']}.key")
        entry["private_key"] = identity.private_key
        del entry["role"]
    (tmp_path / "cluster.toml").write_text(tomli_w.dumps(raw))
    shutil.rmtree(tmp_path / "clients")
    with pytest.raises(ClusterConfigError, match="migrate-keys"):
        ClusterConfig.load(tmp_path / "cluster.toml")
    proc = subprocess.run([sys.executable, "-m", "blockmesh.cli", "cluster", "migrate-keys",
                           str(tmp_path)], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "private_key" not in (tmp_path / "cluster.toml").read_text()
    cluster = ClusterConfig.load(tmp_path / "cluster.toml")
    assert [c.role for c in cluster.clients] == ["writer", "writer"]
    assert (tmp_path / "clients" / "client1.key").stat().st_mode & 0o777 == 0o600
    assert cluster.writer_identity(1).signer().public_key == cluster.clients[1].public_key


def test_client_new_adds_an_identity_the_cluster_lists(tmp_path):
    init_cluster(tmp_path, 4, "127.0.0.1", 7100, clients=1)
    cluster_file = tmp_path / "cluster.toml"
    proc = subprocess.run([sys.executable, "-m", "blockmesh.cli", "cluster", "client", "new",
                           "--cluster", str(cluster_file), "--out", str(tmp_path / "r.key"),
                           "--role", "reader"], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    cluster = ClusterConfig.load(cluster_file)
    assert [(c.id, c.role) for c in cluster.clients] == [("client0", "writer"),
                                                         ("client1", "reader")]
    assert (tmp_path / "r.key").stat().st_mode & 0o777 == 0o600
    assert cluster.identity(tmp_path / "r.key").client_id == "client1"
    assert [c.id for c in cluster.writers()] == ["client0"]
    with pytest.raises(ClusterConfigError, match="never overwritten"):
        add_client(cluster_file, tmp_path / "r.key")
    # A key file of another cluster is not an identity of this one.
    other = tmp_path / "other"
    init_cluster(other, 4, "127.0.0.1", 7200, clients=1)
    with pytest.raises(ClusterConfigError, match="not a client of this cluster"):
        cluster.identity(other / "clients" / "client0.key")


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
