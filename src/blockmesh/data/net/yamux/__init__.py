"""Yamux (/yamux/1.0.0) of our own: a frame codec and a connection state machine without I/O
(`frame`, `window`, `session`), and the trio adapter that plugs it into py-libp2p's host
(`trio_muxer`)."""
