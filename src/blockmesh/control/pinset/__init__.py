"""The replicated pinset: what a blockmesh cluster orders with PBFT.

`PinsetApp` is the deterministic application every member executes in log order; `allocator`
and `clock` are the pure functions it is built from. Nothing here does I/O: the member daemon
feeds committed operations in and reads allocations out to drive its pin tracker.
"""

from blockmesh.control.pinset.app import PinsetApp, PinsetPolicy

__all__ = ["PinsetApp", "PinsetPolicy"]
