"""A throw-away network of Linux network namespaces for tests: members on a bridge, not loopback.

Each member gets a namespace of its own (`PREFIX-mK`) holding loopback and `eth0`, one end of a
veth pair whose other end (`vK`) sits on the bridge `br0` in one more namespace (`PREFIX-br`).
Nothing is created in the root namespace, so the host's own interfaces, routes and firewall are
never touched, and the addresses (10.231.0.0/24) exist only on the links made here: a member can
reach the other members and nothing else.

Links are degraded where real networks are: iptables' `statistic` match drops a share of the
packets a member receives, `tbf` caps what it sends, and taking the bridge side of its veth down
cuts it off (a partition) until it is brought up again. `netem` is used only where the kernel has
it (`delay` says whether it could).

Every namespace carries the per-test prefix, so `remove(prefix)` finds and deletes all of them by
name, whatever state a failed test left them in; it is what `NetnsLab.close` runs.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
from dataclasses import dataclass

SUBNET = "10.231.0"
PREFIX_LEN = 24
COMMAND_TIMEOUT = 15.0  # one `ip`/`tc`/`iptables` call


class NetnsError(Exception):
    """A namespace command failed (its stderr says why)."""


def unavailable() -> str | None:
    """Why namespaces cannot be made here (for a skip), or None when they can."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "tc", "iptables"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (make install brings iptables from Debian)"
    probe = f"bmprobe{secrets.token_hex(4)}"
    try:
        run("ip", "netns", "add", probe)
    except NetnsError as exc:
        return f"cannot create a network namespace: {exc}"
    finally:
        remove(probe)
    return None


def run(*command: str) -> str:
    try:
        proc = subprocess.run(command, capture_output=True, timeout=COMMAND_TIMEOUT, text=True)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetnsError(f"{' '.join(command)}: {exc}") from None
    if proc.returncode != 0:
        raise NetnsError(f"{' '.join(command)}: {proc.stderr.strip()}")
    return proc.stdout


def namespaces(prefix: str) -> list[str]:
    """Namespaces named PREFIX or PREFIX-…, as `ip netns list` shows them now."""
    names = [line.split()[0] for line in run("ip", "netns", "list").splitlines() if line.strip()]
    return [n for n in names if n == prefix or n.startswith(prefix + "-")]


def remove(prefix: str) -> None:
    """Delete every namespace of `prefix`, after killing (by PID) what still runs inside them:
    only the test put processes there, and a namespace with a process left in it would outlive
    its name together with its links."""
    for name in namespaces(prefix):
        try:
            pids = [int(p) for p in run("ip", "netns", "pids", name).split()]
        except NetnsError:
            pids = []
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        run("ip", "netns", "del", name)


@dataclass
class NetnsLab:
    """`members` namespaces on one bridge; member k has address 10.231.0.(k + 1)."""

    members: int
    prefix: str = ""

    def __post_init__(self) -> None:
        if not self.prefix:
            # Unique per test and short: names show in `ip netns list` and must not collide
            # with another run's.
            self.prefix = f"bmt{os.getpid() % 100000}{secrets.token_hex(3)}"
        if not 1 <= self.members <= 250:
            raise ValueError("members must be 1..250 (one /24)")

    @property
    def bridge_ns(self) -> str:
        return f"{self.prefix}-br"

    def ns(self, k: int) -> str:
        return f"{self.prefix}-m{k}"

    def address(self, k: int) -> str:
        return f"{SUBNET}.{k + 1}"

    @property
    def addresses(self) -> list[str]:
        return [self.address(k) for k in range(self.members)]

    def exec_prefix(self, k: int) -> list[str]:
        """What runs a command inside member k's namespace."""
        return ["ip", "netns", "exec", self.ns(k)]

    def _in(self, k: int, *command: str) -> str:
        return run(*self.exec_prefix(k), *command)

    def open(self) -> NetnsLab:
        """Build the namespaces, the bridge and one veth pair per member; on any failure what
        was built is removed again."""
        try:
            run("ip", "netns", "add", self.bridge_ns)
            run("ip", "-n", self.bridge_ns, "link", "add", "br0", "type", "bridge")
            run("ip", "-n", self.bridge_ns, "link", "set", "br0", "up")
            for k in range(self.members):
                ns = self.ns(k)
                run("ip", "netns", "add", ns)
                run("ip", "-n", self.bridge_ns, "link", "add", f"v{k}", "type", "veth",
                    "peer", "name", "eth0", "netns", ns)
                run("ip", "-n", self.bridge_ns, "link", "set", f"v{k}", "master", "br0")
                run("ip", "-n", self.bridge_ns, "link", "set", f"v{k}", "up")
                run("ip", "-n", ns, "link", "set", "lo", "up")
                run("ip", "-n", ns, "addr", "add", f"{self.address(k)}/{PREFIX_LEN}", "dev",
                    "eth0")
                run("ip", "-n", ns, "link", "set", "eth0", "up")
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        remove(self.prefix)

    # ------------------------------------------------------------------ impairments

    def loss(self, k: int, probability: float) -> None:
        """Drop `probability` of the packets member k receives on its link, at random: one
        draw per packet between two members, whichever way it goes."""
        self._in(k, "iptables", "-A", "INPUT", "-i", "eth0", "-m", "statistic", "--mode",
                 "random", "--probability", f"{probability:g}", "-j", "DROP")

    def rate(self, k: int, rate: str, burst: str = "32kbit", latency: str = "400ms") -> None:
        """Cap what member k sends with a token bucket (tbf) as its link's root qdisc."""
        self._in(k, "tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", rate, "burst",
                 burst, "latency", latency)

    def delay(self, k: int, delay: str) -> bool:
        """Add `delay` to what member k sends with netem; False (and nothing changed) where
        the kernel has no netem. Not with `rate` on the same member: both are root qdiscs."""
        try:
            self._in(k, "tc", "qdisc", "add", "dev", "eth0", "root", "netem", "delay", delay)
        except NetnsError:
            return False
        return True

    def cut(self, k: int) -> None:
        """Partition member k: its bridge port goes down, as if its cable were pulled."""
        run("ip", "-n", self.bridge_ns, "link", "set", f"v{k}", "down")

    def heal(self, k: int) -> None:
        run("ip", "-n", self.bridge_ns, "link", "set", f"v{k}", "up")

    def dropped(self, k: int) -> int:
        """Packets the loss rule has dropped on member k so far."""
        out = self._in(k, "iptables", "-L", "INPUT", "-v", "-n", "-x")
        return sum(int(line.split()[0]) for line in out.splitlines()
                   if "statistic" in line and line.split()[0].isdigit())
