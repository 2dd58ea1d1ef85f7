"""A running data-plane node: the libp2p host, the Bitswap engines and the repo, wired together."""

from blockmesh.data.node.node import FetchStalled, Node

__all__ = ["FetchStalled", "Node"]
