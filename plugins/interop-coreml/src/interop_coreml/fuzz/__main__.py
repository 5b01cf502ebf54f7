"""``python -m interop_coreml.fuzz --seed S --trials N --jobs J --out DIR``: run a fuzzing campaign.

Prints one progress line now and then and, at the end, the summary line
"N graphs, X crashes, Y mismatches (Z explained)" and the repro folders written.
Exit status: 0 when there is no crash and no unexplained mismatch, 1 otherwise.

``--judge DIR`` judges saved repro folders again (a fix checked against an earlier campaign's
repros, no regeneration): one line per folder; exit 1 when any still fails unexplained, 2 when
DIR holds no repro folder.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from interop_coreml.fuzz.campaign import run_campaign
from interop_coreml.fuzz.generator import OPS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m interop_coreml.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="campaign seed (trial i uses a seed derived from it)")
    parser.add_argument("--trials", type=int, default=1000, help="number of random graphs")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--out", type=Path, default=Path("fuzz-out"), help="folder for the repro folders")
    parser.add_argument("--ops", default="", help="comma-separated op types to draw from (default: all)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="wall seconds per trial, shrinking included, before its worker is killed (a "
                             "backstop for hangs in native code; one evaluation may take 30 s of CPU time)")
    parser.add_argument("--trial", type=int, action="append", default=[], metavar="N",
                        help="run only trial N of the seed (repeatable), e.g. a long run's failures again")
    parser.add_argument("--float16", choices=("mixed", "only", "never"), default="mixed",
                        help="float16 graphs: a quarter of them as each trial's seed decides (mixed), every "
                             "graph (only) or none (never)")
    parser.add_argument("--shrink-seconds", type=float, default=60.0, help="CPU seconds one shrink may take")
    parser.add_argument("--judge", type=Path, action="append", default=[], metavar="DIR",
                        help="judge saved repro folders again with the current translator and oracle instead "
                             "of running a campaign: a repro folder (min.onnx) or a campaign's --out folder "
                             "(repeatable)")
    args = parser.parse_args(argv)
    ops = [op.strip() for op in args.ops.split(",") if op.strip()] or None
    unknown = sorted(set(ops or ()) - set(OPS))
    if unknown:
        print(f"error: no generator for {', '.join(unknown)}", file=sys.stderr)
        print(f"hint: generated ops: {', '.join(sorted(OPS))}", file=sys.stderr)
        return 2
    if args.trials < 1 or args.jobs < 1 or any(n < 0 for n in args.trial):
        print("error: --trials and --jobs must be at least 1, --trial at least 0", file=sys.stderr)
        return 2
    if args.judge:
        return judge(args.judge)
    started = time.monotonic()
    last = [started]

    def progress(done: int, total: int, summary) -> None:
        now = time.monotonic()
        if now - last[0] >= 30 or done == total:
            last[0] = now
            print(f"[{now - started:6.0f} s] {done}/{total}: {summary.line()}", flush=True)

    try:
        summary = run_campaign(args.seed, args.trials, args.jobs, args.out, ops=ops, timeout=args.timeout,
                               shrink_seconds=args.shrink_seconds, progress=progress, only=args.trial or None,
                               half={"mixed": None, "only": True, "never": False}[args.float16])
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        print("hint: give --out a new folder, or one a previous campaign wrote", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(summary.line())
    for signature, count in summary.signatures.most_common():
        print(f"  {count:5d}  {signature}  -> {args.out / summary.folders[signature]}")
    return 0 if summary.unexplained == 0 else 1


def judge(paths: list[Path]) -> int:
    """Judge saved repro folders again: one line per folder, exit 1 when any still fails unexplained."""
    from interop_coreml.fuzz.campaign import judge_repro, quiet_engines, repro_folders

    quiet_engines()
    try:
        folders = [folder for path in paths for folder in repro_folders(path)]
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    failing = 0
    for folder in folders:
        try:
            outcome = judge_repro(folder)
        except Exception as error:  # noqa: BLE001 - a damaged repro folder: say which, go on
            print(f"{folder}: unreadable ({type(error).__name__}: {str(error)[:200]})")
            failing += 1
            continue
        unexplained = outcome.failed and not outcome.explained
        failing += unexplained
        verdict = outcome.status + (f"[{outcome.kind}]" if outcome.kind else "")
        if outcome.explained:
            verdict += f" (explained: {outcome.explained})"
        print(f"{folder}: {verdict}" + (f" {outcome.message[:200]}" if outcome.failed else ""), flush=True)
    print(f"{len(folders)} repro folders, {failing} still failing unexplained")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
