"""The control plane: PBFT consensus, its transports, the cluster and the replicated pinset.

The PBFT engine's mypyc-compiled modules live in this package, so importing it first refuses a
stale build of them (`blockmesh.compiled.refuse_stale`): an edited module must never run as its
old extension, silently, in the daemon or a benchmark.
"""

from blockmesh.compiled import refuse_stale

refuse_stale(under="blockmesh/control/")
