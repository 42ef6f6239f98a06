"""Reading convkit's CONVKIT_VERBOSE lines (written by C++ to file descriptor 2) from Python."""

import os
import sys
import tempfile


def capture_verbose(fn):
    """Runs fn() with CONVKIT_VERBOSE=1 and returns the lines convkit wrote to stderr."""
    previous = os.environ.get("CONVKIT_VERBOSE")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.environ["CONVKIT_VERBOSE"] = "1"
        os.dup2(capture.fileno(), 2)
        try:
            fn()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if previous is None:
                del os.environ["CONVKIT_VERBOSE"]
            else:
                os.environ["CONVKIT_VERBOSE"] = previous
        capture.seek(0)
        return capture.read().decode(errors="replace").splitlines()
