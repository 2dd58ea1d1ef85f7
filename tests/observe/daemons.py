"""Daemons in child processes for the observability tests, and plain HTTP against their API."""

from __future__ import annotations

import http.client
import json
import os
import selectors
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from blockmesh.daemon.apifile import ApiAddress, read_api_file

BIN = [sys.executable, "-m", "blockmesh.cli"]
START_TIMEOUT = 30
STOP_TIMEOUT = 15
CALL_TIMEOUT = 60


def cli(repo: Path, *args: str, check: bool = True,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    full = dict(os.environ, BLOCKMESH_PATH=str(repo), **(env or {}))
    proc = subprocess.run([*BIN, *args], env=full, capture_output=True, timeout=CALL_TIMEOUT)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed: {proc.stderr.decode()}")
    return proc


@dataclass
class Daemon:
    repo: Path
    proc: subprocess.Popen[bytes]

    @property
    def api(self) -> ApiAddress:
        address = read_api_file(self.repo)
        assert address is not None
        return address

    @property
    def peer_id(self) -> str:
        return json.loads(cli(self.repo, "id", "--json").stdout)["ID"]

    def get(self, path: str, headers: dict[str, str] | None = None,
            token: bool = False) -> tuple[int, dict[str, str], bytes]:
        return get(self.repo, path, headers, token)

    def scrape(self) -> dict[str, float]:
        return scrape(self.repo)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(STOP_TIMEOUT)
        finally:
            if self.proc.stdout is not None:
                self.proc.stdout.close()


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


def start_daemon(repo: Path) -> Daemon:
    cli(repo, "init")
    env = dict(os.environ, BLOCKMESH_PATH=str(repo))
    proc = subprocess.Popen([*BIN, "daemon", "--listen", "/ip4/127.0.0.1/tcp/0"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)
    daemon = Daemon(repo, proc)
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            for _ in range(20):
                if not selector.select(START_TIMEOUT):
                    raise TimeoutError(f"daemon {proc.pid} not ready in {START_TIMEOUT} s")
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"daemon {proc.pid} exited with {proc.wait()}")
                if line.strip() == b"Daemon is ready":
                    return daemon
        raise RuntimeError("daemon never said it was ready")
    except BaseException:
        daemon.stop()
        raise


def connect(a: Daemon, b: Daemon) -> None:
    """b dials a."""
    address = json.loads(cli(a.repo, "id", "--json").stdout)["Addresses"][0]
    cli(b.repo, "swarm", "connect", address)


def start_fetch(a: Daemon, b: Daemon, size: int, name: str) -> tuple[str, subprocess.Popen[bytes]]:
    """Add `size` random bytes on a; b starts reading them (`cat`) in the background."""
    path = a.repo.parent / name
    path.write_bytes(os.urandom(size))
    cid = cli(a.repo, "add", "-Q", str(path)).stdout.decode().strip()
    env = dict(os.environ, BLOCKMESH_PATH=str(b.repo))
    proc = subprocess.Popen([*BIN, "cat", cid], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    return cid, proc


def finish(proc: subprocess.Popen[bytes]) -> None:
    try:
        _, err = proc.communicate(timeout=CALL_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=STOP_TIMEOUT)
        raise
    assert proc.returncode == 0, err.decode()
