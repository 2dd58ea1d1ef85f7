"""`blockmesh daemon` in child processes for tests, the CLI against them, and plain HTTP
against their API: the one way the suite starts and stops a daemon.

A daemon gets its repo (made with `blockmesh init` unless one is there), listens on 127.0.0.1
(or where the caller says, inside a network namespace say) with its gateway on a free port, so
that daemons of parallel runs never meet on a fixed port. Starting waits, bounded, for its
"Daemon is ready" line and its API file. Each daemon leads its own process group, and stopping
signals that group by the daemon's PID: nothing it started outlives the test, and nothing else
is touched (the library's `blockmesh.daemon.process` does both, for the benchmarks too). Its
stderr goes to a log beside the repo (REPO.daemon.log), which a failed start quotes.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trio
from prometheus_client.parser import text_string_to_metric_families

from blockmesh.daemon.apifile import ApiAddress, read_api_file
from blockmesh.daemon.process import BIN, STOP_TIMEOUT, DaemonProcess

CALL_TIMEOUT = 60
LOOPBACK = "/ip4/127.0.0.1/tcp/0"


def run(repo: Path, *args: str, check: bool = True, env: dict[str, str] | None = None,
        prefix: Sequence[str] = ()) -> subprocess.CompletedProcess[bytes]:
    """`blockmesh ARGS` on `repo` (under `prefix`, e.g. `ip netns exec NS`), bounded."""
    full = dict(os.environ, BLOCKMESH_PATH=str(repo), **(env or {}))
    proc = subprocess.run([*prefix, *BIN, *args], env=full, capture_output=True,
                          timeout=CALL_TIMEOUT)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed: {proc.stderr.decode()}")
    return proc


def one_line_error(proc: subprocess.CompletedProcess[bytes]) -> str:
    assert proc.returncode != 0
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error"), proc.stderr
    return lines[0]


def as_json(proc: subprocess.CompletedProcess[bytes]) -> dict:
    return json.loads(proc.stdout)


def log_path(repo: Path) -> Path:
    """Where the daemon on `repo` writes its stderr: beside the repo, never in it, so that
    nothing a test lists or measures in the repo changes."""
    return repo.with_name(f"{repo.name}.daemon.log")


@dataclass
class Daemon:
    repo: Path
    process: DaemonProcess
    prefix: list[str] = field(default_factory=list)

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        return self.process.proc

    @property
    def api(self) -> ApiAddress:
        address = read_api_file(self.repo)
        assert address is not None
        return address

    @property
    def peer_id(self) -> str:
        return str(as_json(self.run("id", "--json"))["ID"])

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        return run(self.repo, *args, check=check, prefix=self.prefix)

    def get(self, path: str, headers: dict[str, str] | None = None,
            token: bool = False) -> tuple[int, dict[str, str], bytes]:
        return get(self.repo, path, headers, token)

    def scrape(self) -> dict[str, float]:
        return scrape(self.repo)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the daemon's process group (SIGKILL after STOP_TIMEOUT) and reap it; its exit
        code. Stopping again only returns the code."""
        return self.process.stop(sig)


def start_daemon(repo: Path, banner: list[str] | None = None, *, listen: str = LOOPBACK,
                 gateway: str = LOOPBACK, log_level: str | None = None,
                 prefix: Sequence[str] = ()) -> Daemon:
    """A daemon on `repo` (made first if needed) listening on `listen`, its gateway on
    `gateway`; `banner` collects the lines it printed up to "Daemon is ready"; `prefix` runs it
    (and `Daemon.run`) under a command such as `ip netns exec NS`."""
    if not (repo / "config.toml").exists():
        run(repo, "init", prefix=prefix)
    args = ["--listen", listen, "--gateway", gateway]
    if log_level is not None:
        args += ["--log-level", log_level]
    process = DaemonProcess(repo, args, prefix=prefix, log=log_path(repo))
    try:
        process.wait_ready()
    finally:
        if banner is not None:
            banner.extend(process.banner)
    return Daemon(repo, process, list(prefix))


def connect(a: Daemon, b: Daemon) -> dict:
    """b dials a; a's `id --json`."""
    ident = as_json(a.run("id", "--json"))
    out = b.run("swarm", "connect", ident["Addresses"][0]).stdout.decode()
    assert out.strip() == f"connect {ident['ID']} success"
    return ident


def get(repo: Path, path: str, headers: dict[str, str] | None = None,
        token: bool = False) -> tuple[int, dict[str, str], bytes]:
    """One GET to the API of the daemon on `repo`; `token` sends its bearer token."""
    api = read_api_file(repo)
    assert api is not None
    conn = http.client.HTTPConnection(api.host, api.port, timeout=CALL_TIMEOUT)
    try:
        sent = dict(headers or {})
        if token:
            sent["Authorization"] = f"Bearer {api.token}"
        conn.request("GET", path, headers=sent)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, \
            response.read()
    finally:
        conn.close()


def scrape(repo: Path) -> dict[str, float]:
    """Every sample of the daemon's /metrics by name and labels, e.g. `x_total{op="put"}`."""
    status, _, body = get(repo, "/metrics", token=True)
    assert status == 200, body
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def start_fetch(a: Daemon, b: Daemon, size: int, name: str) -> tuple[str, subprocess.Popen[bytes]]:
    """Add `size` random bytes on a; b starts reading them (`cat`) in the background."""
    path = a.repo.parent / name
    path.write_bytes(os.urandom(size))
    cid = a.run("add", "-Q", str(path)).stdout.decode().strip()
    proc = subprocess.Popen([*BIN, "cat", cid], env=dict(os.environ, BLOCKMESH_PATH=str(b.repo)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return cid, proc


def finish(proc: subprocess.Popen[bytes]) -> None:
    """Wait, bounded, for a background CLI call and require its success."""
    try:
        _, err = proc.communicate(timeout=CALL_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=STOP_TIMEOUT)
        raise
    assert proc.returncode == 0, err.decode()


async def http_exchange(port: int, raw: bytes) -> bytes:
    """Send one raw HTTP request to 127.0.0.1:`port` and read the answer until the server
    closes the connection (for servers driven in the test's own trio loop)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(raw)
        answer = bytearray()
        while chunk := await stream.receive_some(65536):
            answer += chunk
    return bytes(answer)
