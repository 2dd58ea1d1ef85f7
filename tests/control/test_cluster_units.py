"""Pieces of the cluster runtime that need no process: reply envelopes, config, CLI parsing."""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import click
import pytest

from blockmesh.cli.cluster import parse_operation
from blockmesh.control.cluster.client import ClusterClient, RequestFailed
from blockmesh.control.cluster.config import (
    ClusterConfig,
    ClusterConfigError,
    NodeConfig,
    free_base_port,
    init_cluster,
)
from blockmesh.control.cluster.replies import answered_reply, to_response
from blockmesh.control.consensus import PBFTClient
from blockmesh.control.consensus.app import encode_delete, encode_get, encode_set
from blockmesh.control.consensus.messages import reply_digest, sign_batch_replies, sign_envelope
from blockmesh.control.keys import Signer, Verifier
from blockmesh.control.proto import pbft_pb2 as pb
from blockmesh.control.transport import TransportConfig
from blockmesh.errors import DecodeError

REPLICAS = [Signer.generate(f"r{i}") for i in range(4)]
KEYS = Verifier({s.node_id: s.public_key for s in REPLICAS})


def _reply(signer: Signer, client: str, ts: int, result: bytes, seq: int) -> pb.PBFTMessage:
    body = pb.Reply(client_id=client, timestamp=ts, result=result, view=2)
    return sign_envelope(signer, pb.REPLY, 2, seq, reply_digest(client, ts, result),
                         body.SerializeToString(deterministic=True))


def _take(client: PBFTClient, answer: pb.SubmitRequestResponse) -> bytes | None:
    return client.on_answer(answer.node_id, answer.sequence, answer.signature,
                            answered_reply(answer))


def test_a_reply_survives_the_submit_answer_and_counts_once_per_replica():
    client = PBFTClient(Signer.generate("c0"), [s.node_id for s in REPLICAS], KEYS,
                        first_timestamp=77)
    client.request(b"op", 0.0)
    first = to_response(_reply(REPLICAS[0], "c0", 77, b"res", 9))
    assert _take(client, first) is None
    assert _take(client, first) is None  # the same replica twice is not f+1
    assert client.drops["duplicate"] == 1
    second = to_response(_reply(REPLICAS[1], "c0", 77, b"res", 9))
    assert _take(client, second) == b"res"


def test_a_tampered_or_refused_answer_is_not_a_reply():
    client = PBFTClient(Signer.generate("c0"), [s.node_id for s in REPLICAS], KEYS,
                        first_timestamp=5)
    client.request(b"op", 0.0)
    for signer in REPLICAS[:2]:
        answer = to_response(_reply(signer, "c0", 5, b"res", 3))
        answer.sequence = 4  # not what the replica signed
        assert _take(client, answer) is None
    assert client.drops["bad_signature"] == 2
    with pytest.raises(DecodeError):
        answered_reply(pb.SubmitRequestResponse(accepted=False, error="stale_request"))


def test_kv_payloads_from_the_command_line():
    assert parse_operation(("set", "k", "two words")) == encode_set(b"k", b"two words")
    assert parse_operation(("set k v",)) == encode_set(b"k", b"v")
    assert parse_operation(("get", "k")) == encode_get(b"k")
    assert parse_operation(("delete", "k")) == encode_delete(b"k")
    for bad in ((), ("get",), ("put", "k", "v"), ("get", "a", "b")):
        with pytest.raises(click.UsageError):
            parse_operation(bad)


def test_cluster_file_carries_clients_transport_and_engine_parameters(tmp_path):
    init_cluster(tmp_path, 4, "127.0.0.1", 7100, 5, clients=3, transport="tcp",
                 pbft={"view_change_timeout": 1.5})
    config = ClusterConfig.load(tmp_path / "cluster.toml")
    assert [c.id for c in config.clients] == ["client0", "client1", "client2"]
    assert config.writer_identity(2).signer().public_key == config.clients[2].public_key
    assert config.transport == "tcp"
    params = config.params()
    assert params.checkpoint_interval == 5 and params.view_change_timeout == 1.5
    with pytest.raises(ClusterConfigError):
        config.writer_identity(3)
    text = (tmp_path / "cluster.toml").read_text()
    (tmp_path / "bad.toml").write_text(text.replace("[pbft]", "[pbft]\nno_such_knob = 1"))
    with pytest.raises(ClusterConfigError):
        ClusterConfig.load(tmp_path / "bad.toml")
    (tmp_path / "odd.toml").write_text(text.replace("checkpoint_interval = 5",
                                                    "checkpoint_interval = 7"))
    assert ClusterConfig.load(tmp_path / "odd.toml").params().log_window == 14


def test_cluster_commands_have_help():
    for command in ("start", "submit", "health", "blocks", "init", "add", "status", "alloc",
                    "recover"):
        proc = subprocess.run([sys.executable, "-m", "blockmesh.cli", "cluster", command,
                               "--help"], capture_output=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert b"--json" in proc.stdout or command == "start"


def cluster_cli(*args: str) -> tuple[subprocess.CompletedProcess[bytes], float]:
    began = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "blockmesh.cli", "cluster", *args],
                          capture_output=True, timeout=120)
    return proc, time.monotonic() - began


def one_error_line(proc: subprocess.CompletedProcess[bytes]) -> str:
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    return lines[0]


ADDRESSES = [f"node{k} at 127.0.0.1:{k + 1}" for k in range(4)]


def test_health_of_a_cluster_that_is_down_marks_every_replica_and_fails(tmp_path):
    init_cluster(tmp_path, 4, "127.0.0.1", 1, clients=1)  # ports 1-4: nothing listens there
    proc, _ = cluster_cli("health", "--cluster", str(tmp_path / "cluster.toml"), "--json")
    rows = json.loads(proc.stdout)["replicas"]
    assert rows == [{"node": f"node{k}", "error": "unreachable"} for k in range(4)]
    line = one_error_line(proc)
    assert "no replica answered" in line and all(a in line for a in ADDRESSES)


@pytest.mark.parametrize("transport", ["grpc", "tcp"])
def test_submit_to_a_cluster_that_is_down_fails_without_waiting_for_replies(tmp_path, transport):
    init_cluster(tmp_path, 4, "127.0.0.1", 1, clients=1, transport=transport)
    cluster = str(tmp_path / "cluster.toml")
    for args in (("set", "k", "v"), ("--count", "50", "--clients", "1")):
        # The reply timeout is 60 s; only the dial (refused at once here) may be waited for.
        proc, took = cluster_cli("submit", "--cluster", cluster, "--timeout", "60", *args)
        line = one_error_line(proc)
        # It fails as soon as f+1 replies became impossible: n - f = 3 refused dials.
        assert "3 of 4 replicas refuse connections" in line, line
        assert sum(a in line for a in ADDRESSES) == 3, line
        assert took < 45, f"{args} took {took:.1f} s"


@pytest.mark.parametrize("transport", ["grpc", "tcp"])
def test_replicas_that_accept_but_never_answer_are_waited_for_until_the_deadline(tmp_path,
                                                                                 transport):
    """Connections land in the listen backlog and are never served: that may be a replica
    starved of CPU, so the dials are retried, and the request fails at its own deadline,
    not at the first dial timeout (a refused dial, by contrast, fails at once: above)."""
    base = free_base_port()
    silent = [socket.create_server(("127.0.0.1", base + k)) for k in range(4)]
    try:
        config = init_cluster(tmp_path, 4, "127.0.0.1", base, clients=1, transport=transport)
        dial = TransportConfig(dial_timeout=0.5, rpc_timeout=5.0, request_timeout=60.0)

        async def submit() -> None:
            async with ClusterClient(config, config=dial) as cc:
                await cc.session(0).execute(encode_set(b"k", b"v"), timeout=3.0)

        began = time.monotonic()
        with pytest.raises(RequestFailed, match="no f\\+1 matching replies within 3 s"):
            asyncio.run(asyncio.wait_for(submit(), 30))
        assert 2.5 < time.monotonic() - began < 30
    finally:
        for sock in silent:
            sock.close()


class _AnsweringReplica:
    """Stands in for a ReplicaClient: answers every request on the next loop turn with its
    replica's batch-signed REPLY, result b"ok"."""

    def __init__(self, signer: Signer) -> None:
        self._signer = signer

    def submit_then(self, request: pb.PBFTMessage, wire: bytes,
                    answered: Callable[[pb.SubmitRequestResponse], None]) -> asyncio.Future:
        req = pb.Request.FromString(request.payload)
        [(envelope, body)] = sign_batch_replies(self._signer, 0, 1,
                                                [(req.client_id, req.timestamp, b"ok")])
        call = asyncio.get_running_loop().create_future()
        call.add_done_callback(lambda done: None if done.cancelled() else answered(done.result()))
        asyncio.get_running_loop().call_soon(_settle, call, to_response(envelope, body))
        return call

    async def close(self) -> None:
        pass


def _settle(call: asyncio.Future, answer: pb.SubmitRequestResponse) -> None:
    if not call.done():
        call.set_result(answer)


def test_a_finished_request_is_freed_without_the_garbage_collector(tmp_path):
    """Reference cycles made per request (closures calling each other did) keep its futures,
    messages and callbacks alive until a collection walks them: a load generator's CPU."""
    config = init_cluster(tmp_path, 4, "127.0.0.1", 1, clients=1, transport="tcp")
    signers = [NodeConfig.load(tmp_path / f"node{k}.toml").signer() for k in range(4)]

    async def cyclic_garbage() -> int:
        async with ClusterClient(config) as cc:
            cc.replicas = {s.node_id: _AnsweringReplica(s) for s in signers}  # type: ignore[misc]
            session = cc.session(0)
            assert await session.execute(encode_set(b"k", b"v"), 5.0) == b"ok"
            gc.collect()
            gc.disable()
            try:
                for _ in range(3):
                    assert await session.execute(encode_set(b"k", b"v"), 5.0) == b"ok"
                await asyncio.sleep(0.01)  # the late answers' callbacks run
                return gc.collect()
            finally:
                gc.enable()

    assert asyncio.run(cyclic_garbage()) == 0
