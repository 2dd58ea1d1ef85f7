"""`get` against hostile DAGs: every crafted tree is written inside its destination or refused,
and nothing outside the destination is created, changed or followed."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from crafted_dag import CraftedDag

from blockmesh.data.cid import CID, Codec
from blockmesh.data.dag import exporter
from blockmesh.data.dag.exporter import ExportError, UnsafeEntry
from blockmesh.errors import NotFound


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """tmp/outside holds what an attack would want to reach; tmp/work is where `out` goes."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "victim.txt").write_bytes(b"precious")
    (tmp_path / "work").mkdir()
    return tmp_path


def snapshot(root: Path, skip: Path) -> dict[str, object]:
    """Every path under `root` but `skip`, with its bytes, link target or 'dir'."""
    seen: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        if path == skip or skip in path.parents:
            continue
        if path.is_symlink():
            seen[str(path)] = ("link", os.readlink(path))
        elif path.is_dir():
            seen[str(path)] = "dir"
        else:
            seen[str(path)] = path.read_bytes()
    return seen


def export(site: Path, dag: CraftedDag, root: CID) -> Path:
    """Write `root` to work/out; assert nothing else under the site moved, whatever happened."""
    out = site / "work" / "out"
    before = snapshot(site, out)
    try:
        return exporter.write_tree(dag.store.get, root, out)
    finally:
        assert snapshot(site, out) == before
        assert not [p.name for p in (site / "work").iterdir()
                    if p.name.startswith(exporter.STAGING_PREFIX)]


def refused(site: Path, dag: CraftedDag, root: CID, pattern: str) -> None:
    with pytest.raises(UnsafeEntry, match=pattern):
        export(site, dag, root)
    assert not os.path.lexists(site / "work" / "out")  # a failed export leaves no final name


def test_entry_named_like_a_temporary_file_captures_nothing(site):
    # The old writer put "f" through "f.part"; a symlink of that name sent the bytes outside.
    dag = CraftedDag()
    victim = str(site / "outside" / "victim.txt")
    root = dag.directory([("f.part", dag.symlink(victim)), ("f", dag.file(b"payload")),
                          (f"{exporter.STAGING_PREFIX}0", dag.symlink(victim)),
                          ("root", dag.symlink(str(site / "outside"))),
                          ("g", dag.file(b"second"))])
    out = export(site, dag, root)
    assert (out / "f").read_bytes() == b"payload" and not (out / "f").is_symlink()
    assert os.readlink(out / "f.part") == victim
    assert (out / "g").read_bytes() == b"second"
    assert (site / "outside" / "victim.txt").read_bytes() == b"precious"


def test_duplicate_name_symlink_then_directory_is_refused(site):
    dag = CraftedDag()
    inner = dag.directory([("evil", dag.file(b"pwned"))])
    root = dag.directory([("d", dag.symlink(str(site / "outside"))), ("d", inner)])
    refused(site, dag, root, r"'d'.*appears twice")


def test_duplicate_file_names_are_refused(site):
    dag = CraftedDag()
    root = dag.directory([("x", dag.file(b"1")), ("x", dag.file(b"2"))])
    refused(site, dag, root, r"'x'.*appears twice")


@pytest.mark.parametrize(("name", "why"), [
    ("..", "is '..'"), (".", "is '.'"), ("", "is empty"),
    ("a/b", "contains '/'"), ("../outside/victim.txt", "contains '/'"),
    ("/abs", "contains '/'"), ("nul\0name", "contains NUL"),
    ("x" * 256, "longer than 255 bytes"),
])
def test_unsafe_names_are_refused_and_named(site, name, why):
    dag = CraftedDag()
    sub = dag.directory([("ok", dag.file(b"fine")), (name, dag.file(b"pwned"))])
    root = dag.directory([("sub", sub)])
    with pytest.raises(UnsafeEntry) as caught:
        export(site, dag, root)
    message = str(caught.value)
    assert repr(name) in message and why in message and str(sub) in message
    assert "out/sub" in message  # where in the tree it was met
    assert not os.path.lexists(site / "work" / "out")


def test_absolute_symlink_then_a_file_under_it_is_refused(site):
    dag = CraftedDag()
    root = dag.directory([("a", dag.symlink(str(site / "outside"))),
                          ("a/victim.txt", dag.file(b"pwned"))])
    refused(site, dag, root, r"'a/victim.txt'.*contains '/'")


def test_symlinks_are_written_as_stored_and_never_followed(site):
    dag = CraftedDag()
    absolute, climbing = str(site / "outside"), "../../outside/victim.txt"
    root = dag.directory([("abs", dag.symlink(absolute)), ("up", dag.symlink(climbing)),
                          ("sub", dag.directory([("f", dag.file(b"inside"))]))])
    out = export(site, dag, root)
    assert os.readlink(out / "abs") == absolute and os.readlink(out / "up") == climbing
    assert (out / "sub" / "f").read_bytes() == b"inside"


def test_a_symlink_root_becomes_a_symlink(site):
    dag = CraftedDag()
    out = export(site, dag, dag.symlink("/etc/passwd"))
    assert out.is_symlink() and os.readlink(out) == "/etc/passwd"


@pytest.mark.parametrize("target", [b"", b"a\0b", b"x" * 4096])
def test_symlink_targets_symlink2_cannot_take_are_refused(site, target):
    dag = CraftedDag()
    refused(site, dag, dag.directory([("l", dag.symlink(target))]), r"symlink .*target")


def test_a_failed_export_leaves_nothing_behind(site):
    dag = CraftedDag()
    absent = CID.of(b"never stored", Codec.RAW)
    root = dag.directory([("good", dag.file(b"1" * 5000)),
                          ("sub", dag.directory([("missing", absent)]))])
    with pytest.raises(NotFound):
        export(site, dag, root)
    assert list((site / "work").iterdir()) == []


def test_destination_policy(site):
    dag = CraftedDag()
    file_root = dag.file(b"data")
    work = site / "work"
    # an existing directory receives the root under its CID, as `cp` would
    assert exporter.destination(work, file_root) == work / str(file_root)
    assert exporter.write_tree(dag.store.get, file_root, work) == work / str(file_root)
    assert (work / str(file_root)).read_bytes() == b"data"
    # anything else that exists is refused and left alone
    (work / "mine").write_bytes(b"mine")
    (work / "link").symlink_to(site / "outside")
    for taken in (work / "mine", work / "link", work / str(file_root)):
        for check in (lambda p: exporter.destination(p, file_root),
                      lambda p: exporter.write_tree(dag.store.get, file_root, p)):
            with pytest.raises(ExportError, match=f"{re.escape(str(taken))} already exists"):
                check(taken)
    assert (work / "mine").read_bytes() == b"mine"
    assert os.readlink(work / "link") == str(site / "outside")
    # the parent of a new path must exist; the message names the path as given
    for missing in (Path("/no/such/dir/x"), work / "mine" / "x"):
        with pytest.raises(ExportError, match=f"cannot write {re.escape(str(missing))}"):
            exporter.write_tree(dag.store.get, file_root, missing)
    assert sorted(p.name for p in work.iterdir()) == sorted(["mine", "link", str(file_root)])


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_what_appears_at_the_final_name_meanwhile_is_never_replaced(site, kind):
    dag = CraftedDag()
    content = dag.file(b"from the dag")
    root = content if kind == "file" else dag.directory([("f", content)])
    out = site / "work" / "out"

    def fetch(cid: CID) -> bytes:  # someone takes the name while the export is running
        if cid == content and not out.exists():
            out.write_bytes(b"mine")
        return dag.store.get(cid)

    with pytest.raises(ExportError, match="already exists"):
        exporter.write_tree(fetch, root, out)
    assert out.read_bytes() == b"mine"
    assert [p.name for p in (site / "work").iterdir()] == ["out"]
