"""Every data command is one API route, run in the repo's daemon when one runs and in-process
when none does: the same commands give the same output either way, the ones that used to refuse
under a daemon now go through it, and an offline command never loads py-libp2p.

The commands run through `blockmesh.cli.main.main` in this process (fast; its error policy makes
the one-line errors); the daemon is a real child process. In daemon mode the repo's config.toml
is broken once the daemon has read it, so a command that opened the repo itself instead of
calling the daemon would fail.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cli_runner import run_main
from daemons import BIN, CALL_TIMEOUT, Daemon, start_daemon

from blockmesh.data.cid import CID
from blockmesh.data.dag.car import CARV2_PRAGMA
from blockmesh.data.limits import MAX_BLOCK_SIZE
from blockmesh.data.store.repo import Repo

Run = Callable[..., tuple[int, bytes, str]]
ABSENT = "bafkreie7ohywtosou76tasm7j63yigtzxe7d5zqus4zu3j6oltvgtibeom"


@contextlib.contextmanager
def repo_in_mode(path: Path, mode: str) -> Iterator[Daemon | None]:
    """The repo at `path` as it is, or with a daemon on it in "daemon" mode."""
    if mode == "offline":
        yield None
        return
    daemon = start_daemon(path)
    try:
        (path / "config.toml").write_text("this is [not toml\n")  # only the daemon read it
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]) -> Run:
    def run(repo: Path, *args: str, stdin: bytes = b"") -> tuple[int, bytes, str]:
        """main() on `repo` with `args`; stdin a real pipe (as from a shell) fed `stdin`."""
        monkeypatch.setenv("BLOCKMESH_PATH", str(repo))
        return run_main(monkeypatch, capsysbinary, args, stdin)

    return run


def scenario(cli: Run, repo: Path, files: Path) -> list[tuple[str, int, str, str]]:
    """The formerly offline-only commands (and their failures) on a fresh repo; returns what
    each printed, with the repo's and the inputs' paths masked, for comparing the two modes."""
    files.mkdir()
    transcript = []

    def mask(text: str) -> str:
        return text.replace(str(repo), "<repo>").replace(str(files), "<in>")

    def step(*args: str, stdin: bytes = b"", code: int = 0) -> bytes:
        result = cli(repo, *args, stdin=stdin)
        assert result[0] == code, (args, result)
        if code:
            lines = result[2].strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("Error: "), (args, result)
        transcript.append((mask(" ".join(args)), result[0], mask(result[1].decode("latin-1")),
                           mask(result[2])))
        return result[1]

    raw = step("block", "put", stdin=b"raw bytes").decode().strip()
    (files / "block.bin").write_bytes(b"pinned block")
    pinned = json.loads(step("block", "put", "--pin", "--json", str(files / "block.bin")))
    assert pinned["Size"] == 12
    os.mkfifo(files / "fifo")  # read by the CLI, never opened by the daemon (it could block)
    writer = threading.Thread(target=(files / "fifo").write_bytes, args=(b"fifo",), daemon=True)
    writer.start()
    step("block", "put", str(files / "fifo"))
    writer.join(timeout=30)
    step("block", "put", stdin=b"\x01" * (MAX_BLOCK_SIZE + 1), code=1)
    step("block", "put", "--cid-codec", "dag-cbor", stdin=b"\xf7", code=1)
    assert step("block", "get", raw) == b"raw bytes"
    step("block", "stat", raw)
    step("block", "rm", pinned["Key"], raw, code=1)  # pinned: nothing is removed
    assert step("block", "get", raw) == b"raw bytes"
    step("block", "rm", raw)
    step("block", "rm", raw, code=1)  # absent now

    doc = json.dumps({"name": "x", "link": {"/": pinned["Key"]}}).encode()
    root = step("dag", "put", "--pin", stdin=doc).decode().strip()
    (files / "doc.json").write_bytes(b'{"a": 1.5}')
    loose = step("dag", "put", str(files / "doc.json")).decode().strip()
    step("pin", "add", "--direct", loose)
    step("dag", "put", stdin=b'{"a": NaN}', code=1)
    assert json.loads(step("dag", "get", root)) == json.loads(doc)
    car = step("dag", "export", root)
    assert step("dag", "export", ABSENT, code=1) == b""  # nothing before the error
    (files / "x.car").write_bytes(car)
    step("pin", "rm", root)
    step("pin", "rm", root, code=1)
    step("repo", "gc")
    step("dag", "get", root, code=1)  # collected
    step("dag", "import", "--no-pin-roots", str(files / "x.car"))
    step("dag", "import", "-", stdin=car)
    step("dag", "import", str(files / "doc.json"), code=1)  # not a CAR
    header = struct.pack("<16sQQQ", b"\x00" * 16, 51, 0, 0)
    step("dag", "import", "-", stdin=CARV2_PRAGMA + header + car, code=1)

    step("pin", "add", ABSENT, code=1)
    step("pin", "ls")
    step("pin", "ls", "--type", "direct", "--json")
    step("repo", "stat")
    step("repo", "verify", "--json")
    step("repo", "gc", "--json")
    assert step("dag", "get", loose).strip() == b'{"a": 1.5}'  # kept by its direct pin
    return transcript


def test_data_commands_give_the_same_output_with_and_without_a_daemon(cli, tmp_path):
    transcripts = {}
    for mode in ("offline", "daemon"):
        repo = tmp_path / mode / "repo"
        Repo.init(repo).close()
        with repo_in_mode(repo, mode) as daemon:
            transcripts[mode] = scenario(cli, repo, tmp_path / mode / "in")
            assert daemon is None or daemon.proc.poll() is None
    assert transcripts["daemon"] == transcripts["offline"]


@pytest.mark.parametrize("mode", ["offline", "daemon"])
def test_repo_verify_exits_1_on_a_corrupt_block(cli, tmp_path, mode):
    repo = tmp_path / "repo"
    Repo.init(repo).close()
    config = repo / "config.toml"
    config.write_text(config.read_text().replace('engine = "lmdb"', 'engine = "flatfs"'))
    with repo_in_mode(repo, mode):
        code, out, _ = cli(repo, "block", "put", stdin=b"will rot")
        assert code == 0 and out.decode().strip() == str(CID.of(b"will rot"))
        (block,) = [p for p in (repo / "blocks").rglob("*.data")]
        block.write_bytes(b"rotten")
        code, out, err = cli(repo, "repo", "verify")
        assert code == 1 and out.decode().strip() == "verified 1 blocks, 1 corrupt"
        assert err.strip() == f"block {CID.of(b'will rot')} is corrupt"


@pytest.mark.parametrize("mode", ["offline", "daemon"])
def test_repo_gc_takes_the_gc_lock(tmp_path, mode):
    """While another process holds the GC lock shared (as an import does), `repo gc` in the CLI
    waits for it and collects once it is released; the daemon, whose event loop must not block
    on the lock, refuses at once with a one-line error and collects when asked again."""
    repo = tmp_path / "repo"
    Repo.init(repo).close()
    cid = _run(repo, "block", "put", stdin=b"garbage").stdout.decode().strip()
    env = dict(os.environ, BLOCKMESH_PATH=str(repo))
    with repo_in_mode(repo, mode), open(repo / "gc.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        gc = subprocess.Popen([*BIN, "repo", "gc"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            if mode == "daemon":
                out, err = gc.communicate(timeout=CALL_TIMEOUT)
                assert gc.returncode == 1 and out == b""
                assert "run GC again when it is done" in err.decode()
                fcntl.flock(lock, fcntl.LOCK_UN)
                gc = subprocess.Popen([*BIN, "repo", "gc"], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            else:
                with pytest.raises(subprocess.TimeoutExpired):
                    gc.wait(2)  # a gc that skipped the lock would be done long before
                fcntl.flock(lock, fcntl.LOCK_UN)
            out, err = gc.communicate(timeout=CALL_TIMEOUT)
        finally:
            if gc.poll() is None:
                gc.kill()
                gc.wait(CALL_TIMEOUT)
        assert gc.returncode == 0 and out.decode() == f"removed {cid}\n", err


@pytest.mark.slow  # a fetch must stall out (4 s) beside a daemon's start and stop
def test_the_daemon_refuses_repo_gc_while_it_fetches(tmp_path):
    """Fetched blocks are unpinned until the command that fetched them is done with them."""
    daemon = start_daemon(tmp_path / "repo")
    env = dict(os.environ, BLOCKMESH_PATH=str(daemon.repo))
    try:
        cat = subprocess.Popen([*BIN, "cat", "--stall-timeout", "4", ABSENT], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            for _ in range(50):
                wants = json.loads(_run(daemon.repo, "bitswap", "wantlist", "--json").stdout)
                if ABSENT in wants["Keys"] or cat.poll() is not None:
                    break
            gc = subprocess.run([*BIN, "repo", "gc"], env=env, capture_output=True,
                                timeout=CALL_TIMEOUT)
            assert gc.returncode == 1 and gc.stderr.decode() == (
                "Error: the daemon is fetching; run `repo gc` again when it is done\n")
            _, err = cat.communicate(timeout=CALL_TIMEOUT)
        finally:
            if cat.poll() is None:
                cat.kill()
                cat.wait(CALL_TIMEOUT)
        assert cat.returncode == 1 and "no block" in err.decode()
        assert _run(daemon.repo, "repo", "gc").returncode == 0  # the fetch has ended
    finally:
        daemon.stop()


def test_offline_commands_do_not_load_py_libp2p(tmp_path):
    env = dict(os.environ, BLOCKMESH_PATH=str(tmp_path / "repo"))
    Repo.init(tmp_path / "repo").close()
    (tmp_path / "f").write_bytes(b"offline")
    cid = _run(tmp_path / "repo", "add", "-Q", str(tmp_path / "f")).stdout.decode().strip()
    for args in (("cat", cid), ("block", "put"), ("repo", "gc")):
        proc = subprocess.run([sys.executable, "-X", "importtime", *BIN[1:], *args], env=env,
                              input=b"x", capture_output=True, timeout=CALL_TIMEOUT)
        assert proc.returncode == 0, proc.stderr.decode()[-2000:]
        loaded = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.decode().splitlines()
                  if line.startswith("import time:")}
        assert "blockmesh.daemon.repo_routes" in loaded  # the route ran in-process
        assert not {m for m in loaded if m.split(".")[0] in ("libp2p", "grpc")}, args


def _run(repo: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run([*BIN, *args], env=dict(os.environ, BLOCKMESH_PATH=str(repo)),
                          input=stdin, capture_output=True, timeout=CALL_TIMEOUT)
    assert proc.returncode == 0, (args, proc.stderr.decode())
    return proc
