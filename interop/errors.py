"""Exit codes of the command line, and how an error becomes one line on stderr.

The codes are stable and documented in README.md:

====  =============================================================
0     success (for ``interop check``: every comparison passed)
1     ``interop check``: at least one output differs beyond tolerance
2     bad usage or bad input (missing/corrupt file, unknown format,
      existing output without --force, unwritable folder)
3     nothing here can do it: no converter route, no runtime for a
      format, an op or layer the converter does not support
4     a plugin failed (broken plugin under INTEROP_STRICT_PLUGINS,
      a converter or runtime crashed) or an internal error
130   interrupted (Ctrl-C)
====  =============================================================
"""

from __future__ import annotations

import os
import sys
import traceback

from interop.plugin_api import InteropError

OK = 0
MISMATCH = 1
BAD_INPUT = 2
UNSUPPORTED = 3
FAILURE = 4
INTERRUPTED = 130


def debug_enabled() -> bool:
    return os.environ.get("INTEROP_DEBUG", "").strip() not in {"", "0", "false", "no"}


def report(exc: BaseException) -> int:
    """Print ``exc`` as one line (plus a hint line) and return its exit code."""
    if isinstance(exc, KeyboardInterrupt):
        print("error: interrupted", file=sys.stderr)
        return INTERRUPTED
    if debug_enabled():
        traceback.print_exception(exc)
    if isinstance(exc, InteropError):
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    print(f"error: internal error: {type(exc).__name__}: {first}", file=sys.stderr)
    if not debug_enabled():
        print("hint: set INTEROP_DEBUG=1 for the traceback", file=sys.stderr)
    return FAILURE
