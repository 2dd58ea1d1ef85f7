# Sourced by the scripts that run blockmesh beside BFT-SMaRt: where the checkout, the anchor
# script and the Python to run are (each overridable from the environment).
here=$(cd "$(dirname "$0")/.." && pwd)
ANCHOR=${ANCHOR:-$here/../shared/anchors/bftsmart/run_bench.sh}
[ -f "$ANCHOR" ] || ANCHOR=/work/shared/anchors/bftsmart/run_bench.sh
PY=${PY:-$here/.venv/bin/python}
[ -x "$PY" ] || PY=python3
