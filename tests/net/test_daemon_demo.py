"""`blockmesh demo --p2p` really moves "Hello from Alice!" from Alice to Bob (the default demo,
the member cluster, is what tests/daemon/test_member_cluster.py exercises)."""

import subprocess
import sys


def test_demo_prints_what_bob_fetched():
    proc = subprocess.run([sys.executable, "-m", "blockmesh.cli", "demo", "--p2p"],
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode()
    assert 'Bob retrieved: "Hello from Alice!"' in out
    bob = out.split("Bob's stats:")[1]
    assert "Blocks received: 1" in bob and "Connected peers: 1" in bob


def test_demo_mesh_moves_the_file_to_every_node():
    proc = subprocess.run([sys.executable, "-m", "blockmesh.cli", "demo", "--nodes", "3",
                           "--file-mib", "1"], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    lines = proc.stdout.decode().splitlines()
    assert sum(line.startswith(("node 1:", "node 2:")) for line in lines) == 2
