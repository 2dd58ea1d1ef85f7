"""blockmesh: an IPFS-compatible data plane and a PBFT control plane in one daemon."""

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """`blockmesh.Node` without importing py-libp2p for every `import blockmesh`."""
    if name == "Node":
        from blockmesh.data.node import Node

        return Node
    raise AttributeError(f"module 'blockmesh' has no attribute {name!r}")
