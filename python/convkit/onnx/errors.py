"""The error convkit.onnx raises for a graph it cannot run exactly."""

from .._convkit import Error


class UnsupportedError(Error):
    """A node, op, attribute or input convkit.onnx does not run; the message names the node, its
    op type and what is supported. A convkit.Error (hence a ValueError) with code 'unsupported'."""

    code = "unsupported"


def unsupported(node, what):
    """An UnsupportedError for `node` (a graph.Node) with the explanation `what`."""
    return UnsupportedError(f"{node.describe()}: {what}")


def node_error(node_text, error, code=None):
    """`error` re-raised as a convkit.Error naming the node first: an UnsupportedError stays one,
    a convkit.Error keeps its code, anything else (numpy refusing the node's shapes) becomes
    `code` ('invalid argument' by default)."""
    code = code or getattr(error, "code", None) or "invalid argument"
    kind = UnsupportedError if code == "unsupported" else Error
    wrapped = kind(f"{node_text}: {error}")
    wrapped.code = code
    return wrapped
