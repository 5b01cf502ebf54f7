"""Regenerate docs/coreml-op-coverage.md from the ONNX backend node test cases.

Usage (from the repository root):

    python plugins/interop-coreml/scripts/op_coverage.py [--check] [--workers N] [--output PATH]

Every node case of an op with a converter is converted to an ML Program, run by
the reference interpreter and compared with its expected outputs. ``--check``
exits 1 when the committed table differs from a fresh run instead of writing.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[3]
DEFAULT_OUTPUT = REPO / "docs" / "coreml-op-coverage.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=pathlib.Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--check", action="store_true", help="compare with the file instead of writing it")
    args = parser.parse_args(argv)

    from interop_coreml import op_coverage as coverage

    results = coverage.run_all(workers=args.workers)
    text = coverage.render_markdown(results)
    verified = sum(1 for s in coverage.summarize(results) if s.verified)
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date; run {pathlib.Path(__file__).name} to regenerate", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date ({verified} op types verified)")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {args.output}: {verified} op types verified, {len(results)} node cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
