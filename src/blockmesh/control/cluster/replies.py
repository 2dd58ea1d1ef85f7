"""A replica's signed REPLY carried in a SubmitRequest answer, and back.

SubmitRequestResponse holds the Reply body, the replica id, the envelope's sequence and the
envelope signature instead of the envelope itself; the remaining envelope fields follow from
the body, so a client rebuilds the exact bytes the replica signed and checks them as any REPLY
(a batch-signed reply carries its batch's reply digests in the body, see messages.py).
"""

from __future__ import annotations

from blockmesh.control.consensus.messages import MAX_REPLY_BATCH, reply_envelope_digest
from blockmesh.control.proto import pbft_pb2 as pb
from blockmesh.errors import DecodeError


def to_response(envelope: pb.PBFTMessage, reply: pb.Reply | None = None
                ) -> pb.SubmitRequestResponse:
    """The answer carrying REPLY `envelope`; `reply` is its parsed payload if at hand."""
    if reply is None:
        reply = pb.Reply.FromString(envelope.payload)
    return pb.SubmitRequestResponse(accepted=True, reply=reply, node_id=envelope.node_id,
                                    signature=envelope.signature, sequence=envelope.sequence)


def to_envelope(response: pb.SubmitRequestResponse) -> tuple[pb.PBFTMessage, pb.Reply]:
    """The REPLY envelope the replica signed, and its body (so that nobody parses the payload
    back); raises DecodeError for a refusal."""
    if not response.accepted or not response.HasField("reply"):
        raise DecodeError(f"{response.node_id or 'replica'} refused the request: "
                          f"{response.error or 'no reply'}")
    body = response.reply
    if len(body.batch_digests) > MAX_REPLY_BATCH:
        raise DecodeError(f"{response.node_id or 'replica'} listed too many reply digests")
    return pb.PBFTMessage(
        type=pb.REPLY,
        view=body.view,
        sequence=response.sequence,
        digest=reply_envelope_digest(body),
        node_id=response.node_id,
        signature=response.signature,
        payload=body.SerializeToString(deterministic=True),
    ), body
