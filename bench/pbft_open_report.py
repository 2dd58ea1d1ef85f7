"""The table of bench/pbft_open_vs_bftsmart.sh from its output directory: blockmesh's closed
loop and open-loop sweep per transport (tcp.json, grpc.json from `blockmesh bench pbft --json`)
beside BFT-SMaRt's closed loop with as many clients (bftsmart.txt, the anchor script's output),
with ratios to BFT-SMaRt and the req/s that two cores allow at each row's CPU per request.

usage: python bench/pbft_open_report.py OUTDIR
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from blockmesh.bench.pbftbench import Row, sustains

CORES = os.cpu_count() or 1
MOONSHOT = 10_000


@dataclass
class Anchor:
    rate: int
    p50: str
    p99: str
    replicas: list[float]  # CPU ms per request, each replica
    client: float


def bftsmart(path: Path) -> Anchor | None:
    """Throughput, p50/p99 and CPU ms per request of each process, counted as ours is
    (user + system time per committed request; the anchor prints percent of one core)."""
    if not path.exists():
        return None
    text = path.read_text()
    ops = re.search(r"OPS_PER_SEC (\d+)", text)
    lat = re.search(r"latency ms: mean \S+\s+p50 (\S+)\s+p90 \S+\s+p99 (\S+)", text)
    reps = [float(x) for x in re.findall(r"replica \d: ([\d.]+)%", text)]
    cli = re.search(r"client   : ([\d.]+)%", text)
    if not ops or not int(ops.group(1)):
        return None
    rate = int(ops.group(1))
    per = 10 / rate  # percent of a core -> ms of CPU per request
    return Anchor(rate, lat.group(1) if lat else "?", lat.group(2) if lat else "?",
                  [r * per for r in reps], float(cli.group(1)) * per if cli else 0.0)


def ceiling(cpu_ms: float | None) -> str:
    return "-" if not cpu_ms else f"{CORES * 1000 / cpu_ms:,.0f}"


def ratio(value: float | None, anchor: Anchor | None) -> str:
    return "-" if value is None or anchor is None else f"{value / anchor.rate:.2f}"


def main(out: Path) -> None:
    anchor = bftsmart(out / "bftsmart.txt")
    print(f"{'cell':<34} {'offered':>8} {'req/s':>7} {'x BFT':>6} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'p50 1st/2nd half':>16} {'batch':>6} {'queued':>6} {'unfin':>6}  CPU ms/req: node0 "
          f"node1 node2 node3 replicas client total -> {CORES}-core ceiling req/s")
    for kind in ("tcp", "grpc"):
        path = out / f"{kind}.json"
        if not path.exists():
            continue
        result = json.loads(path.read_text())
        for row in result["rows"]:
            load = (f"{row['clients']} closed-loop clients" if row["mode"] == "closed"
                    else f"open, {row['clients']} identities")
            procs = row.get("cpu_ms_by_process") or {}
            each = " ".join(f"{procs.get(f'node{k}', 0):5.3f}" for k in range(4))
            total = (row["cpu_ms_replicas"] or 0) + (row["cpu_ms_client"] or 0)
            offered = "-" if row["target_rate"] is None else f"{row['target_rate']:,.0f}"
            if row["mode"] == "open":
                offered += " " if sustains(Row(**row)) else "*"
            batch = "-" if row["mean_batch"] is None else f"{row['mean_batch']:.1f}"
            drift = ("-" if row.get("p50_first_half_ms") is None else
                     f"{row['p50_first_half_ms']:.0f}/{row['p50_second_half_ms'] or 0:.0f}")
            print(f"{kind + ' ' + load:<34} {offered:>8} {row['requests_per_second']:>7,.0f} "
                  f"{ratio(row['requests_per_second'], anchor):>6} {row['p50_ms']:>7.1f} "
                  f"{row['p99_ms']:>7.1f} {drift:>16} {batch:>6} {row['queued']:>6} "
                  f"{row['unfinished']:>6}  "
                  f"{each} {row['cpu_ms_replicas'] or 0:8.3f} {row['cpu_ms_client'] or 0:6.3f} "
                  f"{total:5.3f} -> {ceiling(total)}")
        for sat in result.get("saturation", []):
            if sat["offered"] is None:
                print(f"{kind}: no open-loop step sustained (peak {sat['peak_per_second']:,.0f} "
                      f"req/s, x BFT-SMaRt {ratio(sat['peak_per_second'], anchor)})")
                continue
            print(f"{kind}: SATURATION {sat['offered']:,.0f}/s offered -> "
                  f"{sat['committed_per_second']:,.0f} req/s committed (p50 {sat['p50_ms']:.1f} "
                  f"ms, p99 {sat['p99_ms']:.1f} ms), x BFT-SMaRt 96 clients: "
                  f"{ratio(sat['committed_per_second'], anchor)}; peak of the sweep "
                  f"{sat['peak_per_second']:,.0f} req/s (x {ratio(sat['peak_per_second'], anchor)})"
                  f"; sustained = >= 95 % of offered, no failure, p99 <= "
                  f"{sat['p99_bound_ms']:g} ms, second half's p50 <= 1.5 x first half's + 20 ms "
                  "(* = not sustained)")
    if anchor is None:
        print("BFT-SMaRt: no result in", out / "bftsmart.txt")
        return
    reps = anchor.replicas
    total = sum(reps) + anchor.client
    print(f"BFT-SMaRt, closed loop: {anchor.rate:,} req/s, p50 {anchor.p50} ms, p99 "
          f"{anchor.p99} ms; CPU ms/req: replicas {' '.join(f'{r:.3f}' for r in reps)} "
          f"(sum {sum(reps):.3f}), client {anchor.client:.3f}, total {total:.3f} -> "
          f"{CORES}-core ceiling {ceiling(total)} req/s")
    print(f"moonshot {MOONSHOT:,} req/s needs <= {CORES * 1000 / MOONSHOT:.2f} ms of CPU per "
          f"request for all five processes on {CORES} cores")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
