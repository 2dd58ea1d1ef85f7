"""Talking to a running cluster from outside: submit requests, read status and blocks.

A `ClusterClient` holds one connection per replica, shared by any number of `ClientSession`s.
A session is one client identity with one request in flight (PBFT's client model): it sends
the signed request to every replica, because backups must see it too to suspect a silent
primary, and accepts the result once f+1 replicas sent matching signed replies.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Iterable
from typing import Any

from blockmesh.control.cluster.config import ClusterConfig
from blockmesh.control.cluster.identity import ClientIdentity
from blockmesh.control.cluster.replies import answered_reply
from blockmesh.control.consensus import PBFTClient
from blockmesh.control.consensus.authenticators import Pairing, PairKeys
from blockmesh.control.consensus.messages import ReplyVerifier
from blockmesh.control.keys import Verifier
from blockmesh.control.proto import pbft_pb2 as pb
from blockmesh.control.transport import (
    PeerError,
    ReplicaClient,
    TransportConfig,
    TransportError,
)
from blockmesh.errors import BlockmeshError, DecodeError

#: Client-side limits: a dead replica refuses the dial at once (and a request gives up when
#: f+1 do); a dial that times out is retried until the request's own deadline, since it may be
#: a live replica starved of CPU. Such a replica needs several of its time slices for the TCP,
#: TLS and Ed25519 handshakes, hence a dial may take 10 s (a refused one costs nothing). A live
#: replica may take long to answer (during a view change the request waits for the new primary).
CLIENT_TRANSPORT = TransportConfig(dial_timeout=10.0, rpc_timeout=10.0, request_timeout=60.0)
#: After a replica fails to take a request, leave it alone this long.
RETRY_DELAY = 1.0
#: Refusals that another attempt cannot change.
_PERMANENT = {"stale_request", "bad_client_signature", "unknown_client", "unknown_sender",
              "malformed", "too_large", "forbidden", "unsigned_request"}


class RequestFailed(BlockmeshError):
    """The cluster did not give f+1 matching replies in time (or refused the request)."""


class ClusterUnreachable(RequestFailed):
    """Too few replicas can be dialled for any answer to come: said at once, not after the
    whole request timeout."""


def unreachable_error(cluster: ClusterConfig, nodes: Iterable[str], why: str) -> ClusterUnreachable:
    """One line naming every replica in `nodes` by id and address."""
    named = ", ".join(f"{n} at {cluster.node(n).address}" for n in sorted(nodes))
    return ClusterUnreachable(f"cannot reach the cluster: {why}: {named}")


def first_timestamp() -> int:
    """Microseconds since the epoch: later runs of the same identity start above earlier ones,
    which the replicas require (they drop a request not newer than the last executed)."""
    return time.time_ns() // 1000


class ClusterClient:
    """Connections to every replica of `cluster` over `transport` (default: the cluster's)."""

    def __init__(self, cluster: ClusterConfig, transport: str | None = None,
                 config: TransportConfig = CLIENT_TRANSPORT,
                 identity: ClientIdentity | None = None, sign_requests: bool = True) -> None:
        """`identity` is whose TLS certificate the connections present (replicas serve
        listed identities only); by default the cluster's first writer. Sessions may sign
        requests as other identities over the same connections. `sign_requests` False makes
        sessions send MAC-only requests (PBFTClient's `sign`)."""
        self.sign_requests = sign_requests
        self.cluster = cluster
        self.transport = transport or cluster.transport
        self.identity = identity or cluster.writer_identity(0)
        tls = cluster.client_tls(self.identity)
        self.replicas = {n.id: ReplicaClient(self.transport, n.address, config=config, tls=tls,
                                             peer=n.id)
                         for n in cluster.nodes}
        self._down_until: dict[str, float] = {}
        #: f+1: the matching replies a request needs (kept, not derived per request).
        self.quorum = cluster.committee.f + 1
        self.verifier = ReplyVerifier(Verifier(cluster.public_keys()))

    async def __aenter__(self) -> ClusterClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await asyncio.gather(*(r.close() for r in self.replicas.values()),
                             return_exceptions=True)

    def session(self, identity: int | ClientIdentity = 0) -> ClientSession:
        """A session signing as `identity`: a key file's identity, or the index-th writer
        of the cluster (its key file under the cluster directory)."""
        if isinstance(identity, int):
            identity = self.cluster.writer_identity(identity)
        return ClientSession(self, identity)

    def _usable(self, node: str, now: float) -> bool:
        return self._down_until.get(node, 0.0) <= now

    def _mark_down(self, node: str) -> None:
        self._down_until[node] = time.monotonic() + RETRY_DELAY

    async def status(self) -> list[dict[str, Any]]:
        """Every replica's GetStatus, in cluster order; one that does not answer is marked."""
        async def one(node: str) -> dict[str, Any]:
            try:
                s = await self.replicas[node].get_status()
            except (TransportError, TimeoutError, OSError) as exc:
                reason = getattr(exc, "reason", "unreachable")
                return {"node": node, "error": "unreachable" if reason != "bad_answer" else reason}
            return {"node": s.node_id or node, "view": s.view, "primary": s.primary,
                    "height": s.height, "head_hash": s.head_hash.hex(),
                    "stable_checkpoint": s.stable_checkpoint, "peers": list(s.peers)}

        return list(await asyncio.gather(*(one(n.id) for n in self.cluster.nodes)))

    async def blocks(self, from_height: int, limit: int,
                     node: str | None = None) -> tuple[str, pb.SyncStateResponse]:
        """Blocks from `from_height` as one replica (`node`, or the first that answers) has them."""
        order = [node] if node is not None else [n.id for n in self.cluster.nodes]
        errors = []
        for candidate in order:
            if candidate not in self.replicas:
                raise BlockmeshError(f"{candidate} is not a replica of this cluster")
            try:
                return candidate, await self.replicas[candidate].sync_state(from_height, limit)
            except (TransportError, TimeoutError) as exc:
                errors.append(str(exc))
        raise RequestFailed("no replica answered: " + "; ".join(errors))


class ClientSession:
    """One client identity (its key file) with one request in flight."""

    def __init__(self, owner: ClusterClient, identity: ClientIdentity) -> None:
        self._owner = owner
        cluster = owner.cluster
        signer = identity.signer()
        self.client_id = signer.node_id
        keys = PairKeys(signer.node_id, signer.private, cluster.public_keys(), Pairing.CLIENT)
        self._client = PBFTClient(signer, [n.id for n in cluster.nodes], owner.verifier,
                                  first_timestamp=first_timestamp(), pair_keys=keys,
                                  sign=owner.sign_requests)

    async def execute(self, operation: bytes, timeout: float = 60.0) -> bytes:
        """The operation's result once f+1 replicas agree on it."""
        try:
            async with asyncio.timeout(timeout):
                return await self._execute(operation)
        except TimeoutError:
            self._client.abandon()
            raise RequestFailed(f"no f+1 matching replies within {timeout:g} s") from None
        except BaseException:
            self._client.abandon()
            raise

    async def _execute(self, operation: bytes) -> bytes:
        """Send to every usable replica and wait for f+1 matching replies (see `_Attempt`)."""
        attempt = _Attempt(self, self._client.request(operation, time.monotonic()))
        try:
            return await attempt.start()
        finally:
            attempt.stop()

    def _take(self, answer: pb.SubmitRequestResponse | BaseException, node: str,
              refusals: dict[str, str], retry: Callable[[str, float], None]) -> bytes | None:
        if isinstance(answer, (TransportError, TimeoutError, OSError)):
            self._owner._mark_down(node)
            retry(node, RETRY_DELAY)
            refusals[node] = getattr(answer, "reason", "unreachable")
            return None
        if isinstance(answer, BaseException):
            raise answer
        try:
            body = answered_reply(answer)
        except DecodeError:
            refusals[node] = answer.error or "refused"
            if answer.error not in _PERMANENT:
                retry(node, RETRY_DELAY)
            return None
        return self._client.on_answer(answer.node_id, answer.sequence, answer.signature, body)


class _Attempt:
    """One request on its way to every replica, until f+1 matching replies or failure.

    Answers are taken in the transport's callbacks, so a request costs no task wake-up per
    replica; a replica that failed or refused for a reason that may pass is asked again after
    RETRY_DELAY (a timer, only then). Once so many replicas' latest dial failed that fewer
    than f+1 are left, no reply can come: fail then, naming them.

    An object with methods rather than nested functions: closures that call each other form
    reference cycles, which outlive the request until the garbage collector runs; in the
    closed-loop load generator that was ~24 objects per request and a 24-111 ms collection
    every ~2,000 requests (docs/benchmarks.md, session 9)."""

    def __init__(self, session: ClientSession, envelope: pb.PBFTMessage) -> None:
        self._session = session
        self._owner = session._owner
        self._envelope = envelope
        self._wire = envelope.SerializeToString()
        self._loop = asyncio.get_running_loop()
        self._result: asyncio.Future[bytes] = self._loop.create_future()
        self._calls: dict[str, asyncio.Future[object]] = {}
        self._retries: dict[str, asyncio.TimerHandle] = {}
        self._refusals: dict[str, str] = {}
        self._undialled: set[str] = set()

    def start(self) -> asyncio.Future[bytes]:
        """Send to every replica not resting after a failure (those get a timer)."""
        owner = self._owner
        now = time.monotonic()
        for node in owner.replicas:
            if owner._usable(node, now):
                self._submit(node)
            else:
                self._retry(node, owner._down_until[node] - now)
        return self._result

    def stop(self) -> None:
        """Give up what is still outstanding; late answers are then dropped unread."""
        for call in self._calls.values():
            call.cancel()
        for handle in self._retries.values():
            handle.cancel()
        self._calls.clear()
        self._retries.clear()

    def _submit(self, node: str) -> None:
        self._retries.pop(node, None)
        self._calls[node] = self._owner.replicas[node].submit_then(
            self._envelope, self._wire, functools.partial(self._answered, node))

    def _retry(self, node: str, delay: float) -> None:
        self._retries[node] = self._loop.call_later(delay, self._submit, node)

    def _answered(self, node: str, answer: pb.SubmitRequestResponse | BaseException) -> None:
        self._calls.pop(node, None)
        result = self._result
        if result.done():
            return
        owner = self._owner
        undialled = self._undialled
        if isinstance(answer, PeerError) and answer.reason == "unreachable":
            undialled.add(node)
        else:
            undialled.discard(node)
        if len(owner.replicas) - len(undialled) < owner.quorum:
            result.set_exception(unreachable_error(owner.cluster, undialled, (
                f"{len(undialled)} of {len(owner.replicas)} replicas refuse connections "
                f"and f+1 = {owner.quorum} must answer")))
            return
        try:
            value = self._session._take(answer, node, self._refusals, self._retry)
        except BaseException as exc:  # a bug below the session: fail the request with it
            result.set_exception(exc)
            return
        if value is not None:
            result.set_result(value)
        elif not self._calls and not self._retries:
            result.set_exception(RequestFailed("refused: " + "; ".join(
                f"{n}: {r}" for n, r in sorted(self._refusals.items()))))
