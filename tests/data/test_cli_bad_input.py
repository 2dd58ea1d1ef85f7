"""Hostile input to the dag and block commands: each is one line on stderr and exit status 1.

These run `blockmesh.cli.main.main` in this process (its error policy is what turns a typed error
into one line), which keeps a dozen commands fast; test_cli.py and test_store_limits.py run the
real process.
"""

from __future__ import annotations

import io
import struct

import pytest
from cli_runner import run_main

from blockmesh.data.cid import CID, Codec
from blockmesh.data.dag.car import CARV2_PRAGMA, write_car
from blockmesh.data.limits import MAX_BLOCK_SIZE
from blockmesh.data.store.repo import Repo

FLOAT_DOC_CID = "bafyreic6v65kiate4qj6lsdjvf2qjul5frowyn4kgtjp7fpbm7jjfz4mfm"  # JS codec's


@pytest.fixture
def cli(tmp_path, monkeypatch, capsysbinary):
    Repo.init(tmp_path / "repo").close()
    monkeypatch.setenv("BLOCKMESH_PATH", str(tmp_path / "repo"))

    def run(*args: str, stdin: bytes = b"") -> tuple[int, bytes, str]:
        """main() with `args`, stdin a real pipe (not seekable, as from a shell) fed `stdin`."""
        return run_main(monkeypatch, capsysbinary, args, stdin)

    return run


def _fails_in_one_line(result: tuple[int, bytes, str], *words: str) -> None:
    code, _, err = result
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("Error: "), err
    for word in words:
        assert word in lines[0], err


def test_dag_put_refuses_deep_and_non_model_json(cli):
    _fails_in_one_line(cli("dag", "put", stdin=b"[" * 100_000 + b"]" * 100_000), "nested")
    _fails_in_one_line(cli("dag", "put", stdin=b'{"a": [' * 300 + b"1" + b"]}" * 300), "nested")
    _fails_in_one_line(cli("dag", "put", stdin=b'{"a": NaN}'), "NaN")
    _fails_in_one_line(cli("dag", "put", stdin=b'{"a": 1e400}'), "NaN and infinities")
    _fails_in_one_line(cli("dag", "put", stdin=b'{"a": 1, "a": 2}'), "duplicate")
    _fails_in_one_line(cli("dag", "put", stdin=b'{"a": 18446744073709551616}'), "64 bits")
    _fails_in_one_line(cli("dag", "put", stdin=b'{"/": {"bytes": 5}}'), "bytes")
    _fails_in_one_line(cli("dag", "put", stdin=b'{"/": {"bytes": "!!"}}'), "base64")
    _fails_in_one_line(cli("dag", "put", stdin=b'"\\ud800"'), "surrogate")
    _fails_in_one_line(cli("dag", "put", "--input-codec", "dag-cbor",
                           stdin=bytes.fromhex("a16161f93e00")), "canonical")


def test_dag_put_writes_floats_as_the_reference_encoders_do(cli):
    code, out, _ = cli("dag", "put", stdin=b'{"a": 1.5}')
    assert code == 0 and out.decode().strip() == FLOAT_DOC_CID
    code, out, _ = cli("dag", "put", "--input-codec", "dag-cbor",
                       stdin=bytes.fromhex("a16161fb3ff8000000000000"))
    assert code == 0 and out.decode().strip() == FLOAT_DOC_CID  # float64 is accepted
    code, out, _ = cli("dag", "get", FLOAT_DOC_CID)
    assert code == 0 and out.decode().strip() == '{"a": 1.5}'


def test_dag_get_of_blocks_outside_the_data_model(cli, tmp_path):
    """Such blocks can arrive by CAR or Bitswap, which check hashes, not codecs."""
    bad = {"undefined": bytes.fromhex("a16161f7"), "simple": bytes.fromhex("f0"),
           "float16": bytes.fromhex("f93e00"), "bignum": bytes.fromhex("c24101")}
    cids = {name: CID.of(raw, Codec.DAG_CBOR) for name, raw in bad.items()}
    car = tmp_path / "bad.car"
    with open(car, "wb") as out:
        write_car(out, list(cids.values()), [(cids[name], raw) for name, raw in bad.items()])
    assert cli("dag", "import", "--no-pin-roots", str(car))[0] == 0
    for name, words in (("undefined", "undefined"), ("simple", "simple value"),
                        ("float16", "canonical"), ("bignum", "bignum")):
        _fails_in_one_line(cli("dag", "get", str(cids[name])), words)
    _fails_in_one_line(cli("dag", "import", str(car)), "undefined")  # pinning walks it


def test_dag_import_of_carv2_headers_with_impossible_offsets(cli, tmp_path):
    inner = io.BytesIO()
    write_car(inner, [CID.of(b"x")], [(CID.of(b"x"), b"x")])
    payload = inner.getvalue()
    for offset, size, index, words in (
            (2**64 - 1, len(payload), 0, "past the end"),
            (51, 2**64 - 1, 0, "past the end"),
            (51, len(payload), 52, "overlaps"),
            (50, len(payload), 0, "inside its header"),
            (51, 0, 0, "no CARv1 payload"),
            (51, len(payload) + 5, 0, "past the end")):
        car = tmp_path / "v2.car"
        car.write_bytes(CARV2_PRAGMA + struct.pack("<16sQQQ", b"\x00" * 16, offset, size, index)
                        + payload)
        _fails_in_one_line(cli("dag", "import", str(car)), words)
    # from a pipe the file's size is unknown: a huge offset is padding that never comes
    header = struct.pack("<16sQQQ", b"\x00" * 16, 2**40, len(payload), 0)
    _fails_in_one_line(cli("dag", "import", "-", stdin=CARV2_PRAGMA + header + payload),
                       "padding")
    header = struct.pack("<16sQQQ", b"\x00" * 16, 51, len(payload) + 9, 0)
    _fails_in_one_line(cli("dag", "import", "-", stdin=CARV2_PRAGMA + header + payload),
                       "truncated")
    header = struct.pack("<16sQQQ", b"\x00" * 16, 51, len(payload), 0)
    assert cli("dag", "import", "-", stdin=CARV2_PRAGMA + header + payload)[0] == 0


def test_block_put_bounds_size_and_validates_the_codec(cli):
    code, out, _ = cli("block", "put", stdin=b"\x01" * MAX_BLOCK_SIZE)
    assert code == 0 and out.decode().strip() == str(CID.of(b"\x01" * MAX_BLOCK_SIZE))
    _fails_in_one_line(cli("block", "put", stdin=b"\x01" * (MAX_BLOCK_SIZE + 1)),
                       str(MAX_BLOCK_SIZE))
    _fails_in_one_line(cli("block", "put", "--cid-codec", "dag-json", stdin=b"{}"),
                       "unknown codec")
    _fails_in_one_line(cli("block", "put", "--cid-codec", "dag-pb", stdin=b"\xff\xff"),
                       "dag-pb")
    _fails_in_one_line(cli("block", "put", "--cid-codec", "dag-cbor", stdin=b"\xf7"),
                       "undefined")
    _fails_in_one_line(cli("block", "put", "--mhtype", "md5", stdin=b"x"), "hash function")
    code, out, _ = cli("block", "put", "--cid-codec", "dag-cbor",
                       stdin=bytes.fromhex("a16161fb3ff8000000000000"))
    assert code == 0 and out.decode().strip() == FLOAT_DOC_CID
