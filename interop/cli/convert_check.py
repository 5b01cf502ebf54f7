"""``interop convert --check``: convert, then check every hop of the route against the source.

Each file the route produced (intermediates included) is run on a runtime of its
format with the same seeded random inputs as the source and compared with it.

When a hop diverges the command exits 1 and **keeps** the converted output, and
writes a note ``DST.unverified.json`` next to it holding the full check report,
so nothing downstream can mistake it for a verified copy while the evidence
stays inspectable. A later successful ``--check`` of the same destination
removes a stale note. A hop whose format has no runtime here is skipped with a
warning; if that is the final output, the note is written too and the exit code
is 3.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from interop.checker.models import ModelRequest
from interop.checker.runner import make_options, run_groups
from interop.cli.console import Console
from interop.conversion import convert
from interop.output_files import atomic_output, remove_path, scratch_dir
from interop.plugin_registry import Registry, get_registry

UNVERIFIED_SUFFIX = ".unverified.json"


def unverified_note_path(dst: Path) -> Path:
    """Where the note of a converted-but-not-verified output goes."""
    return dst.with_name(dst.name + UNVERIFIED_SUFFIX)


def convert_and_check(
    src: str | Path,
    dst: str | Path,
    *,
    to: str | None = None,
    from_format: str | None = None,
    force: bool = False,
    options: Mapping[str, Any] | None = None,
    registry: Registry | None = None,
    on_hop: Callable[[Any], None] | None = None,
    on_hop_start: Callable[[Any, str], None] | None = None,
    console: Console | None = None,
) -> int:
    """Convert ``src`` to ``dst`` and check every hop against ``src``; returns the exit code.

    The check's table is the command's result (stdout, like ``interop check``); with
    ``--json`` the document holds the conversion and the check report.
    """
    registry = registry or get_registry()
    console = console or Console()
    src, dst = Path(src), Path(dst)
    note = unverified_note_path(dst)
    with scratch_dir(dst) as keep:
        result = convert(src, dst, to, from_format=from_format, force=force, options=options,
                         registry=registry, keep_intermediates=keep, on_hop=on_hop, on_hop_start=on_hop_start)
        hops = [ModelRequest(Path(hop.path), None, result.output_label(index))
                for index, hop in enumerate(result.hops)]

        check_options = make_options(
            allow_missing_runtime=True,
            save_failures=dst.parent / "interop-check-failures",
            on_progress=lambda message: console.announce(f"  {message}"),
        )
        report = run_groups([(str(src), hops)], check_options, registry=registry)
        console.end_steps()
    final_skipped = any(skipped["model"] == hops[-1].label for skipped in report.skipped)
    verified = report.passed and not final_skipped
    if verified:
        remove_path(note)
    else:
        document = {"destination": str(dst), "route": result.route, "verified": False,
                    "reason": "a hop diverges from the source" if not report.passed
                    else "no runtime here can run the output", "check": report.to_dict()}
        with atomic_output(note, force=True) as tmp:
            tmp.write_text(json.dumps(document, indent=2) + "\n")
    code = 1 if not report.passed else (3 if final_skipped else 0)
    console.result(report.format_table())
    console.result(f"wrote {result.destination} ({' -> '.join(result.route)})")
    if not verified:
        console.warning(f"NOT VERIFIED: kept {dst}; see {note}")
    console.document({**result.to_dict(), "verified": verified,
                      "unverified_note": None if verified else str(note), "check": report.to_dict()})
    return code
