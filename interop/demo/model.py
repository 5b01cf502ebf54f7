"""What the demo makes and finds: its models and lineages, what each model computed, and the result.

Data only, shared by the pipeline, the figures and the report (so none of them
imports another to learn these shapes). The labels come from the line-up's data table
(:mod:`interop.demo.lineup`); any other name is shown as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interop.demo.lineup import FORMAT_LABELS, FRAMEWORK_LABELS
from interop.plugin_api import TrainResult
from interop.runtime_choice import RuntimeChoice



@dataclass
class RunResult:
    """What one model computed on the demo inputs (the check's own run of it), and who computed it."""

    path: Path
    runtime: str
    engine: str
    logits: np.ndarray


@dataclass
class Model:
    """One file of a lineage (the trained source or a copy) and the runtime that runs it."""

    framework: str
    format: str
    path: Path
    runtime: str
    is_source: bool = False
    run: RunResult | None = None
    #: Seconds it took to make this file (training for a source, conversion for a copy).
    seconds: float = 0.0
    #: Where the trained design came from when it was made elsewhere (``<framework label> design``).
    origin: str | None = None

    @property
    def title(self) -> str:
        """``B`` for a source, ``B → F`` for a copy, ``A design → B`` for an --init source (framework and format labels)."""
        name = FRAMEWORK_LABELS.get(self.framework, self.framework)
        if self.origin:
            name = f"{self.origin} → {name}"
        return name if self.is_source else f"{name} → {FORMAT_LABELS.get(self.format, self.format)}"


@dataclass
class Lineage:
    """A framework's trained model and its copies, compared only with each other."""

    framework: str
    source: Model
    copies: list[Model]
    in_other_environment: bool = False
    #: How to create that environment (its declaration's ``setup_hint``), for the report.
    environment_setup: str = ""
    training: TrainResult | None = None
    #: Seconds spent importing the framework before training (in-process trainers only).
    import_seconds: float = 0.0
    #: The untrained design the source was trained from (``interop train --init``), and its framework.
    design: Path | None = None
    design_framework: str | None = None

    @property
    def started_from(self) -> str:
        """Which weights training started from, for the report."""
        if self.design is None:
            return f"{FRAMEWORK_LABELS.get(self.framework, self.framework)}'s own initialisation (seed 0)"
        maker = FRAMEWORK_LABELS.get(self.design_framework or "", self.design_framework)
        return (f"the untrained {maker} design {self.design.name} ({maker}'s initialisation, seed 0: "
                f"the {maker} row's starting weights), imported through ONNX")

    @property
    def models(self) -> list[Model]:
        return [self.source, *self.copies]

    def differences(self) -> list[tuple[Model, np.ndarray]]:
        """|copy - source| of every logit, per copy that ran, from the outputs the check judged."""
        if self.source.run is None:
            return []
        reference = self.source.run.logits.astype(np.float64)
        return [(copy, np.abs(copy.run.logits.astype(np.float64) - reference))
                for copy in self.copies if copy.run is not None]


@dataclass
class DemoResult:
    """Everything the demo produced, for the report and for callers."""

    folder: Path
    lineages: list[Lineage]
    skipped_frameworks: list[tuple[str, str]]
    runtimes: dict[str, RuntimeChoice]
    check: Any  # the check engine's Report
    iris_x: np.ndarray
    iris_y: np.ndarray
    grid: tuple[np.ndarray, np.ndarray, np.ndarray]
    durations: dict[str, float] = field(default_factory=dict)
    total_seconds: float = 0.0
    files: list[Path] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.check.passed)


def framework_names(lineages: list[Lineage]) -> str:
    """``A, B``: the lineages' frameworks as the report and the progress lines name them."""
    names = dict.fromkeys(FRAMEWORK_LABELS.get(l.framework, l.framework) for l in lineages if l.design is None)
    text = ", ".join(names)
    designs = [l for l in lineages if l.design is not None]
    for lineage in designs:
        maker = FRAMEWORK_LABELS.get(lineage.design_framework or "", lineage.design_framework)
        text += f", and from an untrained {maker} design in {FRAMEWORK_LABELS.get(lineage.framework, lineage.framework)}"
    return text
