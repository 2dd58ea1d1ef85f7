"""The namespace helper builds what the netns test needs and leaves nothing behind."""

from __future__ import annotations

import subprocess
import sys

import pytest
from netns import NetnsError, NetnsLab, namespaces, unavailable


@pytest.fixture
def lab() -> NetnsLab:
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    return NetnsLab(2)


def test_members_reach_each_other_until_cut(lab: NetnsLab) -> None:
    lab.open()
    try:
        assert sorted(namespaces(lab.prefix)) == sorted([lab.bridge_ns, lab.ns(0), lab.ns(1)])
        listener = subprocess.Popen(
            [*lab.exec_prefix(1), sys.executable, "-c",
             "import socket; s = socket.create_server(('10.231.0.2', 9000)); "
             "print('up', flush=True); c, _ = s.accept(); c.sendall(c.recv(5))"],
            stdout=subprocess.PIPE, text=True)
        try:
            assert listener.stdout is not None and listener.stdout.readline() == "up\n"
            echo = ("import socket; c = socket.create_connection(('10.231.0.2', 9000), "
                    "timeout=2); c.sendall(b'hello'); print(c.recv(5).decode())")
            reply = subprocess.run([*lab.exec_prefix(0), sys.executable, "-c", echo],
                                   capture_output=True, text=True, timeout=30)
            assert reply.stdout == "hello\n", reply.stderr
        finally:
            listener.kill()
            listener.wait(10)
        lab.cut(1)
        cut = subprocess.run([*lab.exec_prefix(0), sys.executable, "-c", echo],
                             capture_output=True, text=True, timeout=30)
        assert cut.returncode != 0
        with pytest.raises(NetnsError, match="tbf"):
            lab.rate(0, "not-a-rate")
        # A process still running inside a namespace does not keep it alive past close().
        left = subprocess.Popen([*lab.exec_prefix(0), "sleep", "60"])
    finally:
        lab.close()
    assert namespaces(lab.prefix) == []
    assert left.wait(10) == -9
