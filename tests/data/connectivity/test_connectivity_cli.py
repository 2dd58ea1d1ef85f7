"""`blockmesh bootstrap` and `status` without a daemon, as a user runs them."""

from __future__ import annotations

import json

import pytest
from cli_runner import run_main

from blockmesh.data.connectivity.settings import KUBO_BOOTSTRAP_PEERS

ADDR = "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWJc26VKH439j3Wk48Jdx3s6cE5r8UkQ4zxxvGRqd3ScHB"


@pytest.fixture
def cli(tmp_path, monkeypatch, capsysbinary):
    monkeypatch.setenv("BLOCKMESH_PATH", str(tmp_path / "repo"))

    def call(*args: str) -> tuple[int, str, str]:
        code, out, err = run_main(monkeypatch, capsysbinary, args)
        return code, out.decode(), err

    assert call("init")[0] == 0
    return call


def test_bootstrap_offline(cli):
    assert cli("bootstrap", "list") == (0, "", "")
    assert cli("bootstrap", "add", ADDR) == (0, f"added {ADDR}\n", "")
    code, out, _ = cli("bootstrap", "add", "--default")
    assert code == 0 and out.splitlines() == [f"added {a}" for a in KUBO_BOOTSTRAP_PEERS]
    code, out, _ = cli("bootstrap", "list", "--json")
    assert json.loads(out)["Peers"] == [ADDR, *KUBO_BOOTSTRAP_PEERS]
    assert cli("bootstrap", "rm", ADDR) == (0, f"removed {ADDR}\n", "")
    code, out, _ = cli("bootstrap", "rm", "--all")
    assert code == 0 and len(out.splitlines()) == len(KUBO_BOOTSTRAP_PEERS)
    assert cli("bootstrap", "list") == (0, "", "")


@pytest.mark.parametrize("args, message", [
    (("bootstrap", "add", "/ip4/127.0.0.1/tcp/4001"), "must be a transport address ending"),
    (("bootstrap", "add"), "name at least one MADDR, or pass --default"),
    (("bootstrap", "rm", ADDR), "not in the bootstrap list"),
    (("swarm", "filters", "ls"), "needs a running daemon"),
    (("swarm", "peering", "add", ADDR), "needs a running daemon"),
])
def test_errors_are_one_line(cli, args, message):
    code, out, err = cli(*args)
    assert code == 1 and out == "" and len(err.splitlines()) == 1 and message in err


def test_status_offline(cli):
    code, out, _ = cli("status", "--json")
    report = json.loads(out)
    assert code == 0 and report["Online"] is False and report["status"] == "offline"
