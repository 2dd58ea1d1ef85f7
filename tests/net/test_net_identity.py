"""The node identity file: created once with mode 0600, loaded unchanged, garbage refused."""

from __future__ import annotations

import contextlib
import os
import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockmesh.data.net import (
    IDENTITY_FILE,
    Identity,
    IdentityError,
    load_identity,
    load_or_create_identity,
)

# RFC 8032 test 1: seed and public key.
RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")


def test_created_with_mode_0600_and_loaded_unchanged(tmp_path):
    repo = tmp_path / "repo"
    first = load_or_create_identity(repo)
    path = repo / IDENTITY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(repo.stat().st_mode) == 0o700  # the directory it had to create
    assert [p.name for p in repo.iterdir()] == [IDENTITY_FILE]  # no temp file left behind
    second = load_or_create_identity(repo)
    assert second == first
    assert second.peer_id == first.peer_id
    assert first.peer_id.startswith("12D3KooW")


def test_two_repos_get_different_identities(tmp_path):
    assert load_or_create_identity(tmp_path / "a").peer_id != (
        load_or_create_identity(tmp_path / "b").peer_id
    )


def test_file_is_the_libp2p_protobuf_kubo_uses(tmp_path):
    identity = Identity.from_seed(RFC8032_SEED)
    assert identity.public_key == RFC8032_PUBLIC
    data = identity.to_bytes()
    assert data == b"\x08\x01\x12\x40" + RFC8032_SEED + RFC8032_PUBLIC
    assert Identity.from_bytes(data) == identity


def test_group_readable_key_is_refused(tmp_path):
    load_or_create_identity(tmp_path)
    os.chmod(tmp_path / IDENTITY_FILE, 0o644)
    with pytest.raises(IdentityError, match="chmod 600"):
        load_or_create_identity(tmp_path)


def test_missing_key_is_an_identity_error(tmp_path):
    with pytest.raises(IdentityError, match="cannot open"):
        load_identity(tmp_path)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x08\x01\x12\x40" + RFC8032_SEED,  # truncated
        b"\x08\x00\x12\x40" + RFC8032_SEED + RFC8032_PUBLIC,  # RSA type
        b"\x08\x01\x12\x40" + RFC8032_SEED + bytes(32),  # public key of another seed
        b"\x08\x01\x12\x40" + RFC8032_SEED + RFC8032_PUBLIC + b"\x00",  # trailing byte
    ],
)
def test_malformed_key_files_are_refused(tmp_path, data):
    path = tmp_path / IDENTITY_FILE
    path.write_bytes(data)
    os.chmod(path, 0o600)
    with pytest.raises(IdentityError):
        load_or_create_identity(tmp_path)


@given(st.binary(max_size=100))
def test_from_bytes_raises_only_identity_error(data):
    with contextlib.suppress(IdentityError):
        Identity.from_bytes(data)
