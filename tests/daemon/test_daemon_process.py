"""The library's daemon starter: its own process group, stopped by group, every wait bounded."""

from __future__ import annotations

import http.client
import os
import signal
import time
from pathlib import Path

import pytest
from daemons import run

from blockmesh.bench.gatewaybench import _daemon as _bench_daemon
from blockmesh.daemon.process import DaemonProcess, DaemonStartError, start_daemon

LOOPBACK = ["--listen", "/ip4/127.0.0.1/tcp/0", "--gateway", ""]


def _stat(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name: state, ppid, pgrp, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _live_in_group(pgid: int) -> list[int]:
    """Processes of group `pgid` still running: zombies are dead, whether or not the
    container's init reaps them (a zombie still counts for kill(2) on the group)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = _stat(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                continue
            if fields[2] == str(pgid) and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def _group_gone(pgid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while _live_in_group(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_daemon_leads_its_group_and_takes_what_it_left_there_along(tmp_path: Path) -> None:
    """A helper in the daemon's group that ignores SIGTERM (started by the command prefix, as
    `ip netns exec` would run one) is gone once the daemon is stopped: the group is swept."""
    repo, pidfile = tmp_path / "repo", tmp_path / "helper.pid"
    run(repo, "init")
    prefix = ["sh", "-c", '(trap "" TERM; exec sleep 300) & echo $! > "$0"; exec "$@"',
              str(pidfile)]
    daemon = start_daemon(repo, LOOPBACK, prefix=prefix, log=tmp_path / "daemon.log")
    try:
        helper = int(pidfile.read_text())
        assert os.getpgid(daemon.pid) == daemon.pid != os.getpgid(0)
        assert sorted(_live_in_group(daemon.pid)) == sorted([daemon.pid, helper])
        assert "Daemon is ready" in daemon.banner
    finally:
        code = daemon.stop()
    assert code == 0
    assert _group_gone(daemon.pid)
    assert daemon.stop(signal.SIGKILL) == 0  # again: the code, and no signal to a reused id


def test_a_daemon_that_exits_before_ready_is_reported_with_its_log(tmp_path: Path) -> None:
    log = tmp_path / "daemon.log"
    with pytest.raises(DaemonStartError, match=r"exited with [1-9].*\S") as caught:
        start_daemon(tmp_path / "no-repo", LOOPBACK, log=log)
    assert log.read_text(errors="replace")[-200:].strip() in str(caught.value)


def test_a_start_that_runs_out_of_time_kills_the_group(tmp_path: Path) -> None:
    """Here the "daemon" never gets going (a prefix that only sleeps): past the deadline the
    start fails, and nothing of it is left."""
    pending = DaemonProcess(tmp_path, LOOPBACK, prefix=["sh", "-c", "sleep 300; exit 0", "sh"])
    began = time.monotonic()
    with pytest.raises(DaemonStartError, match="not ready in time"):
        pending.wait_ready(time.monotonic() + 0.5)
    assert time.monotonic() - began < 10
    assert pending.proc.returncode == -signal.SIGKILL
    assert _group_gone(pending.pid)


def test_the_gateway_bench_finds_its_daemon_s_gateway_in_the_banner(tmp_path: Path) -> None:
    """The gateway benchmark starts its daemons here too, and reads the gateway's port off
    the lines printed before "Daemon is ready"."""
    with _bench_daemon(tmp_path / "repo") as daemon:
        assert _live_in_group(daemon.process.pid)
        connection = http.client.HTTPConnection("127.0.0.1", daemon.gateway_port, timeout=30)
        try:
            connection.request("GET", "/ipfs/bafkqaaa")  # the empty identity CID
            assert connection.getresponse().status == 200
        finally:
            connection.close()
    assert _group_gone(daemon.process.pid)
