"""The gateway's read-ahead plan (readahead.FilePlan), driven without I/O: the bytes of any
range come out whole and in order whatever order blocks arrive in, what is wanted ahead of
the response stays within the window of bytes however slowly the response is sent, and an
interior node that arrives early gets its children wanted before the walk reaches it."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockmesh.data.cid import CID, Codec
from blockmesh.data.dag import dagpb, unixfs
from blockmesh.data.dag.importer import ImportOptions, import_bytes
from blockmesh.data.dag.links import walk
from blockmesh.data.gateway.readahead import FilePlan
from blockmesh.data.store.memory import MemoryBlockstore
from blockmesh.errors import DecodeError

CHUNK = 100
DATA = random.Random(7).randbytes(23_456)
LAYOUTS = {
    "v1 raw leaves": ImportOptions(cid_version=1, chunk_size=CHUNK, max_links=4),
    "v0 dag-pb leaves": ImportOptions(chunk_size=CHUNK, max_links=4),
    "trickle": ImportOptions(cid_version=1, chunk_size=CHUNK, max_links=4, trickle=True),
}
FILES: dict[str, tuple[MemoryBlockstore, CID]] = {}


def _file(layout: str) -> tuple[MemoryBlockstore, CID]:
    if layout not in FILES:
        store = MemoryBlockstore()
        FILES[layout] = store, import_bytes(DATA, LAYOUTS[layout], store.put).cid
    return FILES[layout]


def _plan(layout: str, start: int, stop: int, window: int,
          with_blocks: bool = False) -> tuple[MemoryBlockstore, CID, FilePlan]:
    store, root = _file(layout)
    node = dagpb.decode(store.get(root))
    assert node.data is not None
    return store, root, FilePlan(node, unixfs.decode(node.data), start, stop, window,
                                 with_blocks=with_blocks)


def _drive(store: MemoryBlockstore, plan: FilePlan, rng: random.Random) -> list[object]:
    """What `walk._follow` does, with blocks arriving in a random order."""
    out: list[object] = []
    outstanding: list[CID] = []
    for _ in range(100_000):
        outstanding += plan.wants()
        rng.shuffle(outstanding)
        for _ in range(rng.randrange(len(outstanding) + 1)):
            cid = outstanding.pop()
            if plan.expects(cid):
                plan.arrived(cid, store.get(cid))
        step = plan.step()
        if step is None:
            return out
        if isinstance(step, CID):
            plan.supply(store.get(step))
        else:
            out.append(step)
    raise AssertionError("the plan never ended")


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_any_range_comes_out_whole_and_in_order(layout, data):
    start = data.draw(st.integers(0, len(DATA)))
    stop = data.draw(st.integers(start, len(DATA)))
    window = data.draw(st.sampled_from([1, 99, 250, 1000, 10**6]))
    store, _, plan = _plan(layout, start, stop, window)
    pieces = _drive(store, plan, random.Random(data.draw(st.integers(0, 2**32))))
    assert b"".join(pieces) == DATA[start:stop]  # type: ignore[arg-type]


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_with_blocks_yields_the_dag_below_the_root_depth_first(layout):
    store, root, plan = _plan(layout, 0, len(DATA), 1000, with_blocks=True)
    got = _drive(store, plan, random.Random(1))
    expected = [(cid, block) for cid, block in walk(store.get, root)][1:]
    assert got == expected


@pytest.mark.parametrize("layout", ["v1 raw leaves", "v0 dag-pb leaves"])
def test_a_response_that_sends_nothing_wants_only_its_window(layout):
    """Every wanted block is delivered at once (interior nodes expand), yet the leaves wanted
    stay within the window; as the response sends, the window moves and no further."""
    window = 1000
    store, _, plan = _plan(layout, 0, len(DATA), window)
    leaf_bytes = 0

    def deliver_all() -> None:
        nonlocal leaf_bytes
        while wants := plan.wants():
            for cid in wants:
                block = store.get(cid)
                if plan.expects(cid):
                    plan.arrived(cid, block)
                if cid.codec == Codec.RAW:
                    leaf_bytes += len(block)
                    continue
                node = dagpb.decode(block)
                if not node.links:
                    assert node.data is not None
                    leaf_bytes += len(unixfs.decode(node.data).data or b"")

    deliver_all()
    assert window <= leaf_bytes <= window + CHUNK
    sent = 0
    while (step := plan.step()) is not None:
        if isinstance(step, CID):
            plan.supply(store.get(step))
            continue
        assert isinstance(step, bytes)
        sent += len(step)
        deliver_all()
        assert leaf_bytes - sent <= window + CHUNK
    assert sent == len(DATA) and leaf_bytes == len(DATA)


def test_an_interior_node_that_arrives_early_has_its_children_wanted_at_once():
    store, _, plan = _plan("v1 raw leaves", 0, len(DATA), 10**6)
    first = plan.wants()
    interior = [cid for cid in first if cid.codec == Codec.DAG_PB]
    assert interior and all(c.codec == Codec.DAG_PB for c in first)  # the root's links only
    last = interior[-1]  # the walk is far from it: it has sent nothing
    assert plan.expects(last)
    plan.arrived(last, store.get(last))
    assert plan.wants() == [link.cid for link in dagpb.decode(store.get(last)).links]
    assert not plan.expects(last)


def test_a_link_to_something_that_is_not_file_data_is_a_decode_error():
    store = MemoryBlockstore()
    leaf = CID.of(b"x" * 10, Codec.RAW)
    store.put(leaf, b"x" * 10)
    directory = dagpb.encode(dagpb.Node(data=unixfs.encode(
        unixfs.UnixFSData(type=unixfs.DataType.DIRECTORY))))
    odd = CID.of(directory, Codec.DAG_PB)
    data = unixfs.UnixFSData(type=unixfs.DataType.FILE, blocksizes=(10, 10))
    node = dagpb.Node(links=(dagpb.Link(leaf, "", 10), dagpb.Link(odd, "", 10)),
                      data=unixfs.encode(data))
    plan = FilePlan(node, data, 0, 20, 100)
    assert plan.wants() == [leaf, odd]
    with pytest.raises(DecodeError):
        plan.arrived(odd, directory)
