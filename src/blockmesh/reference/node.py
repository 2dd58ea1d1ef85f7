"""Running a JS reference script under node: a JSON job on stdin, JSON on stdout, bounded.

Both JS references (the UnixFS importer and the dag-cbor codec) are run this way, so a hung or
chatty script fails the same, typed way whichever one it is.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from blockmesh.errors import BlockmeshError

_STDERR_TAIL = 2000


def run_json(binary: str, script: Path, job: Any, *, timeout: float, max_reply: int, what: str,
             error: type[BlockmeshError], unavailable: type[BlockmeshError]) -> Any:
    """Run `script` with `job` on stdin and return its parsed JSON reply; `error` (or
    `unavailable` when node cannot start) names what failed as `what`."""
    try:
        done = subprocess.run([binary, str(script)], input=json.dumps(job).encode(),
                              capture_output=True, timeout=timeout, cwd=script.parent,
                              check=False)
    except subprocess.TimeoutExpired as exc:  # subprocess.run has killed node by then
        raise error(f"{what} gave no answer within {timeout:g} s") from exc
    except OSError as exc:
        raise unavailable(f"cannot start {binary}: {exc}") from exc
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace")[-_STDERR_TAIL:].strip()
        raise error(f"{what} exited with status {done.returncode}: {tail}")
    if len(done.stdout) > max_reply:
        raise error(f"{what} wrote {len(done.stdout)} bytes, more than its answer can be")
    try:
        return json.loads(done.stdout)
    except ValueError as exc:
        raise error(f"{what} output is not JSON: {exc}") from exc
