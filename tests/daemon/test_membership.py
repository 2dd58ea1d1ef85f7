"""`cluster init` member repos: one address for every member, or one address per member."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from blockmesh.control.cluster.config import ClusterConfig, ClusterConfigError
from blockmesh.daemon.membership import init_members, load_membership
from blockmesh.data.store.repo import Repo

HOSTS = ["10.231.0.1", "10.231.0.2", "10.231.0.3", "10.231.0.4"]


def init(out: Path, *hosts: str,
         extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[bytes]:
    args = [arg for host in hosts for arg in ("--host", host)]
    return subprocess.run([sys.executable, "-m", "blockmesh.cli", "cluster", "init", "--out",
                           str(out), "--base-port", "7000", *args, *extra], capture_output=True,
                          timeout=60)


def test_each_member_binds_its_own_host(tmp_path: Path) -> None:
    proc = init(tmp_path / "c", *HOSTS)
    assert proc.returncode == 0, proc.stderr
    cluster = ClusterConfig.load(tmp_path / "c" / "cluster.toml")
    for k, node in enumerate(cluster.nodes):
        assert node.address == f"{HOSTS[k]}:{7000 + k}"
        assert node.metrics_address == f"{HOSTS[k]}:{7100 + k}"
        assert node.swarm == f"/ip4/{HOSTS[k]}/tcp/{7200 + k}"
        with Repo.open(tmp_path / "c" / node.id) as repo:
            assert repo.config.addresses.swarm == [node.swarm]
            assert repo.config.gateway.listen == f"/ip4/127.0.0.1/tcp/{7300 + k}"
        membership = load_membership(tmp_path / "c" / node.id)
        assert membership is not None and membership[0].node_id == node.id


def test_one_host_is_every_member_s(tmp_path: Path) -> None:
    cluster = init_members(tmp_path, 4, "127.0.0.1", 7000)
    assert [n.address for n in cluster.nodes] == [f"127.0.0.1:{7000 + k}" for k in range(4)]
    assert [n.swarm for n in cluster.nodes] == [f"/ip4/127.0.0.1/tcp/{7200 + k}"
                                                for k in range(4)]


def test_a_wrong_number_of_hosts_is_refused_in_one_line(tmp_path: Path) -> None:
    proc = init(tmp_path / "c", *HOSTS[:2])
    assert proc.returncode != 0 and proc.stderr.count(b"\n") == 1, proc.stderr
    assert b"one --host for every node or one for all of them, not 2 for 4 nodes" in proc.stderr
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize(("hosts", "message"), [
    (HOSTS[:3], "not 3 for 4 nodes"),
    ([*HOSTS[:3], "member3.example"], "IPv4 address for member swarms, not 'member3.example'"),
])
def test_bad_hosts_are_refused_before_anything_is_written(tmp_path: Path, hosts: list[str],
                                                          message: str) -> None:
    with pytest.raises(ClusterConfigError, match=message):
        init_members(tmp_path / "c", 4, hosts, 7000)
    assert not (tmp_path / "c").exists()


def test_the_exclusion_period_is_set_at_init_into_the_pinset_table(tmp_path: Path) -> None:
    assert init(tmp_path / "default").returncode == 0
    assert ClusterConfig.load(tmp_path / "default" / "cluster.toml").pinset.exclusion_period \
        == 300.0
    proc = init(tmp_path / "c", extra=("--exclusion-period", "90.5"))
    assert proc.returncode == 0, proc.stderr
    cluster = ClusterConfig.load(tmp_path / "c" / "cluster.toml")
    assert cluster.pinset.policy().exclusion_period_ms == 90_500


@pytest.mark.parametrize(("value", "message"), [
    ("0.5", b"--exclusion-period"),
    (str(31 * 86400), b"--exclusion-period"),
    ("soon", b"--exclusion-period"),
    ("nan", b"exclusion_period must be 1 s to 30 days"),  # passes click's range: the config's
])
def test_a_bad_exclusion_period_is_refused_before_anything_is_written(tmp_path: Path,
                                                                      value: str,
                                                                      message: bytes) -> None:
    proc = init(tmp_path / "c", extra=("--exclusion-period", value))
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "c").exists()
