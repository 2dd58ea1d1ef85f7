"""Run the `blockmesh` entry point in this process, stdin a real pipe as from a shell."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading

import pytest

from blockmesh.cli.main import main


def run_main(monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes],
             args: tuple[str, ...], stdin: bytes = b"") -> tuple[int, bytes, str]:
    """main() with `args`; stdin is a pipe (not seekable) fed `stdin` by a thread.
    Returns (exit status, stdout bytes, stderr text)."""
    read_fd, write_fd = os.pipe()
    feeder = threading.Thread(target=_feed, args=(write_fd, stdin), daemon=True)
    feeder.start()
    monkeypatch.setattr(sys, "argv", ["blockmesh", *args])
    code = 0
    with io.TextIOWrapper(os.fdopen(read_fd, "rb")) as pipe:
        monkeypatch.setattr(sys, "stdin", pipe)
        try:
            main()
        except SystemExit as exc:
            code = int(exc.code or 0)
    feeder.join(timeout=30)
    out = capsysbinary.readouterr()
    return code, out.out, out.err.decode()


def _feed(fd: int, data: bytes) -> None:
    with contextlib.suppress(BrokenPipeError), os.fdopen(fd, "wb") as out:
        out.write(data)
