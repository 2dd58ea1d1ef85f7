"""Yamux receive-window updates (blockmesh.data.net.yamux.window), without I/O."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockmesh.data.net.yamux.window import INITIAL_WINDOW, MAX_WINDOW, ReceiveWindow

KIB = 1024
MIB = 1024 * KIB
RTT = 0.001


def test_small_reads_wait_until_half_the_window_is_free():
    window = ReceiveWindow()
    # 100 KiB arrived and was read: the sum fell by less than half the target.
    assert window.grant(credit=INITIAL_WINDOW - 100 * KIB, buffered=0, now=0.0, rtt=RTT) == 0
    # Half arrived, nothing read yet: the buffered bytes still count against the window.
    assert window.grant(credit=INITIAL_WINDOW // 2, buffered=INITIAL_WINDOW // 2,
                        now=0.0, rtt=RTT) == 0
    # Half read: the update tops credit + buffered back up to the target, no more.
    assert window.grant(credit=INITIAL_WINDOW // 2, buffered=0, now=0.0, rtt=RTT) == (
        INITIAL_WINDOW // 2)
    assert window.target == INITIAL_WINDOW  # the first update starts the first epoch


def test_target_doubles_only_when_a_window_drains_within_four_rtts():
    window = ReceiveWindow()
    assert window.grant(credit=0, buffered=0, now=0.0, rtt=RTT) == INITIAL_WINDOW
    # The next window drained 10 RTTs later: the sender is not window-bound, keep the size.
    assert window.grant(credit=0, buffered=0, now=10 * RTT, rtt=RTT) == INITIAL_WINDOW
    # Drained within 2 RTTs: double, and grant the whole larger window.
    assert window.grant(credit=0, buffered=0, now=12 * RTT, rtt=RTT) == 2 * INITIAL_WINDOW
    assert window.target == 2 * INITIAL_WINDOW
    # Without an RTT estimate the window never grows.
    assert window.grant(credit=0, buffered=0, now=12 * RTT, rtt=0.0) == 2 * INITIAL_WINDOW
    assert window.target == 2 * INITIAL_WINDOW


def test_target_stops_at_the_maximum():
    window = ReceiveWindow()
    now = 0.0
    for _ in range(20):
        increment = window.grant(credit=0, buffered=0, now=now, rtt=RTT)
        assert increment == window.target <= MAX_WINDOW
        now += RTT
    assert window.target == MAX_WINDOW


def test_reading_after_a_full_top_up_credits_nothing_twice():
    """py-libp2p's case: at the 16 MiB target, 1 MiB read after the window was topped up.
    The read bytes are already inside the top-up; crediting them again made 17 MiB."""
    window = ReceiveWindow(target=MAX_WINDOW)
    assert window.grant(credit=MAX_WINDOW - MIB, buffered=MIB, now=0.0, rtt=RTT) == 0
    assert window.grant(credit=MAX_WINDOW - MIB, buffered=0, now=1.0, rtt=RTT) == 0
    increment = window.grant(credit=MAX_WINDOW // 2 - MIB, buffered=0, now=2.0, rtt=RTT)
    assert increment == MAX_WINDOW // 2 + MIB


def test_a_peer_past_its_credit_gets_no_more():
    window = ReceiveWindow()
    assert window.grant(credit=0, buffered=INITIAL_WINDOW + MIB, now=0.0, rtt=RTT) == 0


@pytest.mark.parametrize("target", [INITIAL_WINDOW - 1, MAX_WINDOW + 1])
def test_a_target_outside_the_bounds_is_refused(target):
    with pytest.raises(ValueError, match="window target"):
        ReceiveWindow(target=target)


def test_negative_counts_are_refused():
    with pytest.raises(ValueError, match="negative"):
        ReceiveWindow().grant(credit=-1, buffered=0, now=0.0, rtt=RTT)


# A sender that always sends everything it may, in one frame or several (as js-yamux does),
# against a reader that reads arbitrary amounts at arbitrary times.
steps = st.lists(
    st.tuples(st.sampled_from(["send", "read", "wait"]), st.floats(0.0, 1.0)),
    min_size=1, max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(steps=steps, maximum=st.sampled_from([INITIAL_WINDOW, MIB, MAX_WINDOW]))
def test_credit_and_buffer_never_exceed_the_maximum_and_the_sender_never_starves(steps, maximum):
    window = ReceiveWindow(maximum=maximum)
    credit, buffered, now = INITIAL_WINDOW, 0, 0.0
    for action, fraction in steps:
        if action == "send" and credit > 0:
            frame = max(1, int(credit * fraction))
            assert frame <= maximum  # the largest frame an honest sender can cut
            credit -= frame
            buffered += frame
        elif action == "read":
            buffered -= int(buffered * fraction)
            credit += window.grant(credit=credit, buffered=buffered, now=now, rtt=RTT)
        else:
            now += fraction * 10 * RTT
        assert credit >= 0
        assert credit + buffered <= window.target <= maximum
    # Once the reader has drained everything, the sender can always send again.
    credit += window.grant(credit=credit, buffered=0, now=now, rtt=RTT)
    assert credit >= window.target // 2 > 0
