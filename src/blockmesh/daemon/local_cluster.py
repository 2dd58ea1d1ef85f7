"""N member daemons on this machine, as separate processes: for the demo, tests and benchmarks.

Each member is a real `blockmesh daemon` process on its own repo (DIR/nodeK), so what runs here
is what an operator runs: PBFT over the network between processes, Bitswap between them, the
CLI talking to each daemon's API. Each daemon leads its own process group and is stopped by
that group, with every wait bounded (`process.py`).

By default every member binds 127.0.0.1. Given one host per member and a command prefix per
member (`ip netns exec NS`, say), each member's daemon and CLI calls run where its own address
is, so the members talk over whatever network joins those places instead of loopback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blockmesh.control.cluster.config import ClusterConfig, free_base_port
from blockmesh.control.pinset.config import PinsetConfig
from blockmesh.daemon.membership import init_members
from blockmesh.daemon.process import BIN, DaemonProcess
from blockmesh.errors import BlockmeshError

CALL_TIMEOUT = 90.0


class LocalClusterError(BlockmeshError):
    """A command failed, or a wait ran out (a daemon that does not start: DaemonStartError)."""


@dataclass
class LocalMembers:
    """Member repos under `root` and the daemons running on them (by node id)."""

    root: Path
    config: ClusterConfig
    procs: dict[str, DaemonProcess] = field(default_factory=dict)
    log_level: str = "info"
    #: Per node id, what its daemon and CLI calls run under (none: run directly).
    prefix: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def create(cls, root: Path, nodes: int = 4, *, pinset: PinsetConfig | None = None,
               transport: str = "grpc", clients: int = 1,
               hosts: Sequence[str] = ("127.0.0.1",),
               prefix: Sequence[Sequence[str]] = ()) -> LocalMembers:
        """`hosts`: one address for all members or one per member; `prefix`: none, or one
        command prefix per member, in node order."""
        if prefix and len(prefix) != nodes:
            raise LocalClusterError(f"one command prefix per member: {len(prefix)} for {nodes}")
        config = init_members(root, nodes, hosts, free_base_port(nodes), pinset=pinset,
                              transport=transport, checkpoint_interval=20, clients=clients)
        return cls(root, config, prefix={n.id: list(p) for n, p in zip(config.nodes, prefix,
                                                                       strict=False)})

    @property
    def ids(self) -> list[str]:
        return [n.id for n in self.config.nodes]

    def repo(self, node: str) -> Path:
        return self.root / node

    def start(self, node: str) -> None:
        self._spawn(node)
        self._ready(node)

    def start_all(self) -> None:
        """Start every member at once: a replica that waits long for the others to come up
        would time its first requests out and change the view before anyone ordered a thing."""
        for node in self.ids:
            self._spawn(node)
        for node in self.ids:
            self._ready(node)

    def command(self, node: str, *args: str) -> list[str]:
        """`blockmesh ARGS` as `node` runs it (under its prefix)."""
        return [*self.prefix.get(node, ()), *BIN, *args]

    def _spawn(self, node: str) -> None:
        self.procs[node] = DaemonProcess(self.repo(node), ["--log-level", self.log_level],
                                         prefix=self.prefix.get(node, ()),
                                         log=self.root / f"{node}.log")

    def _ready(self, node: str) -> None:
        try:
            self.procs[node].wait_ready()
        except BaseException:
            self.stop_all()
            raise

    def kill(self, node: str, sig: int = signal.SIGKILL) -> None:
        """Signal `node`'s daemon and its process group, and reap it (bounded)."""
        daemon = self.procs.pop(node, None)
        if daemon is not None:
            daemon.stop(sig)

    def stop_all(self) -> None:
        for node in list(self.procs):
            self.kill(node, signal.SIGTERM)

    def cli(self, node: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        env = dict(os.environ, BLOCKMESH_PATH=str(self.repo(node)))
        proc = subprocess.run(self.command(node, *args), env=env, capture_output=True,
                              timeout=CALL_TIMEOUT)
        if check and proc.returncode != 0:
            raise LocalClusterError(f"{node}: blockmesh {' '.join(args)}: "
                                    f"{proc.stderr.decode().strip()}")
        return proc

    def json(self, node: str, *args: str) -> Any:
        return json.loads(self.cli(node, *args, "--json").stdout)

    def status(self, node: str, cid: str) -> dict[str, str]:
        """Each member's state for `cid`, as `node` sees the committed pinset."""
        answer = self.json(node, "cluster", "status", cid)
        return {m["node"]: m["status"] for m in answer["members"]}

    def wait(self, what: str, check: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if check():
                    return
            except LocalClusterError:
                pass  # a daemon busy with a view change; ask again
            if time.monotonic() >= deadline:
                raise LocalClusterError(f"{what}: not within {timeout:g} s")
            time.sleep(0.25)

    def __enter__(self) -> LocalMembers:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop_all()

