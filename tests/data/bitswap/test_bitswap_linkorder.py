"""Walk-order hints: a batch of wanted siblings goes out in link order, whatever its priorities."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from server_harness import drain

from blockmesh.data.bitswap import DecisionEngine, Entry, Message, WantType
from blockmesh.data.bitswap.linkorder import LinkOrder
from blockmesh.data.cid import CID, Codec
from blockmesh.data.dag import dagpb
from blockmesh.data.store.memory import MemoryBlockstore


def _leaf(i: int, size: int = 3000) -> tuple[CID, bytes]:
    data = dagpb.encode(dagpb.Node(data=bytes([i % 256]) * size + i.to_bytes(4, "big")))
    return CID.of(data, version=0, codec=Codec.DAG_PB), data


def _parent(children: list[CID]) -> tuple[CID, bytes]:
    data = dagpb.encode(dagpb.Node(links=tuple(dagpb.Link(c, "", 1) for c in children),
                                   data=b"\x08\x02"))
    return CID.of(data, version=0, codec=Codec.DAG_PB), data


def test_priorities_follow_link_order_and_unknown_cids_keep_theirs():
    leaves = [_leaf(i)[0] for i in range(6)]
    order = LinkOrder(100)
    order.learn(*_parent(leaves[:5]))
    stranger = leaves[5]
    cids = [leaves[3], stranger, leaves[0], leaves[4], leaves[1]]
    assert order.priorities(cids, [50, 7, 40, 30, 20]) == [30, 7, 50, 20, 40]


def test_nested_positions_compare_depth_first():
    leaves = [_leaf(i)[0] for i in range(4)]
    left, left_data = _parent(leaves[:2])
    right, right_data = _parent(leaves[2:])
    root, root_data = _parent([left, right])
    order = LinkOrder(100)
    order.learn(root, root_data)
    order.learn(right, right_data)  # the right subtree arrives first: order must not care
    order.learn(left, left_data)
    assert order.priorities(leaves[::-1], [4, 3, 2, 1]) == [1, 2, 3, 4]


def test_leaves_raw_blocks_and_garbage_teach_nothing():
    order = LinkOrder(100)
    order.learn(*_leaf(1))
    order.learn(CID.of(b"\x12raw"), b"\x12raw")
    order.learn(CID.of(b"\x12\x05bad", version=0, codec=Codec.DAG_PB), b"\x12\x05bad")
    assert len(order) == 0


def test_bounded_oldest_forgotten():
    leaves = [_leaf(i)[0] for i in range(10)]
    order = LinkOrder(4)
    order.learn(*_parent(leaves))  # a parent wider than the table: its first links are kept
    assert len(order) == 4
    assert order.priorities(leaves[:6], [1, 2, 3, 4, 5, 6]) == [4, 3, 2, 1, 5, 6]
    order.learn(*_parent(leaves[6:9]))  # a second parent pushes out the oldest positions
    assert len(order) == 4
    assert order.priorities([leaves[1], leaves[0]], [1, 2]) == [1, 2]
    assert order.priorities([leaves[8], leaves[3]], [1, 2]) == [1, 2]  # first parent first


@given(st.lists(st.integers(0, 2**31 - 1), min_size=0, max_size=12), st.randoms())
def test_priorities_are_a_permutation(priorities, rnd):
    leaves = [_leaf(i, 10)[0] for i in range(12)]
    order = LinkOrder(8)
    order.learn(*_parent(leaves))
    cids = rnd.sample(leaves, len(priorities))
    assert sorted(order.priorities(cids, priorities)) == sorted(priorities)


def _drain_blocks(engine: DecisionEngine) -> list[CID]:
    return [b.cid for env in drain(engine) for b in env.message.blocks]


def test_server_sends_wanted_siblings_in_walk_order_to_the_peer_it_sent_the_parent():
    store = MemoryBlockstore()
    leaves = [_leaf(i) for i in range(8)]
    for cid, data in leaves:
        store.put(cid, data)
    parent, parent_data = _parent([cid for cid, _ in leaves])
    store.put(parent, parent_data)
    engine = DecisionEngine(store)
    shuffled = [5, 1, 7, 0, 3, 6, 2, 4]  # priorities as a Go map walk might hand them out
    for peer in ("knows-parent", "stranger"):
        engine.peer_connected(peer)
    engine.message_received("knows-parent", Message((Entry(parent, 9),)))
    assert _drain_blocks(engine) == [parent]
    for peer in ("knows-parent", "stranger"):
        wants = tuple(Entry(leaves[i][0], 100 + p, want_type=WantType.BLOCK)
                      for i, p in enumerate(shuffled))
        engine.message_received(peer, Message(wants))
        sent = _drain_blocks(engine)
        if peer == "knows-parent":
            assert sent == [cid for cid, _ in leaves]
        else:  # nothing known: the peer's own priorities decide
            by_priority = sorted(range(8), key=lambda i: -shuffled[i])
            assert sent == [leaves[i][0] for i in by_priority]
