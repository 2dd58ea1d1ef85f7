"""Real replica processes on 127.0.0.1: `blockmesh cluster start` x4, driven as a user would.

Every replica is its own process, started and stopped by PID (SIGKILL where the test is about
a crash). Waits poll the replicas' GetStatus with a deadline; nothing asserts on timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from blockmesh.bench.pbft_clients import run_split_load, shares
from blockmesh.control.cluster.client import ClusterClient
from blockmesh.control.cluster.config import (
    ClusterConfig,
    NodeConfig,
    add_client,
    free_base_port,
    init_cluster,
)
from blockmesh.control.cluster.loadgen import run_load
from blockmesh.control.consensus.app import decode_result, encode_get, encode_set
from blockmesh.control.keys import Signer
from blockmesh.control.transport import PeerError, ReplicaClient, TransportConfig
from blockmesh.control.transport.tls import TlsConfig, generate_certificate

#: Short timers so a crashed primary is replaced within seconds.
FAST_PBFT = {"view_change_timeout": 1.0, "retransmit_interval": 0.5,
             "state_transfer_delay": 0.5, "state_fetch_timeout": 2.0}
WAIT = 60.0
QUICK = TransportConfig(dial_timeout=5.0, rpc_timeout=5.0)


class Cluster:
    """Config files in `root`, one `cluster start` process per replica."""

    def __init__(self, root: Path, kind: str, checkpoint_interval: int = 5) -> None:
        self.root = root
        self.kind = kind
        self.base = free_base_port()
        init_cluster(root, 4, "127.0.0.1", self.base, checkpoint_interval, clients=8,
                     transport=kind, pbft=FAST_PBFT)
        self.config = ClusterConfig.load(root / "cluster.toml")
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, node: str, node_file: Path | None = None) -> None:
        path = node_file or self.root / f"{node}.toml"
        log = open(self.root / f"{node}-{len(self.procs)}.log", "ab")  # noqa: SIM115
        self.procs[node] = subprocess.Popen(
            [sys.executable, "-m", "blockmesh.cli", "cluster", "start", "--config", str(path),
             "--transport", self.kind], stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def kill(self, node: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(node)
        os.kill(proc.pid, sig)
        proc.wait(timeout=15)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.procs.clear()

    def status(self) -> dict[str, dict[str, Any]]:
        async def ask() -> list[dict[str, Any]]:
            async with ClusterClient(self.config) as cc:
                return await cc.status()

        return {r["node"]: r for r in asyncio.run(ask())}

    def wait_until(self, what: str, check: Callable[[dict[str, dict[str, Any]]], bool]) -> dict:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            status = self.status()
            if check(status):
                return status
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting until {what}: {self.status()}")

    def wait_meshed(self, nodes: list[str]) -> None:
        self.wait_until(f"{nodes} are meshed", lambda s: all(
            set(s[n].get("peers", ())) >= set(nodes) - {n} for n in nodes))

    def load(self, count: int, clients: int = 4) -> None:
        result = asyncio.run(run_load(self.config, count, 16, clients, timeout=WAIT))
        assert result.committed == count and result.failed == 0, result.summary()

    def execute(self, operation: bytes, client: int = 0) -> bytes:
        async def run() -> bytes:
            async with ClusterClient(self.config) as cc:
                return await cc.session(client).execute(operation, WAIT)

        return asyncio.run(run())

    def metrics(self, node: str) -> str:
        address = self.config.node(node).metrics_address
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as answer:
            return answer.read().decode()


def agreed(nodes: list[str]) -> Callable[[dict[str, dict[str, Any]]], bool]:
    """All `nodes` answer, at one height > 0 with one head hash."""
    def check(status: dict[str, dict[str, Any]]) -> bool:
        rows = [status[n] for n in nodes]
        return (all("error" not in r for r in rows) and rows[0]["height"] > 0
                and len({(r["height"], r["head_hash"]) for r in rows}) == 1)
    return check


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        if key.partition("{")[0] != name:
            continue
        got = ",".join(sorted(key.partition("{")[2].rstrip("}").split(","))) if "{" in key else ""
        if got == wanted:
            return float(value)
    return 0.0


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    made: list[Cluster] = []

    def make(kind: str, **kwargs: Any) -> Cluster:
        cluster = Cluster(tmp_path / f"c{len(made)}", kind, **kwargs)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.stop_all()


NODES = ["node0", "node1", "node2", "node3"]


KINDS = pytest.mark.parametrize("kind", ["grpc", "tcp"])


@KINDS
def test_four_replicas_commit_agree_and_report(make_cluster, kind):
    c = make_cluster(kind)
    reader = c.root / "reader.key"
    add_client(c.root / "cluster.toml", reader, "reader")
    c.config = ClusterConfig.load(c.root / "cluster.toml")
    for node in NODES:
        c.start(node)
    c.wait_meshed(NODES)

    assert decode_result(c.execute(encode_set(b"colour", b"blue"))).ok
    c.load(30)
    assert decode_result(c.execute(encode_get(b"colour"), client=1)).value == b"blue"
    status = c.wait_until("every replica has the same head", agreed(NODES))
    assert status["node2"]["height"] >= 2 and status["node0"]["primary"] == "node0"

    cli = subprocess.run([sys.executable, "-m", "blockmesh.cli", "cluster", "health", "--cluster",
                          str(c.root / "cluster.toml"), "--json"],
                         capture_output=True, timeout=60, check=True)
    replicas = json.loads(cli.stdout)["replicas"]
    assert [r["node"] for r in replicas] == NODES
    for r in replicas:
        assert set(r) == {"node", "view", "primary", "height", "head_hash",
                          "stable_checkpoint", "peers"}
        assert r["stable_checkpoint"] % 5 == 0 and r["stable_checkpoint"] > 0
        assert sorted(r["peers"]) == [n for n in NODES if n != r["node"]]

    text = c.metrics("node1")
    height = sample(text, "blockmesh_pbft_committed_height", node="node1")
    assert height >= status["node1"]["height"] > 0
    assert sample(text, "blockmesh_transport_messages_sent_total",
                  node="node1", transport=kind) > 0
    assert sample(text, "blockmesh_transport_peers", node="node1", transport=kind) == 3
    assert sample(text, "blockmesh_pbft_commit_latency_seconds_count", node="node1") > 0
    assert sample(text, "blockmesh_pbft_view", node="node1") == 0
    for family in ("blockmesh_pbft_view_changes_total", "blockmesh_pbft_batch_size",
                   "blockmesh_pbft_dropped_messages_total",
                   "blockmesh_transport_bytes_received_total",
                   "blockmesh_transport_connection_errors_total",
                   "blockmesh_transport_send_latency_seconds"):
        assert f"# TYPE {family} " in text, family
    assert sample(c.metrics("node0"), "blockmesh_pbft_batch_size_count", node="node0") > 0

    # A reader reads, over its own identity, and may not write.
    def submit(*words: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "blockmesh.cli", "cluster", "submit",
                               "--cluster", str(c.root / "cluster.toml"), "--identity",
                               str(reader), *words], capture_output=True, timeout=90)

    assert submit("get", "colour").stdout.strip() == b"blue"
    refused = submit("set", "colour", "red")
    assert refused.returncode != 0 and b"forbidden" in refused.stderr, refused
    assert decode_result(c.execute(encode_get(b"colour"))).value == b"blue"

    # Without a certificate the cluster lists, no replica answers a state or status read.
    async def unauthenticated(tls: TlsConfig | None) -> list[str]:
        errors = []
        for info in c.config.nodes:
            client = ReplicaClient(kind, info.address, tls=tls, config=QUICK,
                                   peer=info.id if tls else None)
            try:
                for read in (client.get_status(), client.sync_state(1)):
                    with pytest.raises(PeerError) as refusal:
                        await read
                    errors.append(refusal.value.reason)
            finally:
                await client.close()
        return errors

    stranger = TlsConfig(*generate_certificate("client0"),
                         {n.id: n.tls_cert for n in c.config.nodes})
    assert len(asyncio.run(unauthenticated(None))) == 8
    assert len(asyncio.run(unauthenticated(stranger))) == 8


def test_a_load_split_over_two_processes_commits_every_request(make_cluster):
    """The benchmark's --client-processes: two load-generator processes, disjoint identities,
    one merged result, and the CPU they spent reported back."""
    c = make_cluster("tcp")
    for node in NODES:
        c.start(node)
    c.wait_meshed(NODES)
    result, cpu = run_split_load(c.root / "cluster.toml", 16, "tcp", WAIT, False,
                                 shares(4, 24, 4, 2))
    assert result.committed == 24 and result.failed == 0, result.summary()
    assert result.clients == 4 and len(result.latencies) == 24 and cpu > 0


@KINDS
def test_killed_primary_is_replaced_and_the_cluster_goes_on(make_cluster, kind):
    c = make_cluster(kind)
    for node in NODES:
        c.start(node)
    c.wait_meshed(NODES)
    c.load(10)
    before = c.wait_until("the first commits agree", agreed(NODES))["node1"]["height"]

    c.kill("node0")
    c.load(10)
    assert decode_result(c.execute(encode_set(b"after", b"crash"))).ok
    assert decode_result(c.execute(encode_get(b"after"), client=2)).value == b"crash"
    rest = NODES[1:]
    status = c.wait_until("the survivors agree in a new view", lambda s: agreed(rest)(s) and all(
        s[n]["view"] >= 1 and s[n]["primary"] != "node0" for n in rest))
    assert status["node0"]["error"] == "unreachable"
    assert status["node1"]["height"] > before
    view_changes = sample(c.metrics("node2"), "blockmesh_pbft_view_changes_total", node="node2")
    assert view_changes >= 1


@KINDS
def test_restarted_backup_catches_up_by_state_transfer(make_cluster, kind):
    c = make_cluster(kind)
    for node in NODES:
        c.start(node)
    c.wait_meshed(NODES)
    c.load(5)
    c.wait_until("the first commits agree", agreed(NODES))

    c.kill("node3")
    # One closed-loop client puts each request in a batch of its own, so 40 requests are 40
    # sequence numbers: the others pass several checkpoints (every 5) without node3. With more
    # clients the primary batches them and the count of sequences depends on timing.
    c.load(40, clients=1)
    ahead = c.wait_until("the three agree", agreed(NODES[:3]))["node0"]["stable_checkpoint"]
    assert ahead >= 25

    c.start("node3")
    c.wait_meshed(NODES)
    deadline = time.monotonic() + WAIT
    while not agreed(NODES)(c.status()):
        assert time.monotonic() < deadline, c.status()
        c.execute(encode_set(b"tick", b"x"))  # new checkpoints tell node3 it is behind
    transfers = sample(c.metrics("node3"), "blockmesh_pbft_events_total",
                       node="node3", event="state_transfer")
    assert transfers >= 1


@KINDS
def test_replica_with_a_key_not_in_the_cluster_is_refused(make_cluster, kind):
    c = make_cluster(kind)
    # An impostor claims node3's identity with its own key and a cluster file edited to match.
    impostor = Signer.generate("node3")
    fake = c.root / "impostor"
    fake.mkdir()
    raw = (c.root / "cluster.toml").read_text()
    real_key = c.config.node("node3").public_key.hex()
    (fake / "cluster.toml").write_text(raw.replace(real_key, impostor.public_key.hex()))
    # It even holds node3's TLS key: the Ed25519 handshake, bound to the certificate, still
    # tells it apart.
    (fake / "node3.toml").write_text(tomli_w.dumps({
        "node_id": "node3", "private_key": impostor.private_hex(), "cluster": "cluster.toml",
        "data_dir": "node3-data", "transport": kind,
        "tls_key": NodeConfig.load(c.root / "node3.toml").tls_key}))
    for node in NODES[:3]:
        c.start(node)
    c.start("node3", fake / "node3.toml")
    c.wait_meshed(NODES[:3])
    c.load(6)
    status = c.wait_until("the honest three agree", agreed(NODES[:3]))

    assert status["node3"]["peers"] == [] and status["node3"]["height"] == 0
    for node in NODES[:3]:
        assert "node3" not in status[node]["peers"]

    def refused(node: str) -> float:
        return sample(c.metrics(node), "blockmesh_transport_connection_errors_total",
                      node=node, transport=kind, reason="auth")

    # The impostor redials with back-off, so a loaded machine may not have reached every
    # honest replica by the time they agree: wait (bounded) for each to have refused it.
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and not all(refused(n) >= 1 for n in NODES[:3]):
        time.sleep(0.3)
    for node in NODES[:3]:
        assert refused(node) >= 1, node


def _submit_in_background(c: Cluster, key: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "blockmesh.cli", "cluster", "submit", "--cluster",
         str(c.root / "cluster.toml"), "--transport", c.kind, "set", key, "x"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.slow
def test_restarted_replica_adopts_the_view_the_others_moved_to(make_cluster):
    c = make_cluster("grpc")
    for node in NODES:
        c.start(node)
    c.wait_meshed(NODES)
    c.load(4)
    c.wait_until("the first commits agree", agreed(NODES))
    c.kill("node3")
    # Two view changes without node3: each primary in turn stops (SIGSTOP) with a request
    # pending until the two others moved past its view, then continues and joins them.
    for view, primary in ((1, "node0"), (2, "node1")):
        os.kill(c.procs[primary].pid, signal.SIGSTOP)
        submit = _submit_in_background(c, f"view{view}")
        try:
            others = [n for n in NODES[:3] if n != primary]
            c.wait_until(f"view {view} is asked for", lambda s, o=others, v=view: all(
                s[n].get("view", 0) >= v for n in o))
        finally:
            os.kill(c.procs[primary].pid, signal.SIGCONT)
        assert submit.wait(timeout=WAIT) == 0
    status = c.wait_until("view 2 for the three", lambda s: agreed(NODES[:3])(s) and all(
        s[n]["view"] == 2 for n in NODES[:3]))

    c.start("node3")
    c.wait_meshed(NODES)
    c.load(4)
    status = c.wait_until("node3 in view 2 with the others", lambda s: agreed(NODES)(s) and {
        s[n]["view"] for n in NODES} == {2})
    assert status["node3"]["primary"] == "node2"
    assert sample(c.metrics("node3"), "blockmesh_pbft_events_total", node="node3",
                  event="view_sync") >= 1
