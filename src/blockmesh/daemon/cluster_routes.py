"""The control API's cluster routes, served by a member daemon (`cluster …` commands).

Changes (pin add/rm/update, recover, add) are ordered through PBFT and answered once f+1
replicas executed them; reads (pin ls, status, alloc, peers) come from this member's own copy of
the committed pinset, which is what IPFS Cluster's `pin ls` and `status` do as well. A user who
does not trust this member reads with `verified`: the query itself is then ordered, and the
answer is what f+1 replicas agreed on.
"""

from __future__ import annotations

import datetime
from typing import Any

import trio

from blockmesh.control.pinset import PinsetApp
from blockmesh.control.proto import pinset_pb2 as pb
from blockmesh.daemon import fields
from blockmesh.daemon.http import HttpError, JsonReply, Reply
from blockmesh.daemon.imports import import_options
from blockmesh.daemon.member import Member
from blockmesh.data.cid import CID
from blockmesh.errors import DecodeError, Forbidden, NotFound

#: How long a change waits for this member's own replica to have executed it, so that the
#: answer (allocations) and the next read here already show it.
LOCAL_CATCH_UP = 5.0
MAX_EXPIRE_IN = 10 * 365 * 86400
STATE_NAMES = {pb.QUEUED: "queued", pb.PINNING: "pinning", pb.PINNED: "pinned",
               pb.PIN_ERROR: "pin_error", pb.UNPINNED: "unpinned"}


class ClusterApi:
    def __init__(self, member: Member) -> None:
        self.member = member
        self.routes = {
            "cluster/add": self.add,
            "cluster/pin/add": self.pin_add,
            "cluster/pin/rm": self.pin_rm,
            "cluster/pin/update": self.pin_update,
            "cluster/pin/ls": self.pin_ls,
            "cluster/status": self.status,
            "cluster/alloc": self.alloc,
            "cluster/recover": self.recover,
            "cluster/peers": self.peers,
        }

    # ------------------------------------------------------------------ changes

    async def add(self, body: dict[str, Any]) -> Reply:
        paths = fields.absolute_list(body, "paths")
        if len(paths) != 1:
            raise HttpError(400, "cluster add takes one path")
        node = self.member.node
        opts = import_options(node.repo.config.imports,
                              cid_version=fields.optional_int(body, "cid_version"),
                              raw_leaves=fields.optional_flag(body, "raw_leaves"),
                              chunker=fields.text(body, "chunker", required=False))
        added = node.add_path(paths[0], opts, recursive=fields.flag(body, "recursive"))
        root = added[-1]
        await self._change(pb.Operation(pin_add=self._pin_spec(body, root.cid, root.size)))
        return JsonReply({"added": [{"Name": a.path, "Hash": str(a.cid), "Size": a.size}
                                    for a in added], **await self._placed(root.cid)})

    async def pin_add(self, body: dict[str, Any]) -> Reply:
        cid = fields.cid(body)
        await self._change(pb.Operation(pin_add=self._pin_spec(body, cid, 0)))
        return JsonReply(await self._placed(cid))

    async def pin_rm(self, body: dict[str, Any]) -> Reply:
        cid = fields.cid(body)
        await self._change(pb.Operation(pin_remove=pb.PinRemove(cid=bytes(cid))))
        await self._caught_up(lambda app: app.view(cid) is None)
        return JsonReply({"cid": str(cid), "removed": True})

    async def pin_update(self, body: dict[str, Any]) -> Reply:
        old, new = fields.cid(body, "from"), fields.cid(body, "to")
        await self._change(pb.Operation(pin_update=pb.PinUpdate(from_cid=bytes(old),
                                                                to_cid=bytes(new))))
        return JsonReply(await self._placed(new))

    async def recover(self, body: dict[str, Any]) -> Reply:
        cid = fields.cid(body)
        await self._change(pb.Operation(recover=pb.Recover(cid=bytes(cid))))
        return JsonReply(await self._placed(cid))

    def _pin_spec(self, body: dict[str, Any], cid: CID, size: int) -> pb.PinAdd:
        expire_in = fields.optional_int(body, "expire_in") or 0
        if not 0 <= expire_in <= MAX_EXPIRE_IN:
            raise HttpError(400, "expire_in must be 0 to ten years of seconds")
        name = (fields.text(body, "name", required=False) or "") if body.get("name") else ""
        rmin = fields.optional_int(body, "replication_min") or 0
        rmax = fields.optional_int(body, "replication_max") or 0
        if not (-1 <= rmin <= 1 << 16 and -1 <= rmax <= 1 << 16):
            raise HttpError(400, "replication factors must be -1 or 0 to 65536")
        return pb.PinAdd(cid=bytes(cid), replication_min=rmin, replication_max=rmax, name=name,
                         expire_in_ms=expire_in * 1000, size=size)

    async def _change(self, operation: pb.Operation) -> None:
        result = await self.member.submit(operation)
        if result.code == pb.Result.OK:
            return
        if result.code == pb.Result.NOT_FOUND:
            raise NotFound(result.message)
        if result.code == pb.Result.FORBIDDEN:
            raise Forbidden(result.message)
        raise DecodeError(result.message)

    async def _caught_up(self, done: Any) -> None:
        with trio.move_on_after(LOCAL_CATCH_UP):
            while not self.member.pinset.read(done):
                await trio.sleep(0.02)

    async def _placed(self, cid: CID) -> dict[str, Any]:
        await self._caught_up(lambda app: app.view(cid) is not None)
        return self._status_of(cid)

    # ------------------------------------------------------------------ reads

    async def pin_ls(self, body: dict[str, Any]) -> Reply:
        views = await self._views(body, None)
        return JsonReply([{"cid": str(CID.decode(v.cid)), "name": v.name,
                           "replication_min": v.replication_min,
                           "replication_max": v.replication_max,
                           "allocations": list(v.allocations),
                           "expire_at": _time(v.expire_at_ms) if v.expire_at_ms else None}
                          for v in views])

    async def status(self, body: dict[str, Any]) -> Reply:
        cid = fields.cid(body) if body.get("cid") is not None else None
        views = await self._views(body, cid)
        statuses = [self._render(v) for v in views]
        return JsonReply(statuses[0] if cid is not None else statuses)

    async def alloc(self, body: dict[str, Any]) -> Reply:
        cid = fields.cid(body)
        views = await self._views(body, cid)
        return JsonReply({"cid": str(cid), "allocations": list(views[0].allocations)})

    async def peers(self, body: dict[str, Any]) -> Reply:
        member = self.member
        connected = set(member.node.host.peers())
        down, clock_ms = member.pinset.read(lambda app: (app.down_members(), app.now_ms))
        replica = member.replica
        view = primary = height = None
        if replica is not None:
            status = await member.control.call(_engine_status(replica))
            view, primary, height = status.view, status.primary, status.height
        rows = []
        for node in member.cluster.nodes:
            rows.append({"node": node.id, "peer_id": node.peer_id, "swarm": node.swarm,
                         "replica": node.address, "self": node.id == member.id,
                         "connected": node.id == member.id or node.peer_id in connected,
                         "down": node.id in down})
        return JsonReply({"members": rows, "view": view, "primary": primary, "height": height,
                          "cluster_clock": _time(clock_ms) if clock_ms else None})

    async def _views(self, body: dict[str, Any], cid: CID | None) -> list[pb.PinView]:
        """Pins from the local copy, or (`verified`) from an ordered query: f+1 agreed."""
        if fields.flag(body, "verified"):
            raw = bytes(cid) if cid is not None else b""
            result = await self.member.submit(pb.Operation(query=pb.Query(cid=raw)))
            if result.code == pb.Result.NOT_FOUND:
                raise NotFound(result.message)
            return list(result.pins)
        if cid is None:
            return self.member.pinset.read(PinsetApp.pins)
        view = self.member.pinset.read(lambda app: app.view(cid))
        if view is None:
            raise NotFound(f"{cid} is not pinned in the cluster")
        return [view]

    def _status_of(self, cid: CID) -> dict[str, Any]:
        view = self.member.pinset.read(lambda app: app.view(cid))
        if view is None:
            raise NotFound(f"{cid} is not pinned in the cluster (yet, on {self.member.id})")
        return self._render(view)

    def _render(self, view: pb.PinView) -> dict[str, Any]:
        """IPFS Cluster's status shape: one entry per member, "remote" where not allocated."""
        reported = {m.member: m for m in view.members}
        down = self.member.pinset.read(PinsetApp.down_members)
        members = []
        for node in self.member.cluster.nodes:
            entry: dict[str, Any] = {"node": node.id, "peer_id": node.peer_id,
                                     "down": node.id in down}
            status = reported.get(node.id)
            if node.id not in view.allocations:
                entry.update(status="remote", since=None, error="")
            elif status is None:
                entry.update(status="queued", since=None, error="")
            else:
                entry.update(status=STATE_NAMES.get(status.state, "queued"),
                             since=_time(status.since_ms), error=status.error)
            members.append(entry)
        return {"cid": str(CID.decode(view.cid)), "name": view.name,
                "allocations": list(view.allocations), "members": members}


async def _engine_status(replica: Any) -> Any:
    return replica.engine.status()


def _time(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")
