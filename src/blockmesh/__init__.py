"""blockmesh: an IPFS-compatible data plane and a PBFT control plane in one daemon."""

__version__ = "0.1.0"
