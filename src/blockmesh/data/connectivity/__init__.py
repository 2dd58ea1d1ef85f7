"""Staying connected under a policy: bootstrap, peering, connection manager, filters, health.

The engines here (`backoff`, `redial`, `connmgr`, `filters`, `health`) take events and a clock
and return decisions, with no I/O; `service.Connectivity` is the thin trio adapter that feeds
them from a running `Host` and carries their decisions out. `settings` edits the repo's
config file for the CLI and the daemon alike.
"""
