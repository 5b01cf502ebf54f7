"""A fuzzing campaign: many seeded trials, failures shrunk, one repro folder per signature.

Trials run in worker processes (``jobs`` of them), each started once, warmed up (every
engine imported) and fed trial numbers through its own pipe, so the parent always knows
which trial a worker is on. One evaluation that takes more than :data:`EVAL_TIMEOUT` CPU
seconds is ``crash[timeout]``; a trial that runs past ``timeout`` wall seconds (a hang in
native code) gets its worker killed and is recorded as ``crash[timeout]`` too; a worker that
dies (an abort in native code) is recorded as ``crash[abort]`` and replaced. Time limits are
CPU time where the process can measure it, so a campaign's outcomes depend on its seed, not
on the machine's load.

The output folder gets ``NN-<signature>/`` per distinct failure signature (``min.onnx``,
``min_inputs.npz``, ``info.json``) and ``summary.json``.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import multiprocessing.connection
import re
import shutil
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: CPU seconds one evaluation may take inside the worker before it counts as a hang. CPU time,
#: not wall time: on a loaded machine a trial's wall time grows with the load, its CPU time does not,
#: so the same seed gives the same outcomes whatever else runs.
EVAL_TIMEOUT = 30


def trial_seed(seed: int, index: int) -> int:
    """The generator seed of trial ``index`` of a campaign seeded with ``seed``."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


class _Alarm(Exception):
    pass


def _on_alarm(signum, frame):  # noqa: ARG001
    raise _Alarm()


def _evaluate_with_alarm(model, feeds, seconds: int):
    from interop_coreml.fuzz.oracle import Outcome, evaluate

    signal.signal(signal.SIGPROF, _on_alarm)
    signal.setitimer(signal.ITIMER_PROF, seconds)  # process CPU time, every thread counted
    try:
        return evaluate(model, feeds)
    except _Alarm:
        return Outcome("crash", "timeout", f"no result within {seconds} s of CPU time", "timeout")
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)


def warm_up() -> None:
    """Import and initialise every engine once, so that no trial pays (or times out on) the imports."""
    from onnx import TensorProto, helper

    from interop_coreml.fuzz.oracle import evaluate, run_reference

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "warm-up",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    feeds = {"x": np.array([-1.0, 1.0], dtype=np.float32)}
    evaluate(model, feeds)
    run_reference(model, feeds)


def run_trial(seed: int, index: int, ops: list[str] | None = None, shrink_seconds: float = 60.0,
              half: bool | None = None) -> dict[str, Any]:
    """Generate, judge and (on failure) shrink one graph; a plain dict the parent can pickle.

    ``half``: only float16 graphs (True), only float32 graphs (False), or as the seed decides (None).
    """
    from interop_coreml.fuzz import generator, oracle, shrink

    s = trial_seed(seed, index)
    case = generator.generate(s, ops=ops, half=half)
    outcome = _evaluate_with_alarm(case.model, case.feeds, EVAL_TIMEOUT)
    result: dict[str, Any] = {"trial": index, "seed": s, "status": outcome.status, "kind": outcome.kind,
                              "explained": outcome.explained, "half": case.half}
    if not outcome.failed:
        if outcome.status in ("refused", "skipped"):
            result["reason"] = oracle.normalize_error(outcome.message)
        return result
    model, feeds = case.model, case.feeds
    if outcome.kind != "timeout":
        def still_fails(m, f):
            return _evaluate_with_alarm(m, f, EVAL_TIMEOUT).key == outcome.key
        model, feeds = shrink.shrink(case.model, case.feeds, still_fails, budget_seconds=shrink_seconds)
    final = _evaluate_with_alarm(model, feeds, EVAL_TIMEOUT)
    if final.key != outcome.key:  # cannot happen unless the failure is flaky: keep the original
        model, feeds, final = case.model, case.feeds, outcome
    buffer = io.BytesIO()
    np.savez(buffer, **feeds)
    result.update(
        signature=oracle.signature(final, model),
        model=model.SerializeToString(),
        inputs=buffer.getvalue(),
        info={
            "trial": index, "seed": s, "status": final.status, "kind": final.kind,
            "message": final.message, "original_message": outcome.message,
            "signature": oracle.signature(final, model),
            "opset": case.opset, "dynamic": case.dynamic, "input_style": case.input_style,
            "float16": case.half, "nodes_original": len(case.model.graph.node), "nodes_min": len(model.graph.node),
            "details": final.details, "min_graph": generator.describe(model),
            "reference_evaluator": final.reference_evaluator,
            "explained": final.explained, "explanation": oracle.rule_reasons(final.explained),
        },
    )
    return result


def repro_folders(path: Path) -> list[Path]:
    """The repro folders at ``path``: the folder itself (it holds ``min.onnx``) or a campaign's ``NN-*`` folders."""
    path = Path(path)
    if (path / "min.onnx").is_file():
        return [path]
    if path.is_dir():
        found = sorted(child for child in path.iterdir() if child.is_dir() and (child / "min.onnx").is_file())
        if found:
            return found
    raise ValueError(f"{path} is neither a repro folder (min.onnx, min_inputs.npz) nor a campaign folder holding them")


def judge_repro(folder: Path):
    """The current oracle's :class:`~interop_coreml.fuzz.oracle.Outcome` for a saved repro folder.

    A repro's graph is judged as it was saved (no regeneration, no shrinking), so a fix of the
    translator or a new oracle rule can be checked against the repros of an earlier campaign.
    """
    import onnx

    with np.load(Path(folder) / "min_inputs.npz", allow_pickle=False) as data:
        feeds = {name: data[name] for name in data.files}
    model = onnx.load(str(Path(folder) / "min.onnx"), load_external_data=False)
    return _evaluate_with_alarm(model, feeds, EVAL_TIMEOUT)


def quiet_engines() -> None:
    """Keep the engines' warnings and log lines off the console: a campaign reports outcomes."""
    import logging
    import os
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.simplefilter("ignore")
    logging.getLogger("coremltools").setLevel(logging.ERROR)


def _worker(conn, seed: int, ops: list[str] | None, shrink_seconds: float, half: bool | None = None) -> None:
    quiet_engines()
    warm_up()
    while True:
        index = conn.recv()
        if index is None:
            return
        try:
            result = run_trial(seed, index, ops, shrink_seconds, half)
        except Exception as error:  # noqa: BLE001 - a generator bug must not stop the campaign
            result = {"trial": index, "seed": trial_seed(seed, index), "status": "generator-error",
                      "kind": "", "message": f"{type(error).__name__}: {error}"[:300]}
        conn.send(result)


#: How many trial numbers summary.json keeps per reason a graph was not compared (refused, skipped).
REASON_TRIALS = 20


@dataclass
class _Slot:
    process: Any
    conn: Any
    trial: int | None = None
    started: float = 0.0


@dataclass
class Summary:
    graphs: int = 0
    statuses: Counter = field(default_factory=Counter)
    signatures: Counter = field(default_factory=Counter)
    explained: Counter = field(default_factory=Counter)
    trials: dict[str, list[int]] = field(default_factory=dict)  # the trial numbers of each signature
    folders: dict[str, str] = field(default_factory=dict)
    reasons: Counter = field(default_factory=Counter)  # why graphs were refused or skipped
    reason_trials: dict[str, list[int]] = field(default_factory=dict)  # the first trials of each reason
    half: int = 0  # how many of the graphs were float16 graphs

    @property
    def crashes(self) -> int:
        return self.statuses["crash"]

    @property
    def mismatches(self) -> int:
        return self.statuses["mismatch"]

    @property
    def explained_mismatches(self) -> int:
        return sum(self.explained.values())

    @property
    def unexplained(self) -> int:
        return self.crashes + self.mismatches - self.explained_mismatches

    def line(self) -> str:
        extra = ", ".join(f"{self.statuses[k]} {k}" for k in ("refused", "skipped", "generator-error")
                          if self.statuses[k])
        half = f" ({self.half} float16)" if self.half else ""
        return (f"{self.graphs} graphs{half}, {self.crashes} crashes, {self.mismatches} mismatches "
                f"({self.explained_mismatches} explained)" + (f"; {extra}" if extra else ""))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9+]+", "-", text).strip("-")[:80]


def _record(result: dict[str, Any], out: Path, summary: Summary) -> None:
    summary.graphs += 1
    summary.half += bool(result.get("half"))
    status = result["status"]
    summary.statuses[status] += 1
    if status not in ("crash", "mismatch"):
        if result.get("reason") or result.get("message"):
            reason = f"{status}: {result.get('reason') or result.get('message')}"
            summary.reasons[reason] += 1
            trials = summary.reason_trials.setdefault(reason, [])
            if len(trials) < REASON_TRIALS:
                trials.append(result["trial"])
        return
    signature = result.get("signature") or f"{status}[{result['kind']}] (trial {result['trial']})"
    if result.get("explained"):
        summary.explained[signature] += 1
    summary.signatures[signature] += 1
    summary.trials.setdefault(signature, []).append(result["trial"])
    if signature in summary.folders:
        return
    folder = out / f"{len(summary.folders) + 1:02d}-{_slug(signature)}"
    folder.mkdir(parents=True, exist_ok=True)
    summary.folders[signature] = folder.name
    info = result.get("info") or {k: result.get(k) for k in ("trial", "seed", "status", "kind", "message")}
    info["signature"] = signature
    if "model" in result:
        (folder / "min.onnx").write_bytes(result["model"])
        (folder / "min_inputs.npz").write_bytes(result["inputs"])
    (folder / "info.json").write_text(json.dumps(info, indent=1, default=str) + "\n")


def run_campaign(seed: int, trials: int, jobs: int, out: Path, ops: list[str] | None = None,
                 timeout: float = 600.0, shrink_seconds: float = 60.0, progress=None,
                 only: list[int] | None = None, half: bool | None = None) -> Summary:
    """Run trials 0 … ``trials`` − 1 (or just the trial numbers ``only``) over ``jobs`` worker processes.

    ``half`` as in :func:`run_trial`: float16 graphs only, float32 graphs only, or mixed (None).

    The repro folders go under ``out``. Trial ``i`` of a seed is the same graph whatever else
    runs, so ``only`` reruns a long campaign's failing trials (``summary.json`` lists them).
    """
    indices = sorted(set(only)) if only else list(range(trials))
    trials = len(indices)
    out = _prepare_out(Path(out))
    context = multiprocessing.get_context("spawn")  # a clean interpreter per worker, no inherited state
    summary = Summary()

    def start() -> _Slot:
        parent, child = context.Pipe()
        process = context.Process(target=_worker, args=(child, seed, ops, shrink_seconds, half), daemon=True)
        process.start()
        child.close()
        return _Slot(process, parent)

    slots = [start() for _ in range(max(1, min(jobs, trials)))]
    pending = list(reversed(indices))
    done = 0
    try:
        while done < trials:
            for slot in slots:
                if slot.trial is None and pending:
                    slot.trial = pending.pop()
                    slot.started = time.monotonic()
                    slot.conn.send(slot.trial)
            busy = [s for s in slots if s.trial is not None]
            ready = multiprocessing.connection.wait([s.conn for s in busy] + [s.process.sentinel for s in busy],
                                                    timeout=1.0)
            for i, slot in enumerate(slots):
                if slot.trial is None:
                    continue
                lost = None
                if slot.conn in ready:
                    try:
                        result = slot.conn.recv()
                    except (EOFError, OSError):
                        lost = "abort"
                    else:
                        _record(result, out, summary)
                        slot.trial = None
                        done += 1
                        if result["status"] in ("crash", "mismatch") or done % 100 == 0:
                            _write_summary(out, seed, trials, summary)  # an interrupted run keeps its counts
                        if progress:
                            progress(done, trials, summary)
                        continue
                if lost is None and not slot.process.is_alive():
                    lost = "abort"
                if lost is None and time.monotonic() - slot.started > timeout:
                    lost = "timeout"
                if lost:
                    slot.process.kill()
                    slot.process.join()
                    code = slot.process.exitcode
                    message = (f"the trial took more than {timeout:g} s" if lost == "timeout"
                               else f"the worker process died (exit code {code})")
                    _record({"trial": slot.trial, "seed": trial_seed(seed, slot.trial), "status": "crash",
                             "kind": lost, "message": message,
                             "signature": f"crash[{lost}] (trial {slot.trial}: generate it with seed "
                                          f"{trial_seed(seed, slot.trial)})"}, out, summary)
                    done += 1
                    slots[i] = start()
    finally:
        _write_summary(out, seed, trials, summary)
        for slot in slots:
            try:
                slot.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        for slot in slots:
            slot.process.join(timeout=5)
            if slot.process.is_alive():
                slot.process.kill()
    return summary


def _prepare_out(out: Path) -> Path:
    """An empty folder, or one an earlier campaign wrote (its repro folders are replaced)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / "summary.json").is_file():
            raise ValueError(f"{out} is not empty and was not written by a fuzzing campaign (no summary.json)")
        for child in out.iterdir():
            if child.is_dir() and re.match(r"^\d{2,}-", child.name) and (child / "info.json").is_file():
                shutil.rmtree(child)
        (out / "summary.json").unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out


def _write_summary(out: Path, seed: int, trials: int, summary: Summary) -> None:
    document = {
        "seed": seed, "trials": trials, "done": summary.graphs, "float16_graphs": summary.half, "line": summary.line(),
        "statuses": dict(summary.statuses),
        "signatures": [{"signature": s, "count": n, "explained": summary.explained.get(s, 0),
                        "trials": sorted(summary.trials.get(s, [])),
                        "folder": summary.folders.get(s)} for s, n in summary.signatures.most_common()],
        "not_compared": [{"reason": r, "count": n, "trials": sorted(summary.reason_trials.get(r, []))}
                         for r, n in summary.reasons.most_common()],
    }
    (out / "summary.json").write_text(json.dumps(document, indent=1) + "\n")
