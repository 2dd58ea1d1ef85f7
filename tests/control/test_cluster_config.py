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
    free_base_port,
    init_cluster,
)
from blockmesh.control.cluster.identity import ClientIdentity
from blockmesh.control.cluster.runtime import Replica
from blockmesh.control.consensus.store import StoreOwnerMismatch
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
    # What an older blockmesh wrote: client private keys in cluster.toml, no TLS anywhere.
    raw = tomllib.loads((tmp_path / "cluster.toml").read_text())
    for entry in raw["clients"]:
        identity = ClientIdentity.load(tmp_path / "clients" / f"{entry['id']}.key")
        entry["private_key"] = identity.private_key
        del entry["role"], entry["tls_cert"]
    for entry in raw["nodes"]:
        del entry["tls_cert"]
        node_file = tmp_path / f"{entry['id']}.toml"
        node = tomllib.loads(node_file.read_text())
        del node["tls_key"]
        node_file.write_text(tomli_w.dumps(node))
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
    assert cluster.client_tls(cluster.writer_identity(1)).identify(None) is None
    node = NodeConfig.load(tmp_path / "node2.toml")
    assert node.tls_key and (tmp_path / "node2.toml").stat().st_mode & 0o777 == 0o600
    Replica(node, cluster).store.close()  # its TLS key matches the listed certificate
    again = subprocess.run([sys.executable, "-m", "blockmesh.cli", "cluster", "migrate-keys",
                            str(tmp_path)], capture_output=True, timeout=60)
    assert b"up to date" in again.stdout


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


def test_init_refuses_an_existing_cluster_unless_forced(tmp_path):
    first = init_cluster(tmp_path, 4, "127.0.0.1", 7100, clients=1)
    with pytest.raises(ClusterConfigError, match="--force"):
        init_cluster(tmp_path, 4, "127.0.0.1", 7100, clients=1)
    assert ClusterConfig.load(tmp_path / "cluster.toml").nodes == first.nodes
    command = [sys.executable, "-m", "blockmesh.cli", "cluster", "init", "--out", str(tmp_path),
               "--clients", "1"]
    refused = subprocess.run(command, capture_output=True, timeout=60)
    assert refused.returncode != 0 and refused.stderr.count(b"\n") == 1, refused.stderr
    forced = subprocess.run([*command, "--force"], capture_output=True, timeout=60)
    assert forced.returncode == 0, forced.stderr
    assert ClusterConfig.load(tmp_path / "cluster.toml").nodes[0].public_key != \
        first.nodes[0].public_key


def test_a_replica_whose_key_does_not_own_its_log_refuses_to_start(tmp_path):
    init_cluster(tmp_path, 4, "127.0.0.1", free_base_port(), clients=1)
    node = NodeConfig.load(tmp_path / "node0.toml")
    replica = Replica(node, ClusterConfig.load(tmp_path / "cluster.toml"))
    replica.store.close()  # the store now belongs to node0's first key
    init_cluster(tmp_path, 4, "127.0.0.1", free_base_port(), clients=1, force=True)
    with pytest.raises(StoreOwnerMismatch):
        Replica(NodeConfig.load(tmp_path / "node0.toml"),
                ClusterConfig.load(tmp_path / "cluster.toml"))
    proc = subprocess.run([sys.executable, "-m", "blockmesh.cli", "cluster", "start",
                           "--config", str(tmp_path / "node0.toml")],
                          capture_output=True, timeout=60)
    assert proc.returncode != 0
    assert proc.stderr.count(b"\n") == 1 and b"belongs to node0" in proc.stderr, proc.stderr


def test_metrics_listen_where_asked_whatever_the_replica_binds(tmp_path):
    init_cluster(tmp_path, 4, "127.0.0.3", free_base_port(host="127.0.0.3"), clients=1)
    node = NodeConfig.load(tmp_path / "node0.toml")
    cluster = ClusterConfig.load(tmp_path / "cluster.toml")
    port = int(cluster.node("node0").metrics_address.rpartition(":")[2])
    for kwargs, host in (({}, "127.0.0.1"), ({"metrics_host": "127.0.0.2"}, "127.0.0.2")):
        replica = Replica(node, cluster, **kwargs)
        try:
            replica.metrics_server.start()
            assert replica.metrics_server.address == f"{host}:{port}"
        finally:
            replica.metrics_server.stop()
            replica.store.close()


def test_free_base_ports_stay_below_the_ephemeral_range():
    """Outgoing connections take ephemeral ports at any time; a cluster's fixed ports there
    could be taken between the probe and the daemons' binds."""
    from blockmesh.control.cluster.config import _ephemeral_low

    low = _ephemeral_low()
    for _ in range(20):
        base = free_base_port(4)
        assert base >= 10_000 and base + 3 * 100 + 3 < low
