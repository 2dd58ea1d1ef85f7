"""Driving a DecisionEngine in tests without a network."""

from __future__ import annotations

from blockmesh.data.bitswap import DecisionEngine, Envelope


def drain(engine: DecisionEngine) -> list[Envelope]:
    """All envelopes, acknowledging each at once (an adapter with a fast link)."""
    out = []
    for _ in range(1000):
        env = engine.next_envelope()
        if env is None:
            return out
        engine.message_sent(env)
        out.append(env)
    raise AssertionError("engine never ran dry")
