"""The typed errors every blockmesh layer raises.

One root class lets the CLI turn any expected failure into a one-line message and a non-zero
exit, while a bug (any other exception) still shows its traceback.
"""


class BlockmeshError(Exception):
    """Root of every expected, user-facing failure."""


class DecodeError(BlockmeshError, ValueError):
    """Bytes from disk or a peer that the format does not allow: garbage, truncated, too big."""


class InvalidCID(DecodeError):
    """A CID string or binary CID cannot be parsed."""


class UnsupportedError(BlockmeshError):
    """A valid identifier names something this node does not implement (codec, hash, version)."""


class HashMismatch(BlockmeshError):
    """Block bytes do not hash to the CID they claim."""


class NotFound(BlockmeshError, KeyError):
    """A block, pin, path or peer that was asked for is not there."""

    def __str__(self) -> str:  # KeyError quotes its argument; a message reads better plain
        return str(self.args[0]) if self.args else "not found"


class Forbidden(BlockmeshError):
    """The identity that asked may not do what it asked (a reader writing, say)."""


class NotImplementedYet(BlockmeshError):
    """A documented feature that is not built yet: says so instead of pretending."""
