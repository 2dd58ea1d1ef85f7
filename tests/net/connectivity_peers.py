"""N libp2p hosts in one child process, for the connection-manager test: each listens on
127.0.0.1 (a free port); the process prints one JSON line with their ids and addresses, then
on each stdin line `dial <maddr> <first> <last>` dials it from hosts first..last (inclusive)
and prints `dialled <n ok>`; it exits when stdin closes."""

from __future__ import annotations

import json
import sys

import trio

from blockmesh.data.net import Host, Identity, NetConfig, NetError


async def main(count: int) -> None:
    hosts = [Host(Identity.generate(), NetConfig(listen_addrs=("/ip4/127.0.0.1/tcp/0",)))
             for _ in range(count)]
    async with trio.open_nursery() as nursery:
        for host in hosts:
            await nursery.start(_run, host)
        print(json.dumps([{"id": h.peer_id, "addr": h.addrs()[0]} for h in hosts]), flush=True)
        stdin = trio.wrap_file(sys.stdin)
        while line := (await stdin.readline()).split():
            if line[0] == "dial":
                ok = 0
                for host in hosts[int(line[2]):int(line[3]) + 1]:
                    try:
                        await host.connect(line[1], timeout=10)
                        ok += 1
                    except NetError as exc:
                        print(f"dial failed: {exc}", file=sys.stderr, flush=True)
                print(f"dialled {ok}", flush=True)
        nursery.cancel_scope.cancel()


async def _run(host: Host, *,
               task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    async with host.run():
        task_status.started()
        await trio.sleep_forever()


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]))
