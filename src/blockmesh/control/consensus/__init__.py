"""PBFT consensus: a sans-I/O replica engine, its stores, the client helper and the KV app."""

from blockmesh.control.consensus.app import Application, KeyValueApp
from blockmesh.control.consensus.client import PBFTClient
from blockmesh.control.consensus.engine import PBFTReplica
from blockmesh.control.consensus.outputs import (
    ClientReply,
    FetchState,
    Metric,
    Output,
    SaveBlock,
    SaveCheckpoint,
    SaveMessage,
    SavePrepared,
    SaveView,
    Send,
)
from blockmesh.control.consensus.params import PBFTParams
from blockmesh.control.consensus.store import (
    ConsensusStore,
    MemoryStore,
    RecoveredState,
    SqliteStore,
)

__all__ = [
    "Application",
    "ClientReply",
    "ConsensusStore",
    "FetchState",
    "KeyValueApp",
    "MemoryStore",
    "Metric",
    "Output",
    "PBFTClient",
    "PBFTParams",
    "PBFTReplica",
    "RecoveredState",
    "SaveBlock",
    "SaveCheckpoint",
    "SaveMessage",
    "SavePrepared",
    "SaveView",
    "Send",
    "SqliteStore",
]
