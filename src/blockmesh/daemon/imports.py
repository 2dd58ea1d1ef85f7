"""`add` flags resolved against the repo's `[import]` defaults, in one place for the `add` and
`cluster/add` routes (the config of the repo that imports is the one that applies)."""

from __future__ import annotations

from blockmesh.data.cid import hash_from_name
from blockmesh.data.dag.chunker import parse_chunker
from blockmesh.data.dag.importer import ImportOptions
from blockmesh.data.store.config import ImportConfig


def import_options(defaults: ImportConfig | None, *, cid_version: int | None = None,
                   raw_leaves: bool | None = None, chunker: str | None = None,
                   trickle: bool = False, hash_name: str | None = None,
                   hidden: bool = False) -> ImportOptions:
    defaults = defaults or ImportConfig()
    return ImportOptions(
        cid_version=defaults.cid_version if cid_version is None else cid_version,
        raw_leaves=raw_leaves,
        chunk_size=parse_chunker(chunker or defaults.chunker),
        trickle=trickle,
        hash_code=hash_from_name(hash_name or defaults.hash),
        hidden=hidden,
    )
