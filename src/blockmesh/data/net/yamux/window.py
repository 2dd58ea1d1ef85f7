"""How much a Yamux receiver lets the sender of one stream send: window updates, without I/O.

Yamux flow control (hashicorp/yamux spec.md): each stream starts with a 256 KiB window; a
DATA frame uses up its length, a WINDOW_UPDATE adds its length. The sender may send at most
what it has been granted (`credit` here) and may put all of it in one frame: js-yamux does
exactly that, so a frame is as large as the credit outstanding when it is cut.

The rule kept here: `credit + buffered <= target <= maximum`, where `buffered` is what arrived
and the application has not read yet. An update tops the sum back up to `target`, and only once
it has fallen by half a target (fewer, larger updates); `target` doubles, up to `maximum`, when
the reader drains a window within four round trips of the previous update (the sender is
faster than one window per RTT, so a bigger window pays). The receiver therefore never holds
more than `maximum` for one stream, and an honest sender never sends a frame larger than it.

py-libp2p 0.8.1's own Yamux, which this package replaced, broke that rule: besides topping up
to the target it also credited the bytes just read, which the top-up already counted, so the
credit reached 17 MiB against a 16 MiB maximum. js-yamux then sent a 17,825,780-byte frame
(17 MiB less its header) and py-libp2p's own size guard, which rejects any DATA frame over
16 MiB, closed the connection.
"""

from __future__ import annotations

from dataclasses import dataclass

INITIAL_WINDOW = 256 * 1024  # fixed by the spec: both ends assume it for a new stream
MAX_WINDOW = 16 * 1024 * 1024  # go-yamux's and js-yamux's default maximum
RTTS_PER_EPOCH = 4


@dataclass
class ReceiveWindow:
    """One stream's receive-window target and the time of its last update.

    The credit and the buffered byte count live with the stream in `session` (it changes them
    as frames arrive and are read); `grant` is told both and answers with the update to send.
    """

    target: int = INITIAL_WINDOW
    maximum: int = MAX_WINDOW
    last_update: float | None = None

    def __post_init__(self) -> None:
        if not INITIAL_WINDOW <= self.target <= self.maximum:
            raise ValueError(
                f"window target {self.target} must lie in [{INITIAL_WINDOW}, {self.maximum}]"
            )

    def grant(self, *, credit: int, buffered: int, now: float, rtt: float) -> int:
        """The WINDOW_UPDATE increment to send now (0: none), after the reader consumed data.

        `credit` is what the sender may still send, `buffered` what arrived unread, `now` and
        `rtt` in seconds (`rtt` <= 0 when unknown, which never grows the window). The caller
        adds the result to its credit.
        """
        if credit < 0 or buffered < 0:
            raise ValueError(f"credit {credit} and buffered {buffered} cannot be negative")
        increment = self.target - (credit + buffered)
        if increment < self.target // 2:
            return 0
        if (self.last_update is not None and rtt > 0
                and now - self.last_update < RTTS_PER_EPOCH * rtt):
            self.target = min(2 * self.target, self.maximum)
            increment = self.target - (credit + buffered)
        self.last_update = now
        return increment
