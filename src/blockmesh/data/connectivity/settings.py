"""Edits of the repo's connectivity lists in config.toml, one definition for the CLI (offline)
and the daemon (at run time): the bootstrap list, the peering list and the filter rules.

Edits work on the file's raw TOML tables, so sections this module does not know (other
features' settings) are written back untouched; the result is checked by loading it as a
`Config` before it replaces the file (a temporary file and a rename, under an flock so two
editors never lose each other's change).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import multiaddr
import tomli_w

from blockmesh.data.connectivity.filters import Filters
from blockmesh.data.store.config import Config, ConfigError
from blockmesh.data.store.repo import CONFIG_FILE
from blockmesh.errors import DecodeError, NotFound

#: kubo's default bootstrap peers (its config/bootstrap_peers.go): written only by
#: `bootstrap add --default`, never used by any default, test or demo of this project.
KUBO_BOOTSTRAP_PEERS = (
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmQCU2EcMqAqQPR2i9bChDtGNJchTbq5TbXJJ16u19uLTa",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmbLHAnMoJPWSCR5Zhtx6BHJX9KiKNN6tpvbUcqanj75Nb",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmcZf59bWwK5XFi76CZX8cbJ4BhTzzA3gU1ZjYZcYW3dwt",
    "/ip4/104.131.131.82/tcp/4001/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ",
    "/ip4/104.131.131.82/udp/4001/quic-v1/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ",
)
MAX_LIST = 1024
_LOCK_FILE = "config.lock"


class PeerAddrError(DecodeError):
    """A bootstrap or peering entry that is not a multiaddr ending in /p2p/<peer id>."""


def check_peer_addr(text: str) -> str:
    """A bootstrap or peering entry must name the peer it reaches (`…/p2p/<peer id>`); the
    multiaddr library checks the id is a multihash. Returns the canonical text."""
    if not isinstance(text, str) or len(text) > 1024:
        raise PeerAddrError("a peer address is a multiaddr string of at most 1024 characters")
    try:
        addr = multiaddr.Multiaddr(text)
        last = list(addr.protocols())[-1].name
    except Exception as exc:  # the library raises many types for bad input
        raise PeerAddrError(f"invalid multiaddr {text!r}: {exc}") from None
    if last not in ("p2p", "ipfs") or len(list(addr.protocols())) < 2:
        raise PeerAddrError(f"{text!r} must be a transport address ending in /p2p/<peer id>")
    return str(addr)


def peer_of(addr: str) -> str:
    """The peer id at the end of a checked peer address."""
    return addr.rstrip("/").rsplit("/", 1)[-1]


@contextlib.contextmanager
def _locked(repo: Path) -> Iterator[None]:
    with open(repo / _LOCK_FILE, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def edit(repo: Path, change: Callable[[dict[str, Any]], None]) -> Config:
    """Apply `change` to the raw TOML tables of the repo's config; returns the new Config."""
    path = repo / CONFIG_FILE
    with _locked(repo):
        try:
            raw = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from None
        change(raw)
        tmp = path.with_name(f".{CONFIG_FILE}.{os.getpid()}.tmp")
        try:
            tmp.write_text(tomli_w.dumps(raw))
            config = Config.load(tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return config


def _list_editor(section: str, key: str, adds: list[str], removes: list[str],
                 clear: bool) -> Callable[[dict[str, Any]], None]:
    def change(raw: dict[str, Any]) -> None:
        table = raw.setdefault(section, {})
        current = [] if clear else list(table.get(key, []))
        current = [x for x in current if x not in removes]
        for item in adds:
            if item not in current:
                current.append(item)
        if len(current) > MAX_LIST:
            raise ConfigError(f"{section}.{key} may hold at most {MAX_LIST} entries")
        table[key] = current
    return change


# -- bootstrap ---------------------------------------------------------------------------------
def bootstrap_add(repo: Path, addrs: list[str], *, default: bool = False) -> list[str]:
    """Add peers to the bootstrap list (with `default`, kubo's public list); what was added."""
    added = [check_peer_addr(a) for a in addrs] + (list(KUBO_BOOTSTRAP_PEERS) if default else [])
    if not added:
        raise PeerAddrError("name at least one MADDR, or pass --default")
    edit(repo, _list_editor("bootstrap", "peers", added, [], False))
    return added


def bootstrap_rm(repo: Path, addrs: list[str], *, all_: bool = False) -> list[str]:
    """Remove peers (or, with `all_`, every one) from the bootstrap list; what was removed."""
    before = Config.load(repo / CONFIG_FILE).bootstrap.peers
    if all_:
        removed = list(before)
        edit(repo, _list_editor("bootstrap", "peers", [], [], True))
        return removed
    if not addrs:
        raise PeerAddrError("name at least one MADDR, or pass --all")
    wanted = [check_peer_addr(a) for a in addrs]
    missing = [a for a in wanted if a not in before]
    if missing:
        raise NotFound(f"not in the bootstrap list: {', '.join(missing)}")
    edit(repo, _list_editor("bootstrap", "peers", [], wanted, False))
    return wanted


# -- peering -----------------------------------------------------------------------------------
def peering_add(repo: Path, addrs: list[str]) -> list[str]:
    added = [check_peer_addr(a) for a in addrs]
    edit(repo, _list_editor("peering", "peers", added, [], False))
    return added


def peering_rm(repo: Path, peers: list[str]) -> list[str]:
    """Remove every peering entry of the given peer ids (or full addresses)."""
    before = Config.load(repo / CONFIG_FILE).peering.peers
    ids = {peer_of(p) if p.startswith("/") else p for p in peers}
    removed = [a for a in before if peer_of(a) in ids]
    unknown = ids - {peer_of(a) for a in removed}
    if unknown:
        raise NotFound(f"not a peering peer: {', '.join(sorted(unknown))}")
    edit(repo, _list_editor("peering", "peers", [], removed, False))
    return removed


# -- filters -----------------------------------------------------------------------------------
def filters_save(repo: Path, filters: Filters) -> None:
    deny, allow = filters.lists()

    def change(raw: dict[str, Any]) -> None:
        raw["filters"] = {**raw.get("filters", {}), "deny": deny, "allow": allow}

    edit(repo, change)


def load(repo: Path) -> Config:
    """The repo's config as it is on disk now (edited by the CLI or another request)."""
    return Config.load(repo / CONFIG_FILE)
