"""The data plane: blocks, DAGs, the store, libp2p networking, Bitswap, routing, the gateway.

Its per-message modules are compiled by mypyc (`blockmesh.compiled.MODULES`), so importing the
package first refuses a stale build of them, as `blockmesh.control` does for its own.
"""

from blockmesh.compiled import refuse_stale

refuse_stale(under="blockmesh/data/")
