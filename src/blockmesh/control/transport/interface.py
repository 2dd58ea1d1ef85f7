"""What the replica sees of a transport: one interface, two implementations (gRPC and TCP)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Protocol

from blockmesh.control.proto import pbft_pb2 as pb
from blockmesh.control.transport.errors import PeerError

MessageHandler = Callable[[str, pb.PBFTMessage], Awaitable[None] | None]
"""Called with (authenticated sender id, message). If it returns an awaitable, the transport
awaits it before reading that peer's next message: a slow consumer slows its sender down
instead of growing a queue."""

class Responder(Protocol):
    """Where the answer to one submitted request goes. Only the first call counts."""

    @property
    def done(self) -> bool: ...

    def __call__(self, response: pb.SubmitRequestResponse) -> None: ...


RequestHandler = Callable[[pb.PBFTMessage, Responder], None]
"""Given a client's REQUEST envelope and its Responder: arrange for the answer to reach
`respond`, now or later, without blocking. A callback rather than a coroutine because a replica
takes thousands of requests a second and a task per request was a measurable share of its CPU;
the transport answers "request timed out" itself when nothing comes within request_timeout."""


class StateProvider(Protocol):
    """Where a transport finds what it serves to peers catching up (the engine, later)."""

    def blocks_from_height(self, height: int, limit: int) -> list[pb.Block]:
        """Committed blocks from `height` upwards, at most `limit` of them, in height order."""
        ...

    def checkpoints(self) -> list[pb.CheckpointCertificate]:
        """The stable checkpoints still kept, each with its 2f+1 signed proof."""
        ...

    def checkpoint(self, sequence: int) -> pb.CheckpointCertificate | None:
        """The stable checkpoint at `sequence`, if kept."""
        ...

    def status(self) -> pb.GetStatusResponse:
        """View, primary, height, head hash, stable checkpoint, view-change flag. The transport
        fills in node_id and peers itself."""
        ...


class Transport(ABC):
    """A full-mesh, authenticated message transport between the replicas of one cluster.

    Messages are opaque PBFTMessage envelopes: the transport authenticates the *connection*
    (each side proves it holds its cluster key) but leaves message signatures to the engine.
    Sending never waits on a peer: messages go to a bounded per-connection queue drained by
    that connection's own writer task, so one slow or dead peer cannot stall the others.
    """

    node_id: str

    @property
    @abstractmethod
    def address(self) -> str:
        """host:port the transport listens on (the real port once started with port 0)."""

    @abstractmethod
    async def start(self) -> None:
        """Listen, register the service and start serving."""

    @abstractmethod
    async def stop(self) -> None:
        """Close every connection, stop reconnecting and stop listening."""

    @abstractmethod
    async def add_peer(self, node_id: str, address: str) -> None:
        """Dial `node_id` at `address` (dial_timeout, handshake included) and keep it connected.

        Raises PeerError if the first attempt fails; the transport keeps redialling with
        exponential backoff and jitter in the background anyway, until stop() or
        remove_peer(). Adding a known peer again does nothing.
        """

    @abstractmethod
    async def remove_peer(self, node_id: str) -> None:
        """Forget `node_id`: stop redialling it and close its connections."""

    @abstractmethod
    async def send(self, node_id: str, msg: pb.PBFTMessage) -> None:
        """Queue `msg` for `node_id`; raises PeerError if it is unknown, down or backlogged."""

    @abstractmethod
    async def broadcast(self, msg: pb.PBFTMessage) -> list[PeerError]:
        """Queue `msg` for every peer at once; returns one PeerError per peer it cannot reach."""

    @abstractmethod
    def peers(self) -> list[str]:
        """Ids of the peers with an authenticated connection, sorted."""

    @abstractmethod
    def set_message_handler(self, handler: MessageHandler | None) -> None: ...

    @abstractmethod
    def set_request_handler(self, handler: RequestHandler | None) -> None: ...

    @abstractmethod
    def set_state_provider(self, provider: StateProvider | None) -> None: ...

    @abstractmethod
    async def sync_state(
        self, node_id: str, from_height: int, max_blocks: int = 0
    ) -> pb.SyncStateResponse:
        """Ask `node_id` for blocks from `from_height` (0 = its default count) and checkpoints."""

    @abstractmethod
    async def get_checkpoint(self, node_id: str, sequence: int) -> pb.CheckpointCertificate | None:
        """Ask `node_id` for its stable checkpoint at `sequence` (0 = its latest)."""

    @abstractmethod
    async def get_status(self, node_id: str) -> pb.GetStatusResponse: ...
