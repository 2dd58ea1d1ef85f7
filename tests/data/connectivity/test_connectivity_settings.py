"""Editing the connectivity lists in config.toml (the CLI offline and the daemon alike)."""

from __future__ import annotations

import tomllib

import pytest

from blockmesh.data.connectivity import settings
from blockmesh.data.connectivity.service import ConnectivitySettings
from blockmesh.data.store.config import Config, ConfigError
from blockmesh.data.store.repo import Repo
from blockmesh.errors import DecodeError, NotFound

PEER = "12D3KooWJc26VKH439j3Wk48Jdx3s6cE5r8UkQ4zxxvGRqd3ScHB"
ADDR = f"/ip4/127.0.0.1/tcp/4001/p2p/{PEER}"


@pytest.fixture
def repo(tmp_path):
    Repo.init(tmp_path / "r").close()
    return tmp_path / "r"


def test_defaults_reach_nothing(repo):
    config = settings.load(repo)
    assert config.bootstrap.peers == [] and config.peering.peers == []
    assert (config.connmgr.low_water, config.connmgr.high_water,
            config.connmgr.grace_period) == (32, 96, 20.0)
    assert config.bootstrap.min_peers == 4


def test_bootstrap_add_rm_and_default(repo):
    assert settings.bootstrap_add(repo, [ADDR]) == [ADDR]
    settings.bootstrap_add(repo, [ADDR])  # twice: still one entry
    assert settings.load(repo).bootstrap.peers == [ADDR]
    added = settings.bootstrap_add(repo, [], default=True)
    assert added == list(settings.KUBO_BOOTSTRAP_PEERS)
    assert settings.load(repo).bootstrap.peers == [ADDR, *settings.KUBO_BOOTSTRAP_PEERS]
    assert settings.bootstrap_rm(repo, [ADDR]) == [ADDR]
    with pytest.raises(NotFound):
        settings.bootstrap_rm(repo, [ADDR])
    assert settings.bootstrap_rm(repo, [], all_=True) == list(settings.KUBO_BOOTSTRAP_PEERS)
    assert settings.load(repo).bootstrap.peers == []


@pytest.mark.parametrize("bad", ["/ip4/127.0.0.1/tcp/4001", "not a multiaddr",
                                 "/ip4/127.0.0.1/tcp/4001/p2p/notapeer", f"/p2p/{PEER}"])
def test_bad_addresses_are_refused_and_change_nothing(repo, bad):
    before = (repo / "config.toml").read_text()
    with pytest.raises(DecodeError):
        settings.bootstrap_add(repo, [ADDR, bad])
    assert (repo / "config.toml").read_text() == before


def test_edits_keep_sections_they_do_not_know(repo):
    path = repo / "config.toml"
    path.write_text(path.read_text() + '\n[someone_elses]\nkey = "kept"\n')
    settings.peering_add(repo, [ADDR])
    raw = tomllib.loads(path.read_text())
    assert raw["someone_elses"] == {"key": "kept"} and raw["peering"]["peers"] == [ADDR]
    assert settings.peering_rm(repo, [PEER]) == [ADDR]
    with pytest.raises(NotFound):
        settings.peering_rm(repo, [PEER])


def test_an_edit_that_breaks_the_config_is_not_written(repo):
    path = repo / "config.toml"
    before = path.read_text()

    def breaks(raw):
        raw["connmgr"]["low_water"] = "many"

    with pytest.raises(ConfigError):
        settings.edit(repo, breaks)
    assert path.read_text() == before and not list(repo.glob(".config.toml.*"))


def test_settings_from_config_check_the_water_marks():
    config = Config()
    config.connmgr.low_water, config.connmgr.high_water = 10, 5
    with pytest.raises(ConfigError):
        ConnectivitySettings.from_config(config)
