"""The gateway over real HTTP on 127.0.0.1: every status and header the path and trustless
gateway specs define for what blockmesh serves, against content the fixtures build."""

from __future__ import annotations

from gateway_fixtures import request


async def test_smoke(served, content):
    reply = await request(served.port, f"/ipfs/{content.hello}")
    assert reply.status == 200, reply.body
    assert reply.body == b"hello world\n"
    print(reply.headers)
