"""The `blockmesh` command as a user runs it: real processes, a repo in a temporary directory."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from blockmesh.cli.main import cli

BIN = [sys.executable, "-m", "blockmesh.cli"]


def run(env, *args, stdin=None, check=True):
    proc = subprocess.run([*BIN, *args], env=env, input=stdin, capture_output=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed: {proc.stderr.decode()}")
    return proc


@pytest.fixture
def env(tmp_path):
    environment = dict(os.environ, BLOCKMESH_PATH=str(tmp_path / "repo"))
    run(environment, "init")
    return environment


def test_add_cat_get_ls_and_json(env, tmp_path):
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    (src / "hello.txt").write_bytes(b"hello world\n")
    (src / "sub" / "data.bin").write_bytes(os.urandom(600000))
    out = run(env, "add", "-Q", str(src / "hello.txt")).stdout.decode().strip()
    assert out == "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
    assert run(env, "cat", out).stdout == b"hello world\n"
    lines = run(env, "add", "-r", str(src)).stdout.decode().splitlines()
    assert lines[-1].startswith("added ") and lines[-1].endswith(" tree")
    root = lines[-1].split()[1]
    listing = json.loads(run(env, "ls", "--json", root).stdout)
    assert {e["Name"] for e in listing} == {"hello.txt", "sub"}
    run(env, "get", root, "-o", str(tmp_path / "back"), "-q")
    assert (tmp_path / "back" / "sub" / "data.bin").read_bytes() == (
        src / "sub" / "data.bin").read_bytes()
    v1 = run(env, "add", "-Q", "--cid-version", "1", str(src / "hello.txt")).stdout.decode()
    assert v1.strip() == "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
    only = run(env, "add", "--only-hash", "--json", str(src / "hello.txt")).stdout
    assert json.loads(only)[0]["Hash"] == out


def test_block_dag_car_pin_gc(env, tmp_path):
    cid = run(env, "block", "put", stdin=b"raw bytes").stdout.decode().strip()
    assert run(env, "block", "get", cid).stdout == b"raw bytes"
    assert json.loads(run(env, "block", "stat", "--json", cid).stdout)["Size"] == 9
    doc = json.dumps({"name": "x", "link": {"/": cid}}).encode()
    dag_cid = run(env, "dag", "put", "--pin", stdin=doc).stdout.decode().strip()
    assert dag_cid.startswith("bafyrei")
    assert json.loads(run(env, "dag", "get", dag_cid).stdout) == json.loads(doc)
    car = run(env, "dag", "export", dag_cid).stdout
    other = dict(env, BLOCKMESH_PATH=str(tmp_path / "other"))
    run(other, "init")
    (tmp_path / "x.car").write_bytes(car)
    imported = run(other, "dag", "import", str(tmp_path / "x.car")).stdout.decode()
    assert f"Pinned root {dag_cid}" in imported
    assert run(other, "block", "get", cid).stdout == b"raw bytes"
    unpinned = run(env, "block", "put", stdin=b"garbage to collect").stdout.decode().strip()
    removed = run(env, "repo", "gc").stdout.decode()
    assert f"removed {unpinned}" in removed
    assert run(env, "block", "get", cid).stdout == b"raw bytes"  # reached through the pinned dag
    assert run(env, "block", "get", unpinned, check=False).returncode == 1
    pins = json.loads(run(env, "pin", "ls", "--json").stdout)["Keys"]
    assert pins[dag_cid]["Type"] == "recursive"
    stat = json.loads(run(env, "repo", "stat", "--json").stdout)
    assert stat["NumObjects"] >= 2
    assert "0 corrupt" in run(env, "repo", "verify").stdout.decode()


@pytest.mark.parametrize("args", [
    ("cat", "not-a-cid"),
    ("cat", "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"),  # absent
    ("add", "/no/such/path"),
    ("add", "--chunker", "size-0", "/etc/hostname"),
    ("block", "put", "--cid-codec", "nope"),
    ("block", "put", "--mhtype", "md5"),
])
def test_bad_input_gives_one_line_and_nonzero_exit(env, args):
    proc = run(env, *args, stdin=b"x", check=False)
    assert proc.returncode != 0
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error"), proc.stderr


def test_cat_refuses_non_unixfs_and_corrupt_car(env, tmp_path):
    cbor = run(env, "dag", "put", stdin=b'{"a": 1}').stdout.decode().strip()
    proc = run(env, "cat", cbor, check=False)
    assert proc.returncode == 1 and "not a UnixFS" in proc.stderr.decode()
    (tmp_path / "bad.car").write_bytes(b"\x05hello")
    proc = run(env, "dag", "import", str(tmp_path / "bad.car"), check=False)
    assert proc.returncode == 1 and len(proc.stderr.decode().strip().splitlines()) == 1
    proc = run(dict(env, BLOCKMESH_PATH=str(tmp_path / "nothing")), "repo", "stat", check=False)
    assert proc.returncode == 1 and "blockmesh init" in proc.stderr.decode()


def test_errors_name_what_the_user_gave(env, tmp_path):
    proc = run(env, "block", "stat", "zzzz", check=False)
    assert proc.returncode == 1 and proc.stderr.decode().strip() == (
        "Error: not a CID: 'zzzz' (unsupported CID version 2)")
    absent = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
    proc = run(env, "dag", "export", absent, check=False)
    assert proc.returncode == 1 and proc.stdout == b""
    assert proc.stderr.decode().strip() == f"Error: {absent} is not in the repo"
    (tmp_path / "f").write_bytes(b"x")
    cid = run(env, "add", "-Q", str(tmp_path / "f")).stdout.decode().strip()
    proc = run(env, "get", cid, "-o", "/no/such/dir/x", check=False)
    assert proc.returncode == 1 and proc.stderr.decode().strip() == (
        "Error: cannot write /no/such/dir/x: /no/such/dir is not an existing directory")
    proc = run(env, "get", cid, "-o", str(tmp_path / "f"), check=False)
    assert proc.stderr.decode().strip() == (
        f"Error: {tmp_path / 'f'} already exists; get never overwrites")
    assert (tmp_path / "f").read_bytes() == b"x"


def _commands(command: click.Command, path: list[str]) -> Iterator[tuple[list[str], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):  # the root group loads its commands lazily
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, name
            yield from _commands(sub, [*path, name])


def test_help_everywhere():
    assert run(os.environ, "--help").stdout.startswith(b"Usage")
    runner = CliRunner()
    missing = []
    for path, command in _commands(cli, []):
        if not (command.help or "").strip():
            missing.append(" ".join(path) or "blockmesh")
        missing += [f"{' '.join(path)} {option.opts[0]}" for option in command.params
                    if isinstance(option, click.Option) and not (option.help or "").strip()]
        shown = runner.invoke(cli, [*path, "--help"])
        assert shown.exit_code == 0 and shown.output.startswith("Usage"), (path, shown.output)
    assert missing == []


def test_sigkill_during_add_leaves_only_valid_blocks(env, tmp_path):
    big = tmp_path / "big.bin"
    with open(big, "wb") as out:
        for _ in range(64):
            out.write(os.urandom(1 << 20))
    for engine in ("lmdb", "flatfs"):
        repo_env = dict(env, BLOCKMESH_PATH=str(tmp_path / f"crash-{engine}"))
        run(repo_env, "init")
        config = Path(repo_env["BLOCKMESH_PATH"]) / "config.toml"
        config.write_text(config.read_text().replace('engine = "lmdb"', f'engine = "{engine}"'))
        proc = subprocess.Popen([*BIN, "add", "-q", str(big)], env=repo_env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        blocks = Path(repo_env["BLOCKMESH_PATH"]) / "blocks"
        # Wait until the add has stored blocks, then kill it. Imports commit in 8 MiB batches,
        # so 20 MiB on disk means at least one whole batch is in, whatever the engine.
        for _ in range(400):
            if proc.poll() is not None or sum(f.stat().st_size for f in blocks.rglob("*")
                                              if f.is_file()) > 20 << 20:
                break
            subprocess.run(["sleep", "0.02"], check=True)
        proc.kill()
        proc.wait(10)
        verify = run(repo_env, "repo", "verify", "--json", check=False)
        report = json.loads(verify.stdout)
        assert verify.returncode == 0 and report["Corrupt"] == [] and report["Checked"] > 0


@pytest.fixture
def tiny_filesystem(tmp_path):
    """A 2 MiB tmpfs that this test mounts itself, to make a real full disk."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                          capture_output=True, timeout=30)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True, timeout=30)


@pytest.mark.parametrize("engine", ["lmdb", "flatfs"])
def test_full_disk_gives_one_line_and_leaves_no_bad_block(tiny_filesystem, tmp_path, engine):
    env = dict(os.environ, BLOCKMESH_PATH=str(tiny_filesystem / "repo"))
    run(env, "init")
    config = tiny_filesystem / "repo" / "config.toml"
    config.write_text(config.read_text().replace('engine = "lmdb"', f'engine = "{engine}"'))
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(5 * 1024 * 1024))
    proc = run(env, "add", "-q", str(big), check=False)
    assert proc.returncode == 1
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "no space left" in lines[0], proc.stderr
    report = json.loads(run(env, "repo", "verify", "--json").stdout)
    assert report["Corrupt"] == []


def test_progress_bar_on_a_terminal_only(env, tmp_path):
    import pty

    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(8 * 1024 * 1024))
    master, slave = pty.openpty()
    proc = subprocess.Popen([*BIN, "add", str(data)], env=dict(env, COLUMNS="80"),
                            stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    out, _ = proc.communicate(timeout=120)
    drawn = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        drawn += chunk
    os.close(master)
    assert proc.returncode == 0 and out.decode().startswith("added Qm")
    assert b"adding" in drawn  # the bar was drawn on the terminal
    piped = run(env, "add", str(data))
    assert piped.stderr == b""  # and nothing when stderr is not a terminal
