"""The demo's use of the check engine: one check of every lineage, and its JSON and JUnit files.

This is the only module of the demo that imports the check engine, so moving
that package is a change of the import lines below and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from interop.checker import ModelInfo, Report, junit
from interop.checker.runner import make_options, run_groups
from interop.plugin_registry import Registry

#: A model as the check engine takes it: (path, runtime name).
ModelArg = tuple[str, str]


def check_lineages(
    groups: Sequence[tuple[ModelArg, Sequence[ModelArg]]],
    inputs: Mapping[str, np.ndarray],
    registry: Registry,
    on_progress: Callable[[str], None] | None = None,
    on_outputs: Callable[[ModelInfo, dict[str, np.ndarray]], None] | None = None,
) -> Report:
    """Compare every copy with its own source on ``inputs``; one group per source framework.

    Samples are fed in the check engine's default runs (within every model's batch
    bound); ``on_outputs`` receives each model's outputs of those runs.
    """
    options = make_options(inputs=dict(inputs), on_progress=on_progress,
                           on_outputs=on_outputs)
    return run_groups([(ref, list(copies)) for ref, copies in groups], options, registry=registry)


def write_reports(report: Report, folder: Path, extra: Mapping[str, Any]) -> tuple[Path, Path]:
    """``check.json`` (the engine's document plus ``extra`` under ``"demo"``) and ``junit.xml``."""
    document = report.to_dict()
    document["demo"] = dict(extra)
    json_path = folder / "check.json"
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    junit_path = folder / "junit.xml"
    junit.write(report, junit_path)
    return json_path, junit_path
