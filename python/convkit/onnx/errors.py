"""The error convkit.onnx raises for a graph it cannot run exactly."""

from .._convkit import Error


class UnsupportedError(Error):
    """A node, op, attribute or input convkit.onnx does not run; the message names the node, its
    op type and what is supported. A convkit.Error (hence a ValueError) with code 'unsupported'."""

    code = "unsupported"


def unsupported(node, what):
    """An UnsupportedError for `node` (a graph.Node) with the explanation `what`."""
    return UnsupportedError(f"{node.describe()}: {what}")
