"""Builders of pinset operations for the tests, and a four-member cluster of app instances."""

from __future__ import annotations

from blockmesh.control.pinset import PinsetApp, PinsetPolicy
from blockmesh.control.proto import pinset_pb2 as pb
from blockmesh.data.cid import CID

MEMBERS = ["node0", "node1", "node2", "node3"]
WRITER = "client0"


def cid_of(label: str) -> CID:
    return CID.of(label.encode())


def pin_add(cid: CID, rmin: int = 0, rmax: int = 0, *, name: str = "", expire_in_ms: int = 0,
            size: int = 0) -> bytes:
    return pb.Operation(pin_add=pb.PinAdd(
        cid=bytes(cid), replication_min=rmin, replication_max=rmax, name=name,
        expire_in_ms=expire_in_ms, size=size)).SerializeToString()


def pin_rm(cid: CID) -> bytes:
    return pb.Operation(pin_remove=pb.PinRemove(cid=bytes(cid))).SerializeToString()


def pin_update(old: CID, new: CID) -> bytes:
    return pb.Operation(pin_update=pb.PinUpdate(from_cid=bytes(old), to_cid=bytes(new))) \
        .SerializeToString()


def heartbeat(time_ms: int, free_space: int = 1 << 40, tags: tuple[str, ...] = ()) -> bytes:
    return pb.Operation(heartbeat=pb.Heartbeat(time_ms=time_ms, free_space=free_space,
                                               tags=tags)).SerializeToString()


def status(cid: CID, state: int, error: str = "") -> bytes:
    return pb.Operation(status=pb.StatusReport(cid=bytes(cid), state=state, error=error)) \
        .SerializeToString()


def audit(cid: CID, target: str, ok: bool) -> bytes:
    return pb.Operation(audit=pb.AuditReport(cid=bytes(cid), target=target, ok=ok)) \
        .SerializeToString()


def recover(cid: CID) -> bytes:
    return pb.Operation(recover=pb.Recover(cid=bytes(cid))).SerializeToString()


def query(cid: CID | None = None) -> bytes:
    raw = bytes(cid) if cid is not None else b""
    return pb.Operation(query=pb.Query(cid=raw)).SerializeToString()


def result(raw: bytes) -> pb.Result:
    return pb.Result.FromString(raw)


def new_app(reallocate_after_ms: int = 10_000, **policy: int) -> PinsetApp:
    return PinsetApp(MEMBERS, writers=[WRITER],
                     policy=PinsetPolicy(reallocate_after_ms=reallocate_after_ms, **policy))


def beat_all(app: PinsetApp, time_ms: int, members: list[str] | None = None) -> None:
    for member in members if members is not None else MEMBERS:
        assert result(app.execute(heartbeat(time_ms), member)).code == pb.Result.OK
