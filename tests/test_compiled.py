"""The mypyc build's bookkeeping: which modules count as compiled, and when a build is stale."""

import os
from importlib.machinery import EXTENSION_SUFFIXES

from blockmesh.compiled import MODULES, compiled, stale


def test_an_extension_older_than_its_source_is_stale(tmp_path):
    module = tmp_path / MODULES[0]
    module.parent.mkdir(parents=True)
    module.write_text("x = 1\n")
    assert compiled(tmp_path) == [] and stale(tmp_path) == []
    ext = module.with_name(module.stem + EXTENSION_SUFFIXES[0])
    ext.write_bytes(b"")
    os.utime(ext, (1_000, 1_000))
    assert compiled(tmp_path) == [MODULES[0]]
    assert stale(tmp_path) == [MODULES[0]]
    os.utime(ext, None)
    os.utime(module, (1_000, 1_000))
    assert stale(tmp_path) == []
