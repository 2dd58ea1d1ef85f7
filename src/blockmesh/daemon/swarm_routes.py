"""Routes for staying connected: `bootstrap`, `swarm filters`, `swarm peering`, `status`.

Each edit is made once, in `data/connectivity/settings.py`, on the repo's config file, and
then applied to the running node: the bootstrap list is replaced, filters take effect at once
(connections they now deny are closed), peering peers are dialled or let go. `bootstrap` also
runs without a daemon, on the config alone (the CLI calls `settings` directly then).
"""

from __future__ import annotations

from typing import Any

from blockmesh.daemon import fields
from blockmesh.daemon.dispatch import Routes
from blockmesh.daemon.http import HttpError, JsonReply, Reply
from blockmesh.data.connectivity import settings
from blockmesh.data.connectivity.filters import Rule, parse_rule
from blockmesh.data.connectivity.service import PEERING_TAG
from blockmesh.data.net import parse_peer_id
from blockmesh.data.node import Node


def _texts(body: dict[str, Any], key: str, *, required: bool = True) -> list[str]:
    value = body.get(key, [])
    if (not isinstance(value, list) or len(value) > fields.MAX_LIST
            or not all(isinstance(v, str) and 0 < len(v) <= fields.MAX_TEXT for v in value)):
        raise HttpError(400, f"field {key!r} must be a list of strings")
    if required and not value:
        raise HttpError(400, f"field {key!r} must name at least one entry")
    return value


def canonical_rule(text: str) -> str:
    """A filter rule in canonical form; a peer rule's id is checked as a real peer id."""
    rule = parse_rule(text)
    return rule.text if rule.peer is None else f"/p2p/{parse_peer_id(rule.peer)}"


class ConnectivityApi(Routes):
    def __init__(self, node: Node) -> None:
        super().__init__()
        self.node = node
        self.repo = node.repo.path
        self.routes.update({
            "bootstrap/list": self.bootstrap_list,
            "bootstrap/add": self.bootstrap_add,
            "bootstrap/rm": self.bootstrap_rm,
            "swarm/filters/ls": self.filters_ls,
            "swarm/filters/add": self.filters_add,
            "swarm/filters/rm": self.filters_rm,
            "swarm/peering/ls": self.peering_ls,
            "swarm/peering/add": self.peering_add,
            "swarm/peering/rm": self.peering_rm,
            "status": self.status_,
        })

    # -- bootstrap -------------------------------------------------------------------------------
    def _bootstrap_now(self) -> list[str]:
        peers = settings.load(self.repo).bootstrap.peers
        self.node.connectivity.set_bootstrap(peers)
        return peers

    async def bootstrap_list(self, body: dict[str, Any]) -> Reply:
        return JsonReply({"Peers": settings.load(self.repo).bootstrap.peers})

    async def bootstrap_add(self, body: dict[str, Any]) -> Reply:
        added = settings.bootstrap_add(self.repo, _texts(body, "addrs", required=False),
                                       default=fields.flag(body, "default"))
        self._bootstrap_now()
        return JsonReply({"Peers": added})

    async def bootstrap_rm(self, body: dict[str, Any]) -> Reply:
        removed = settings.bootstrap_rm(self.repo, _texts(body, "addrs", required=False),
                                        all_=fields.flag(body, "all"))
        self._bootstrap_now()
        return JsonReply({"Peers": removed})

    # -- filters ---------------------------------------------------------------------------------
    def _filter_lists(self) -> dict[str, Any]:
        deny, allow = self.node.host.filters.lists()
        return {"Strings": deny, "Allow": allow}

    async def filters_ls(self, body: dict[str, Any]) -> Reply:
        return JsonReply(self._filter_lists())

    def _save_or_roll_back(self, before: tuple[list[Rule], list[Rule]]) -> None:
        """Write the live rules to the config; if that fails, the live rules go back to
        `before`, so the running node never enforces what the config does not say."""
        filters = self.node.host.filters
        try:
            settings.filters_save(self.repo, filters)
        except BaseException:
            filters.restore(before)
            raise

    async def filters_add(self, body: dict[str, Any]) -> Reply:
        """All or nothing: every rule is checked (syntax, peer ids, room under the cap)
        before any takes effect, and a failed config write takes them all back."""
        rules = [canonical_rule(t) for t in _texts(body, "filters")]
        allow = fields.flag(body, "allow")
        filters = self.node.host.filters
        before = filters.state()
        filters.add_all(rules, allow=allow)
        self._save_or_roll_back(before)
        closed = await self.node.host.close_filtered()
        return JsonReply({"Strings": rules, "Closed": closed})

    async def filters_rm(self, body: dict[str, Any]) -> Reply:
        allow = fields.flag(body, "allow")
        filters = self.node.host.filters
        if fields.flag(body, "all"):
            rules = [r.text for r in (filters.allow if allow else filters.deny)]
        else:
            rules = [canonical_rule(t) for t in _texts(body, "filters")]
            missing = [r for r in rules if r not in filters.lists()[1 if allow else 0]]
            if missing:
                raise HttpError(404, f"no such filter: {', '.join(missing)}")
        before = filters.state()
        for rule in rules:
            filters.remove(rule, allow=allow)
        self._save_or_roll_back(before)
        # Removing an allow rule can deny what it admitted.
        closed = await self.node.host.close_filtered() if allow else []
        return JsonReply({"Strings": rules, "Closed": closed})

    # -- peering ---------------------------------------------------------------------------------
    async def peering_ls(self, body: dict[str, Any]) -> Reply:
        return JsonReply({"Peers": self.node.connectivity.peering()})

    async def peering_add(self, body: dict[str, Any]) -> Reply:
        addrs = settings.peering_add(self.repo, _texts(body, "addrs"))
        peers = [self.node.connectivity.keep(PEERING_TAG, a) for a in addrs]
        return JsonReply({"Peers": peers})

    async def peering_rm(self, body: dict[str, Any]) -> Reply:
        wanted = [t if t.startswith("/") else parse_peer_id(t) for t in _texts(body, "peers")]
        removed = settings.peering_rm(self.repo, wanted)
        peers = sorted({settings.peer_of(a) for a in removed})
        for peer in peers:
            self.node.connectivity.forget(PEERING_TAG, peer)
        return JsonReply({"Peers": peers})

    # -- health ----------------------------------------------------------------------------------
    async def status_(self, body: dict[str, Any]) -> Reply:
        return JsonReply({"ID": self.node.peer_id, "Online": True, **self.node.health()})
