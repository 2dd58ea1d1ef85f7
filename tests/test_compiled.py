"""The mypyc build's bookkeeping: which modules count as compiled, when a build is stale, and
that the package itself refuses a stale build at import. Nothing here compiles: extensions are
empty files whose times the tests set, in trees of their own."""

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

from blockmesh.compiled import MODULES, SRC, StaleBuildError, compiled, refuse_stale, stale


def extension(module: Path) -> Path:
    return module.with_name(module.stem + EXTENSION_SUFFIXES[0])


def test_an_extension_older_than_its_source_is_stale(tmp_path):
    module = tmp_path / MODULES[0]
    module.parent.mkdir(parents=True)
    module.write_text("x = 1\n")
    assert compiled(tmp_path) == [] and stale(tmp_path) == []
    ext = extension(module)
    ext.write_bytes(b"")
    os.utime(ext, (1_000, 1_000))
    assert compiled(tmp_path) == [MODULES[0]]
    assert stale(tmp_path) == [MODULES[0]]
    with pytest.raises(StaleBuildError) as refused:
        refuse_stale(tmp_path)
    assert MODULES[0] in str(refused.value)
    assert "make install" in str(refused.value)
    assert "python -m blockmesh.compiled clean" in str(refused.value)
    os.utime(ext, None)
    os.utime(module, (1_000, 1_000))
    assert stale(tmp_path) == []
    refuse_stale(tmp_path)


def test_extensions_without_sources_are_an_install_not_a_stale_build(tmp_path):
    """A package installed with its extensions only has nothing newer to run."""
    for m in MODULES:
        ext = extension(tmp_path / m)
        ext.parent.mkdir(parents=True, exist_ok=True)
        ext.write_bytes(b"")
        os.utime(ext, (1_000, 1_000))
    assert compiled(tmp_path) == list(MODULES)
    assert stale(tmp_path) == []
    refuse_stale(tmp_path)


def test_every_compiled_module_is_under_a_package_that_checks():
    """blockmesh.control and blockmesh.data run the check on import, each for the modules
    beneath it, so a module elsewhere would never be checked."""
    assert all(m.startswith(("blockmesh/control/", "blockmesh/data/")) for m in MODULES)


def test_each_package_checks_only_its_own_modules(tmp_path):
    data = next(m for m in MODULES if m.startswith("blockmesh/data/"))
    module = tmp_path / data
    module.parent.mkdir(parents=True)
    module.write_text("x = 1\n")
    ext = extension(module)
    ext.write_bytes(b"")
    os.utime(ext, (1_000, 1_000))
    assert stale(tmp_path) == [data]
    assert stale(tmp_path, "blockmesh/data/") == [data]
    assert stale(tmp_path, "blockmesh/control/") == []
    refuse_stale(tmp_path, "blockmesh/control/")
    with pytest.raises(StaleBuildError):
        refuse_stale(tmp_path, "blockmesh/data/")


def test_the_makefile_rebuilds_when_any_compiled_module_changes():
    """`make install` rebuilds the extensions only when a prerequisite of the stamp changed:
    every compiled module must be one (make's database, as make itself reads the Makefile)."""
    root = SRC.parent
    if not (root / "Makefile").exists() or shutil.which("make") is None:
        pytest.skip("no Makefile or no make here (an installed package)")
    database = subprocess.run(["make", "-pn", "-C", str(root), "--no-print-directory", "lint"],
                              capture_output=True, text=True, timeout=60, check=False).stdout
    rule = next(line for line in database.splitlines() if line.startswith(".venv/.compiled:"))
    prerequisites = set(rule.split(":", 1)[1].split())
    assert {f"src/{m}" for m in MODULES} <= prerequisites


def _stale_copy(
    tmp_path: Path, module: str,
) -> tuple[Path, Callable[..., subprocess.CompletedProcess[str]]]:
    """A copy of the package under tmp_path whose `module` has an extension older than its
    source, and a runner of Python against that copy (its repo under tmp_path too)."""
    src = tmp_path / "src"
    shutil.copytree(SRC / "blockmesh", src / "blockmesh",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    ext = extension(src / module)
    ext.write_bytes(b"not an extension: loading it would fail differently")
    os.utime(ext, (1_000, 1_000))
    env = dict(os.environ, PYTHONPATH=str(src), BLOCKMESH_PATH=str(tmp_path / "repo"))

    def python(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                              timeout=120, cwd=tmp_path)

    return ext, python


def test_importing_the_control_plane_refuses_a_stale_build(tmp_path):
    """A copy of the package with one stale extension: importing the consensus package (as the
    daemon and sim_seeds.py do) and a cluster command fail, naming the module and the fix,
    before the extension could load; offline data commands still run (the data plane checks
    only its own modules); without the extension the import works."""
    engine = "blockmesh/control/consensus/engine.py"
    ext, python = _stale_copy(tmp_path, engine)
    imported = python("-c", "import blockmesh.control.consensus")
    assert imported.returncode == 1
    assert "StaleBuildError" in imported.stderr and engine in imported.stderr
    assert "make install" in imported.stderr
    cluster = python("-m", "blockmesh.cli", "cluster", "peers", "ls")
    assert cluster.returncode == 1
    assert cluster.stderr.strip().splitlines() == [
        f"Error: mypyc-compiled modules are older than their source ({engine}), so Python "
        "would run their old code: rebuild with `make install` or drop the extensions with "
        "`python -m blockmesh.compiled clean`"]
    status = python("-m", "blockmesh.compiled", "status")
    assert status.returncode == 0 and status.stdout.strip() == f"{engine}: stale"
    assert python("-m", "blockmesh.cli", "init").returncode == 0  # no control plane needed
    ext.unlink()
    assert python("-c", "import blockmesh.control.consensus").returncode == 0


def test_importing_the_data_plane_refuses_a_stale_build(tmp_path):
    """A copy of the package with a stale Bitswap codec extension: importing the Bitswap
    package (as every node does) fails, naming the module and the fix, before the extension
    could load; without the extension it works."""
    codec = "blockmesh/data/bitswap/message.py"
    assert codec in MODULES
    ext, python = _stale_copy(tmp_path, codec)
    imported = python("-c", "import blockmesh.data.bitswap")
    assert imported.returncode == 1
    assert "StaleBuildError" in imported.stderr and codec in imported.stderr
    assert "make install" in imported.stderr
    ext.unlink()
    assert python("-c", "import blockmesh.data.bitswap").returncode == 0
