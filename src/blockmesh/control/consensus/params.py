"""Every bound and timer of the PBFT engine, in one place so a config file can set them all."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PBFTParams:
    """Tunables of one replica; every replica of a cluster should use the same values.

    Defaults follow Sawtooth PBFT where it has one (checkpoint every 100 sequences, 4 s view
    change timeout) and otherwise keep the worst-case VIEW_CHANGE message (log window x batch
    bytes) under the transports' 64 MB message limit.
    """

    #: A CHECKPOINT is broadcast after every sequence number divisible by this.
    checkpoint_interval: int = 100
    #: High watermark = low watermark (last stable checkpoint) + log_window. Must be a multiple
    #: of checkpoint_interval so the next checkpoint always fits in the window.
    log_window: int = 200
    #: Requests per PRE_PREPARE batch; a batch is one sequence number and one block.
    max_batch_size: int = 64
    #: Summed operation bytes per batch.
    max_batch_bytes: int = 256 * 1024
    #: How long the primary waits for a batch to fill before proposing what it has (seconds).
    #: 0 proposes at once whenever the pipeline has room.
    max_batch_delay: float = 0.0
    #: Batches the primary keeps proposed but not yet executed (by itself). While the pipeline
    #: is full, requests queue up and the next batch is bigger: batching adapts to load.
    max_inflight_batches: int = 4
    #: Request timer and NEW_VIEW timer (seconds): doubled at each view change up to
    #: max_view_change_timeout, halved at a stable checkpoint once progress has shown that the
    #: shorter timer would not have fired (view_timer.py).
    view_change_timeout: float = 4.0
    max_view_change_timeout: float = 60.0
    #: An idle replica re-broadcasts its votes for unfinished sequences after this long, then
    #: backs off exponentially up to max_retransmit_interval; lost messages are never fatal.
    retransmit_interval: float = 1.0
    max_retransmit_interval: float = 16.0
    #: How long a replica that knows a stable checkpoint above its state waits for ordinary
    #: messages to catch it up before asking for a state transfer.
    state_transfer_delay: float = 1.0
    #: A state fetch not answered after this long is asked again.
    state_fetch_timeout: float = 5.0
    #: Requests a replica buffers for one client while they wait to be executed.
    max_pending_per_client: int = 8
    #: Requests a replica buffers in total.
    max_pending_total: int = 10_000
    #: Bytes of one client operation and of one client id.
    max_operation_size: int = 64 * 1024
    max_client_id_size: int = 256
    #: Bytes of an envelope payload (a VIEW_CHANGE carries prepared batches, hence the room).
    max_payload_size: int = 60 * 1024 * 1024
    #: Refuse client requests without an Ed25519 signature. Off, a client may send MAC-only
    #: requests (authenticators.py); on, no client can make a batch fail to prepare by
    #: garbling MAC entries (docs/benchmarks.md, "MAC-only client requests").
    client_signatures_required: bool = False
    #: Signature checks remembered so a message embedded in a VIEW_CHANGE or NEW_VIEW that was
    #: already received on its own is not verified again.
    verified_cache_size: int = 65_536

    def __post_init__(self) -> None:
        if self.checkpoint_interval < 1:
            raise ValueError("checkpoint_interval must be at least 1")
        if self.log_window < self.checkpoint_interval or self.log_window % self.checkpoint_interval:
            raise ValueError("log_window must be a positive multiple of checkpoint_interval")
        if self.max_batch_size < 1 or self.max_batch_bytes < 1 or self.max_inflight_batches < 1:
            raise ValueError("batches must allow at least one request")
        if self.max_batch_delay < 0:
            raise ValueError("max_batch_delay cannot be negative")
        if not 0 < self.view_change_timeout <= self.max_view_change_timeout:
            raise ValueError("need 0 < view_change_timeout <= max_view_change_timeout")
        if not 0 < self.retransmit_interval <= self.max_retransmit_interval:
            raise ValueError("need 0 < retransmit_interval <= max_retransmit_interval")
        if self.max_pending_per_client < 1 or self.max_pending_total < 1:
            raise ValueError("pending request bounds must be positive")
