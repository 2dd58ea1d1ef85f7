"""The hot paths compiled by mypyc: which modules, how to build them, whether a build is stale.

mypyc turns these typed modules into C extensions from the same source: there is one
implementation, and the package stays importable uncompiled. Two groups: the PBFT engine's
message handling (about twice as fast compiled) and the data plane's per-message code (protobuf
and varint codecs, CIDs, the Bitswap message codec and decision engine, the Yamux session).
`make install` runs `python -m blockmesh.compiled build`, which writes each extension beside
its .py under src/ (plus one shared library at src/'s top, as mypyc lays it out); Python
imports an extension in preference to the .py. So that an edited .py never runs as its old
compiled self (in the daemon, a benchmark or a test alike), importing `blockmesh.control` or
`blockmesh.data`, the packages the compiled modules live in, calls `refuse_stale()` for the
modules beneath it: it raises while `stale()` lists any, naming the fix (`make install`, or
`python -m blockmesh.compiled clean`). The check is a few stat calls, and an install that ships
extensions without their sources has nothing to compare and passes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

from blockmesh.errors import BlockmeshError

#: Modules compiled, by their path under src/ (protobuf classes and libsodium stay Python
#: objects to them). params.py is not: other modules read its dataclass defaults off the class,
#: which a compiled dataclass does not offer, and it is no hot path.
MODULES = (
    "blockmesh/control/consensus/engine.py",
    "blockmesh/control/consensus/messages.py",
    "blockmesh/control/consensus/authenticators.py",
    "blockmesh/control/consensus/log.py",
    "blockmesh/control/consensus/proofs.py",
    "blockmesh/control/consensus/view_sync.py",
    "blockmesh/control/consensus/view_timer.py",
    "blockmesh/control/consensus/view_change.py",
    "blockmesh/control/consensus/checkpoints.py",
    "blockmesh/control/consensus/state_transfer.py",
    "blockmesh/control/consensus/recovery.py",
    "blockmesh/control/consensus/outputs.py",
    "blockmesh/control/consensus/blocks.py",
    "blockmesh/control/consensus/client.py",
    "blockmesh/control/transport/framing.py",
    # The data plane: every Bitswap message, Yamux frame and CID passes through these.
    "blockmesh/data/varint.py",
    "blockmesh/data/pbwire.py",
    "blockmesh/data/cid.py",
    "blockmesh/data/dag/dagpb.py",
    "blockmesh/data/bitswap/wire.py",
    "blockmesh/data/bitswap/message.py",
    "blockmesh/data/bitswap/framing.py",
    "blockmesh/data/bitswap/envelope.py",
    "blockmesh/data/bitswap/ledger.py",
    "blockmesh/data/bitswap/taskqueue.py",
    "blockmesh/data/bitswap/linkorder.py",
    "blockmesh/data/bitswap/server.py",
    "blockmesh/data/net/yamux/frame.py",
    "blockmesh/data/net/yamux/window.py",
    "blockmesh/data/net/yamux/session.py",
)

SRC = Path(__file__).resolve().parent.parent


class CompiledBuildError(BlockmeshError):
    """mypyc failed: the modules stay uncompiled (and importable)."""


class StaleBuildError(BlockmeshError):
    """A compiled extension is older than its source: importing it would run the old code."""


def _extensions(source: Path) -> list[Path]:
    return [p for suffix in EXTENSION_SUFFIXES
            if (p := source.with_name(source.stem + suffix)).exists()]


def compiled(root: Path = SRC) -> list[str]:
    """The modules that have an extension beside their source."""
    return [m for m in MODULES if _extensions(root / m)]


def stale(root: Path = SRC, under: str = "") -> list[str]:
    """Compiled modules (those whose path starts with `under`) whose source changed after
    their extension was built. A module with no extension, or an extension with no source
    beside it (an install that ships only the extensions), is never stale. It runs at every
    import of blockmesh.control and blockmesh.data, so it lists each folder once and stats only
    the files there (no exception per missing extension)."""
    listings: dict[str, set[str]] = {}
    out = []
    for m in MODULES:
        if not m.startswith(under):
            continue
        folder, name = os.path.split(os.path.join(root, m))
        if folder not in listings:
            try:
                listings[folder] = set(os.listdir(folder))
            except FileNotFoundError:
                listings[folder] = set()
        present = listings[folder]
        built = [os.stat(os.path.join(folder, ext)).st_mtime_ns
                 for suffix in EXTENSION_SUFFIXES if (ext := name[:-3] + suffix) in present]
        if built and name in present \
                and min(built) < os.stat(os.path.join(folder, name)).st_mtime_ns:
            out.append(m)
    return out


def refuse_stale(root: Path = SRC, under: str = "") -> None:
    """Raise StaleBuildError, naming the modules and the fix, if the build of the modules
    under `under` is stale. Each package checks only its own modules, so that offline data
    commands still run beside a stale control plane."""
    found = stale(root, under)
    if found:
        raise StaleBuildError(
            f"mypyc-compiled modules are older than their source ({', '.join(found)}), so "
            "Python would run their old code: rebuild with `make install` or drop the "
            "extensions with `python -m blockmesh.compiled clean`")


def clean() -> None:
    """Remove every extension mypyc wrote, so the plain modules run, and the Makefile's stamp
    (`.venv/.compiled`), so that the next `make install` builds them again."""
    (Path(sys.prefix) / ".compiled").unlink(missing_ok=True)
    for m in MODULES:
        for ext in _extensions(SRC / m):
            ext.unlink()
    for shared in SRC.glob("*__mypyc*"):
        shared.unlink()


def build() -> None:
    """Compile MODULES in place with mypyc (gcc from the machine, via setuptools)."""
    clean()
    command = [sys.executable, "-m", "mypyc", "--ignore-missing-imports",
               "--follow-imports=silent", *MODULES]
    done = subprocess.run(command, cwd=SRC, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        clean()
        raise CompiledBuildError(f"mypyc failed:\n{done.stdout[-4000:]}{done.stderr[-4000:]}")
    # setuptools copies an extension it found up to date in build/ with its old time (after an
    # edit that left the generated C alone, a comment say), which `stale` would then report
    for m in MODULES:
        for ext in _extensions(SRC / m):
            ext.touch()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["build"]:
        try:
            build()
        except CompiledBuildError as exc:
            print(exc, file=sys.stderr)
            return 1
        print(f"compiled {len(compiled())} modules with mypyc")
        return 0
    if args == ["clean"]:
        clean()
        return 0
    if args == ["status"]:
        print("\n".join(f"{m}: {'stale' if m in stale() else 'compiled'}" for m in compiled())
              or "nothing compiled")
        return 0
    print("usage: python -m blockmesh.compiled build|clean|status", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
