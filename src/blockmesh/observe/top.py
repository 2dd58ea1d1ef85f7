"""`blockmesh top`: the dashboard's snapshot drawn in the terminal with rich.

`render` is a pure function of one snapshot (the daemon's `observe/snapshot` route), so a frame
printed by `--once` is exactly what the live view shows.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

SPARK = " ▁▂▃▄▅▆▇█"
SPARK_WIDTH = 60
WIDE = 140


def human_bytes(n: float | None) -> str:
    if n is None:
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _count(n: int | None) -> str:
    return "–" if n is None else f"{n:,}"


def sparkline(values: list[float], width: int = SPARK_WIDTH) -> str:
    values = values[-width:]
    peak = max(values, default=0.0)
    if peak <= 0:
        return SPARK[1] * len(values)
    return "".join(SPARK[min(len(SPARK) - 1, 1 + int(v / peak * (len(SPARK) - 2)))]
                   for v in values)


def short_id(peer: str) -> str:
    return f"{peer[:8]}…{peer[-6:]}" if len(peer) > 16 else peer


def render(snap: dict[str, Any], width: int = 200) -> RenderableType:
    """One frame; below WIDE columns peer ids are shortened and addresses left out."""
    wide = width >= WIDE
    bs, store = snap["bitswap"], snap["store"]
    head = Text.assemble(("blockmesh ", "bold"), snap["node"]["id"], "  ",
                         (f"up {snap['uptime']:.0f} s", "dim"))

    samples = snap["bandwidth"]
    sent = [s["sent"] for s in samples]
    received = [s["received"] for s in samples]
    bandwidth = Table.grid(padding=(0, 1))
    bandwidth.add_row("↑ sent", Text(sparkline(sent), "yellow"),
                      f"{human_bytes(sent[-1] if sent else 0)}/s")
    bandwidth.add_row("↓ recv", Text(sparkline(received), "cyan"),
                      f"{human_bytes(received[-1] if received else 0)}/s")

    counters = Table.grid(padding=(0, 2))
    counters.add_row("blocks received", _count(bs["blocks_received"]),
                     "bytes received", human_bytes(bs["bytes_received"]))
    counters.add_row("blocks sent", _count(bs["blocks_sent"]),
                     "bytes sent", human_bytes(bs["bytes_sent"]))
    counters.add_row("duplicates", _count(bs["dup_blocks_received"]),
                     "sessions", _count(bs["sessions"]))
    counters.add_row("decision queue", _count(bs["queued_tasks"]),
                     "our wantlist", _count(bs["wantlist_size"]))
    counters.add_row("store blocks", _count(store["blocks"]),
                     "store size", human_bytes(store["bytes"]))
    counters.add_row("pins", _count(store["pin_count"]),
                     "puts / gets", f"{store['ops']['put']:,} / {store['ops']['get']:,}")

    peers = Table(title=f"peers ({len(snap['peers'])})", expand=True, title_justify="left")
    columns = ("peer", "address", "group", "latency", "sent", "received", "wants")
    for column in columns if wide else tuple(c for c in columns if c != "address"):
        peers.add_column(column, no_wrap=column in ("peer", "latency", "sent", "received"),
                         justify="right" if column in ("latency", "sent", "received", "wants")
                         else "left")
    for peer in snap["peers"]:
        ledger = peer["ledger"] or {}
        latency = peer["latency_ms"]
        cells = [peer["id"], peer["address"]] if wide else [short_id(peer["id"])]
        peers.add_row(*cells, peer["group"],
                      "–" if latency is None else f"{latency:.1f} ms",
                      human_bytes(ledger.get("bytes_sent")),
                      human_bytes(ledger.get("bytes_received")), _count(ledger.get("wants")))

    parts: list[RenderableType] = [head, Panel(bandwidth, title="bandwidth"),
                                   Panel(counters, title="bitswap and blockstore"), peers]
    cluster = snap.get("cluster")
    if cluster:
        parts.append(_cluster(cluster))
    return Group(*parts)


def _cluster(cluster: dict[str, Any]) -> RenderableType:
    info = Text.assemble(
        ("cluster ", "bold"), cluster["id"],
        f"  view {cluster['view']}  primary {cluster['primary']}  height {cluster['height']}"
        f"  stable checkpoint {cluster['stable_checkpoint']}  pins {cluster['pin_count']}")
    pins = Table(expand=True)
    pins.add_column("cid", no_wrap=True)
    pins.add_column("name")
    pins.add_column("status by member")
    for pin in cluster["pins"][:20]:
        pins.add_row(pin["cid"], pin["name"],
                     " ".join(f"{m['node']}:{m['status']}" for m in pin["members"]))
    return Group(info, pins)
