"""A fixed listen port held by another process is refused with a clear error."""

import socket

import pytest

from blockmesh.data.net import Host, Identity, NetConfig, NetError


async def test_busy_port_is_refused():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        host = Host(Identity.generate(), NetConfig(listen_addrs=(f"/ip4/127.0.0.1/tcp/{port}",)))
        with pytest.raises(NetError, match="already in use"):
            async with host.run():
                pass
