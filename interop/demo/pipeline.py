"""The demo's four stages: train, convert, check, write; each timed and reported as it goes.

Work that runs in another Python environment (the MXNet plugin's) is started in
a background thread before the in-process work of the same stage, so the two
overlap on a multi-core machine instead of queueing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from interop.datasets import INPUT_NAME, iris_grid, load_iris
from interop.demo.engines import RuntimeChoice, pick_runtime
from interop.demo.predictions import RunResult, run_model
from interop.demo.progress import Echo, Progress
from interop.plugin_api import InteropError, TrainResult
from interop.registry import Registry, availability, get_registry

#: Frameworks the demo always trains, then those it adds when their plugin can run here.
REQUIRED_FRAMEWORKS = ("keras", "torch")
OPTIONAL_FRAMEWORKS = ("mxnet",)
FRAMEWORK_LABELS = {"keras": "Keras", "torch": "PyTorch", "mxnet": "MXNet"}
FORMAT_LABELS = {"onnx": "ONNX", "coreml": "Core ML"}
#: Every source is copied to these formats (file suffix); Core ML is made from the ONNX copy.
COPY_FORMATS = (("onnx", ".onnx"), ("coreml", ".mlpackage"))
#: Rows per run: the Core ML converter bounds dynamic dimensions at 1024 by default.
MAX_BATCH = 1024
STAGES = 4

T = TypeVar("T")


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

    @property
    def title(self) -> str:
        """``PyTorch`` for a source, ``PyTorch → Core ML`` for a copy."""
        name = FRAMEWORK_LABELS.get(self.framework, self.framework)
        return name if self.is_source else f"{name} → {FORMAT_LABELS.get(self.format, self.format)}"


@dataclass
class Lineage:
    """A framework's trained model and its copies, compared only with each other."""

    framework: str
    source: Model
    copies: list[Model]
    in_other_environment: bool = False
    training: TrainResult | None = None

    @property
    def models(self) -> list[Model]:
        return [self.source, *self.copies]


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


# --------------------------------------------------------------------------- planning


def select_frameworks(registry: Registry) -> tuple[list[str], list[tuple[str, str]]]:
    """The frameworks to train, and the optional ones left out with the reason."""
    chosen, skipped = [], []
    for framework in (*REQUIRED_FRAMEWORKS, *OPTIONAL_FRAMEWORKS):
        provided = registry.trainers.get(framework)
        ok, why = (False, "no plugin provides its trainer") if provided is None else availability(provided, registry)
        if ok:
            chosen.append(framework)
        elif framework in REQUIRED_FRAMEWORKS:
            raise InteropError(f"the demo needs the {framework} trainer, which cannot run here: {why}",
                               hint="see `interop plugins`")
        else:
            skipped.append((framework, why))
    return chosen, skipped


def plan_lineages(folder: Path, frameworks: list[str], registry: Registry) -> tuple[list[Lineage], dict[str, RuntimeChoice]]:
    """File names and runtimes of every model, decided before anything runs."""
    lineages, runtimes = [], {}
    for framework in frameworks:
        provided = registry.trainers[framework]
        trainer = provided.item
        for fmt in (trainer.format, *(f for f, _ in COPY_FORMATS)):
            if fmt not in runtimes:
                runtimes[fmt] = pick_runtime(fmt, registry)
        stem = folder / f"iris-{framework}"
        source = Model(framework, trainer.format, stem.with_suffix(trainer.extension),
                       runtimes[trainer.format].runtime, is_source=True)
        copies = [Model(framework, fmt, stem.with_suffix(suffix), runtimes[fmt].runtime)
                  for fmt, suffix in COPY_FORMATS]
        lineages.append(Lineage(framework, source, copies,
                                in_other_environment=registry.environment_for(provided) is not None))
    return lineages, runtimes


def prepare_folder(folder: Path, lineages: list[Lineage], force: bool) -> None:
    """Create ``folder``; refuse to replace an earlier demo's models unless ``force``."""
    existing = [m.path for lineage in lineages for m in lineage.models if m.path.exists()]
    if existing and not force:
        raise InteropError(
            f"{folder} already holds demo models ({existing[0].name}, ...)",
            hint="pass --force to replace them, or -o another folder",
        )
    folder.mkdir(parents=True, exist_ok=True)


# --------------------------------------------------------------------------- stages


def _overlapped(lineages: list[Lineage], work: Callable[[Lineage], T]) -> dict[str, T]:
    """``work`` for every lineage: those in another environment in a background thread, meanwhile the rest here."""
    results: dict[str, T] = {}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="interop-demo") as pool:
        pending: dict[str, Future[T]] = {
            lineage.framework: pool.submit(work, lineage) for lineage in lineages if lineage.in_other_environment
        }
        for lineage in lineages:
            if not lineage.in_other_environment:
                results[lineage.framework] = work(lineage)
        for framework, future in pending.items():
            results[framework] = future.result()
    return {lineage.framework: results[lineage.framework] for lineage in lineages}


def train_stage(lineages: list[Lineage], force: bool, progress: Progress, registry: Registry) -> None:
    import interop

    def train_one(lineage: Lineage) -> None:
        began = time.perf_counter()
        where = " (in its own environment)" if lineage.in_other_environment else ""
        progress.say(f"{lineage.framework}: training{where} ...")
        lineage.training = interop.train(lineage.framework, lineage.source.path, force=force, registry=registry)
        lineage.source.seconds = time.perf_counter() - began
        result = lineage.training
        progress.say(
            f"{lineage.framework}: {len(result.history)} epochs in {lineage.source.seconds:.1f} s, "
            f"train accuracy {result.train_accuracy:.1%}, test accuracy {result.test_accuracy:.1%} "
            f"-> {lineage.source.path.name}"
        )

    _overlapped(lineages, train_one)


def convert_stage(lineages: list[Lineage], force: bool, progress: Progress, registry: Registry) -> None:
    import interop

    def convert_one(src: Model, dst: Model) -> None:
        began = time.perf_counter()
        interop.convert(src.path, dst.path, force=force, registry=registry)
        dst.seconds = time.perf_counter() - began
        progress.say(f"{src.path.name} -> {dst.path.name} in {dst.seconds:.1f} s")

    def first_copy(lineage: Lineage) -> None:
        convert_one(lineage.source, lineage.copies[0])

    _overlapped(lineages, first_copy)
    for lineage in lineages:  # each further copy is made from the ONNX copy, sparing the framework
        for copy in lineage.copies[1:]:
            convert_one(lineage.copies[0], copy)


def demo_inputs() -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(Iris x, Iris y, (xx, yy, grid points)): the check and the plots use the same samples."""
    iris_x, iris_y = load_iris()
    return iris_x, iris_y, iris_grid()


def check_stage(lineages: list[Lineage], samples: np.ndarray, progress: Progress, registry: Registry) -> Any:
    """The check engine's verdict, and each model's own outputs for the plots.

    The plot runs of lineages living in another environment start first, in the
    background, so their worker's start-up overlaps the check engine's work here.
    """
    from interop.demo.equivalence import check_lineages

    def run_lineage(lineage: Lineage) -> None:
        for model in lineage.models:
            model.run = run_model(model.path, model.runtime, samples, registry, MAX_BATCH)

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="interop-demo") as pool:
        pending = [pool.submit(run_lineage, l) for l in lineages if l.in_other_environment]
        groups = [((str(l.source.path), l.source.runtime), [(str(c.path), c.runtime) for c in l.copies])
                  for l in lineages]
        report = check_lineages(groups, {INPUT_NAME: samples}, registry, MAX_BATCH, on_progress=progress.say)
        progress.say(f"check engine: {len(report.pairs)} pairs, {len(report.failures)} failure(s) "
                     f"in {report.seconds:.1f} s")
        for lineage in lineages:
            if not lineage.in_other_environment:
                run_lineage(lineage)
        for future in pending:
            future.result()
    progress.say(f"outputs of {sum(len(l.models) for l in lineages)} models for the plots, "
                 f"{time.perf_counter() - began:.1f} s for the whole stage")
    return report


def run_demo(folder: str | Path = "interop-demo", *, force: bool = False, echo: Echo = print,
             registry: Registry | None = None) -> DemoResult:
    """Train, convert, check and write the plots and reports into ``folder``."""
    progress = Progress(STAGES, echo)
    registry = registry or get_registry()
    folder = Path(folder)
    frameworks, skipped = select_frameworks(registry)
    lineages, runtimes = plan_lineages(folder, frameworks, registry)
    prepare_folder(folder, lineages, force)
    for framework, why in skipped:
        echo(f"note: {framework} is left out: {why}")
    iris_x, iris_y, grid = demo_inputs()
    samples = np.concatenate([iris_x, grid[2]], axis=0)
    names = ", ".join(FRAMEWORK_LABELS.get(f, f) for f in frameworks)

    with progress.stage(f"training the Iris MLP in {names}"):
        train_stage(lineages, force, progress, registry)
    with progress.stage("converting each model to ONNX and Core ML"):
        convert_stage(lineages, force, progress, registry)
    with progress.stage(f"checking every copy against its source on {len(iris_x)} Iris samples "
                        f"and {len(grid[2])} grid points"):
        report = check_stage(lineages, samples, progress, registry)
    result = DemoResult(folder, lineages, skipped, runtimes, report, iris_x, iris_y, grid)
    with progress.stage(f"writing plots and reports to {folder}"):
        from interop.demo.outputs import write_outputs

        result.durations = dict(progress.durations)
        result.total_seconds = progress.total
        result.files = write_outputs(result, progress)
    result.durations = dict(progress.durations)
    result.total_seconds = progress.total
    return result
