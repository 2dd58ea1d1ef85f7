"""The repo routes as the daemon runs them: every block a route stores is announced (the daemon
passes these on to peers that want them), and nothing else is."""

from __future__ import annotations

import io
from pathlib import Path

from blockmesh.daemon.dispatch import PREFIX
from blockmesh.daemon.http import JsonReply
from blockmesh.daemon.repo_routes import RepoApi
from blockmesh.data.cid import CID
from blockmesh.data.dag.car import write_car
from blockmesh.data.store.repo import Repo


async def test_stored_blocks_are_announced(tmp_path: Path) -> None:
    announced: list[CID] = []
    with Repo.init(tmp_path / "repo") as repo:
        api = RepoApi(repo, announce=announced.extend)

        async def call(command: str, **body: object) -> object:
            reply = await api.handle(PREFIX + command, body)
            assert isinstance(reply, JsonReply) and reply.status == 200, reply
            return reply.value

        (tmp_path / "block").write_bytes(b"a block")
        stored = await call("block/put", path=str(tmp_path / "block"))
        assert announced == [CID.of(b"a block")] and stored["Key"] == str(announced[0])

        announced.clear()
        (tmp_path / "doc.json").write_bytes(b'{"a": 1}')
        doc = await call("dag/put", path=str(tmp_path / "doc.json"))
        assert [str(c) for c in announced] == [doc["Cid"]]

        announced.clear()
        (tmp_path / "file").write_bytes(b"x" * 600_000)
        added = await call("add", paths=[str(tmp_path / "file")], chunker="size-262144")
        assert len(announced) == 4 and str(announced[-1]) == added[-1]["Hash"]
        announced.clear()
        await call("add", paths=[str(tmp_path / "file")], only_hash=True)
        assert announced == []

        car = io.BytesIO()
        blocks = [(CID.of(b"in a car"), b"in a car")]
        write_car(car, [blocks[0][0]], blocks)
        (tmp_path / "x.car").write_bytes(car.getvalue())
        await call("dag/import", paths=[str(tmp_path / "x.car")])
        assert announced == [blocks[0][0]]

        announced.clear()
        for command, body in (("block/stat", {"cid": doc["Cid"]}),
                              ("block/rm", {"cids": [stored["Key"]]}),
                              ("pin/rm", {"cids": [added[-1]["Hash"]]}), ("repo/gc", {})):
            await call(command, **body)
        assert announced == []


async def test_add_and_pin_hand_their_roots_to_the_content_routing(tmp_path: Path) -> None:
    provided: list[CID] = []
    with Repo.init(tmp_path / "repo") as repo:
        api = RepoApi(repo, provide=provided.extend)

        async def call(command: str, **body: object) -> object:
            reply = await api.handle(PREFIX + command, body)
            assert isinstance(reply, JsonReply) and reply.status == 200, reply
            return reply.value

        (tmp_path / "a").write_bytes(b"x" * 600_000)
        (tmp_path / "b").write_bytes(b"small")
        added = await call("add", paths=[str(tmp_path / "a"), str(tmp_path / "b")],
                           chunker="size-262144")
        assert [str(c) for c in provided] == [added[0]["Hash"], added[1]["Hash"]]  # roots only
        provided.clear()
        await call("add", paths=[str(tmp_path / "a")], only_hash=True)
        (tmp_path / "block").write_bytes(b"a block")
        stored = await call("block/put", path=str(tmp_path / "block"))
        assert provided == []  # nothing stored, or no root a user named
        await call("pin/add", cids=[stored["Key"]])
        assert [str(c) for c in provided] == [stored["Key"]]
