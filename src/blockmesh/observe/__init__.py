"""Seeing the daemon: metrics, the web dashboard and `blockmesh top`, from one snapshot."""
