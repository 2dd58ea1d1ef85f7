"""Interop with Helia 7 (js-libp2p: TCP, Noise, Yamux; js Bitswap), the second real peer.

Helia's Yamux sends DATA frames as large as the window it has been granted, where kubo's
stay at 64 KiB; 100 MiB from Helia is what exposed py-libp2p's over-credited window (see
blockmesh.data.net.yamux.window), so the fetch is repeated five times on one Helia node.
"""

import hashlib
import os

import pytest
import trio

from blockmesh.data.cid import CID
from blockmesh.data.dag.importer import ImportOptions, import_bytes
from blockmesh.data.net import NetConfig
from blockmesh.data.net.yamux.session import Session
from blockmesh.data.net.yamux.window import MAX_WINDOW
from blockmesh.data.node import Node
from blockmesh.data.store.repo import Repo
from blockmesh.reference.helia import HeliaError, HeliaNode, helia_unavailable_reason

pytestmark = pytest.mark.skipif(helia_unavailable_reason() is not None,
                                reason=str(helia_unavailable_reason()))

LOOPBACK = NetConfig(listen_addrs=("/ip4/127.0.0.1/tcp/0",))
MIB = 1024 * 1024
# @helia/unixfs's importer defaults: CIDv1, raw leaves, 1 MiB chunks, up to 1024 links a node.
HELIA_PROFILE = ImportOptions(cid_version=1, raw_leaves=True, chunk_size=MIB, max_links=1024)


@pytest.fixture(scope="module")
def helia():
    """One Helia for the module: it takes several seconds to start."""
    with HeliaNode(call_timeout=120) as node:
        yield node


def _digest(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.mark.parametrize("size", [1, MIB, MIB + 1, 5 * MIB + 12345])
def test_helia_and_blockmesh_import_to_the_same_cid(helia, tmp_path, size):
    data = os.urandom(size)
    source = tmp_path / "file.bin"
    source.write_bytes(data)
    assert helia.add(source) == str(import_bytes(data, HELIA_PROFILE).cid)


@pytest.fixture
def largest_credit(monkeypatch):
    """The most window any Yamux stream granted its sender, watched on the real connections
    (the failure it caused needed js-yamux to have that much queued, which is timing)."""
    seen = [0]
    read = Session.read

    def watched(session, stream, limit, *, now):
        data = read(session, stream, limit, now=now)
        seen[0] = max(seen[0], stream.credit + stream.buffered)
        return data

    monkeypatch.setattr(Session, "read", watched)
    return seen


@pytest.mark.slow
async def test_blockmesh_fetches_100_mib_from_helia_five_times_in_a_row(
        helia, tmp_path, largest_credit):
    source = tmp_path / "100mib.bin"
    with open(source, "wb") as f:
        for _ in range(100):
            f.write(os.urandom(MIB))
    cid_text = await trio.to_thread.run_sync(lambda: helia.add(source))
    cid = CID.parse(cid_text)
    expected = _digest(source)
    for attempt in range(5):
        node = Node(Repo.init(tmp_path / f"bm{attempt}"), net_config=LOOPBACK)
        dest = tmp_path / f"out{attempt}.bin"
        with trio.fail_after(120):
            async with node.run():
                await node.connect(helia.addrs[0])
                await node.get(cid, dest, stall_timeout=30)
        assert _digest(dest) == expected, f"attempt {attempt}: bytes differ"
        dest.unlink()
    assert 0 < largest_credit[0] <= MAX_WINDOW
    # Our import of the same bytes with Helia's profile names the same DAG.
    assert import_bytes(source.read_bytes(), HELIA_PROFILE).cid == cid


async def test_helia_fetches_what_blockmesh_added(helia, tmp_path):
    data = os.urandom(20 * MIB + 4321)
    dest = tmp_path / "from-blockmesh.bin"
    node = Node(Repo.init(tmp_path / "bm"), net_config=LOOPBACK)
    with trio.fail_after(120):
        async with node.run():
            cid = node.add_bytes(data, HELIA_PROFILE)
            ours = node.addrs()[0]
            await trio.to_thread.run_sync(lambda: helia.connect(ours))
            size = await trio.to_thread.run_sync(
                lambda: helia.fetch(str(cid), dest, timeout=60))
            assert node.stats()["blocks_sent"] >= 21
    assert size == len(data)
    assert dest.read_bytes() == data


def test_a_failed_request_is_a_helia_error_and_the_peer_lives_on(helia, tmp_path):
    with pytest.raises(HeliaError, match="fetch failed"):
        helia.fetch("not-a-cid", tmp_path / "x", timeout=5)
    assert helia.running
    source = tmp_path / "after.bin"
    source.write_bytes(b"still here\n")
    assert helia.add(source) == str(import_bytes(b"still here\n", HELIA_PROFILE).cid)
