"""`stats/bw`: the host's byte counters and rates, as kubo's `stats bw` reports them."""

from __future__ import annotations

from typing import Any

import trio

from blockmesh.daemon import fields
from blockmesh.daemon.dispatch import Routes
from blockmesh.daemon.http import HttpError, JsonReply, Reply
from blockmesh.data.net import Host, parse_peer_id


class BandwidthApi(Routes):
    def __init__(self, host: Host) -> None:
        super().__init__()
        self.host = host
        self.routes["stats/bw"] = self.stats_bw

    async def stats_bw(self, body: dict[str, Any]) -> Reply:
        """Totals and rates of the whole node, of one `peer` or of one `proto` (not both)."""
        peer = fields.text(body, "peer", required=False)
        proto = fields.text(body, "proto", required=False)
        if peer is not None and proto is not None:
            raise HttpError(400, "give a peer or a protocol, not both")
        stats = self.host.bandwidth.stats(
            trio.current_time(), peer=None if peer is None else parse_peer_id(peer),
            protocol=proto)
        return JsonReply(stats.to_json())
