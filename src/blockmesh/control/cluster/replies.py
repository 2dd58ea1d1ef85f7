"""A replica's signed REPLY carried in a SubmitRequest answer, and back.

SubmitRequestResponse holds the Reply body, the replica id, the envelope's sequence and the
envelope signature instead of the envelope itself; the remaining envelope fields follow from
the body, so a client can check the signature as any REPLY's (`ReplyVerifier`; a batch-signed
reply carries its batch's reply digests in the body, see messages.py).
"""

from __future__ import annotations

from blockmesh.control.proto import pbft_pb2 as pb
from blockmesh.errors import DecodeError


def to_response(envelope: pb.PBFTMessage, reply: pb.Reply | None = None
                ) -> pb.SubmitRequestResponse:
    """The answer carrying REPLY `envelope`; `reply` is its parsed payload if at hand."""
    if reply is None:
        reply = pb.Reply.FromString(envelope.payload)
    return pb.SubmitRequestResponse(accepted=True, reply=reply, node_id=envelope.node_id,
                                    signature=envelope.signature, sequence=envelope.sequence)


def answered_reply(response: pb.SubmitRequestResponse) -> pb.Reply:
    """The REPLY body of an answer; DecodeError for a refusal. The client checks the
    signature with `PBFTClient.on_answer`, which needs no rebuilt envelope."""
    if not response.accepted or not response.HasField("reply"):
        raise DecodeError(f"{response.node_id or 'replica'} refused the request: "
                          f"{response.error or 'no reply'}")
    return response.reply
