"""The demo's four stages: train, convert, check, write; each timed and reported as it goes.

Who takes part is the data table of :mod:`interop.demo.lineup`. Besides one lineage per
framework, the demo trains the tutorial's story (``DESIGN_ROW``): a design made in one
framework and saved untrained, trained in another with ``--init`` (through ONNX), then
copied to the ``COPY_FORMATS`` like every other source. It starts from the design row's
weights and follows interop's batch order, so its decision regions are that row's.

A lineage whose framework runs in another Python environment (a plugin's declared
environment) has its first steps queued on a background thread from the start
(train, ONNX copy): they spend their time in that environment's processes, so
they overlap the in-process work on a multi-core machine, and each stage waits
only for its own step. The check runs every model once; the figures and the
report are drawn from those very outputs.
"""

from __future__ import annotations

import importlib
import importlib.util
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from interop.datasets import INPUT_NAME, OUTPUT_NAME, iris_grid, load_iris
from interop.demo.checking import check_lineages
from interop.demo.lineup import (
    COPY_FORMATS,
    DESIGN_ROW,
    FORMAT_LABELS,
    FRAMEWORK_LABELS,
    OPTIONAL_FRAMEWORKS,
    REQUIRED_FRAMEWORKS,
)
from interop.demo.model import DemoResult, Lineage, Model, RunResult, framework_names
from interop.demo.files import write_outputs
from interop.demo.progress import Echo, LiveLine, Progress
from interop.library_messages import library_messages
from interop.plugin_api import InteropError
from interop.plugin_registry import Registry, availability, get_registry
from interop.runtime_choice import RuntimeChoice, choose_runtime

STAGES = 4


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
        for fmt in (trainer.format, *COPY_FORMATS):
            if fmt not in runtimes:
                runtimes[fmt] = choose_runtime(fmt, registry)
        stem = folder / f"iris-{framework}"
        source = Model(framework, trainer.format, stem.with_suffix(trainer.extension),
                       runtimes[trainer.format].runtime, is_source=True)
        copies = [Model(framework, fmt, stem.with_suffix(_suffix(fmt, registry)), runtimes[fmt].runtime)
                  for fmt in COPY_FORMATS]
        environment = registry.environment_for(provided)
        lineages.append(Lineage(framework, source, copies, in_other_environment=environment is not None,
                                environment_setup=environment.setup_hint if environment else ""))
    designer, trainer_name = DESIGN_ROW
    if designer in frameworks and trainer_name in frameworks:
        lineages.append(_design_lineage(folder, designer, trainer_name, registry, runtimes))
    return lineages, runtimes


def _design_lineage(folder: Path, designer: str, framework: str, registry: Registry,
                    runtimes: dict[str, RuntimeChoice]) -> Lineage:
    """The row of a design saved untrained by ``designer`` and trained by ``framework`` through --init."""
    design_trainer = registry.trainers[designer].item
    trainer = registry.trainers[framework].item
    stem = folder / f"iris-{designer}-design-{framework}"
    origin = f"{FRAMEWORK_LABELS.get(designer, designer)} design"
    source = Model(framework, trainer.format, stem.with_suffix(trainer.extension),
                   runtimes[trainer.format].runtime, is_source=True, origin=origin)
    copies = [Model(framework, fmt, stem.with_suffix(_suffix(fmt, registry)), runtimes[fmt].runtime)
              for fmt in COPY_FORMATS]  # titled "<trainer> → <format>": the row's first panel names the design
    design = (folder / f"iris-{designer}-design").with_suffix(design_trainer.extension)
    return Lineage(framework, source, copies, design=design, design_framework=designer)


def _suffix(fmt: str, registry: Registry) -> str:
    """The file suffix a model of ``fmt`` is given: the first its format declares."""
    provided = registry.formats.get(fmt)
    if provided is None:
        raise InteropError(f"the demo copies every model to {fmt}, a format no installed plugin declares",
                           hint="see `interop plugins`")
    return next(iter((*provided.item.extensions, *provided.item.directory_suffixes)), f".{fmt}")


def prepare_folder(folder: Path, lineages: list[Lineage], force: bool) -> None:
    """Create ``folder``; refuse to replace an earlier demo's models unless ``force``."""
    existing = [path for lineage in lineages for path in (*(m.path for m in lineage.models), lineage.design)
                if path is not None and path.exists()]
    if existing and not force:
        raise InteropError(
            f"{folder} already holds demo models ({existing[0].name}, ...)",
            hint="pass --force to replace them, or -o another folder",
        )
    folder.mkdir(parents=True, exist_ok=True)


# --------------------------------------------------------------------------- stages


@dataclass
class Steps:
    """Makes and runs the models of a lineage, reporting each step as it ends."""

    force: bool
    progress: Progress
    registry: Registry
    samples: np.ndarray

    def import_framework(self, lineage: Lineage) -> None:
        """Import what the trainer requires, timed apart: the import is most of a training's time."""
        began = time.perf_counter()
        modules = [name.replace("-", "_") for name in self.registry.trainers[lineage.framework].item.requires]
        for module in modules:
            if importlib.util.find_spec(module) is not None:
                importlib.import_module(module)
        lineage.import_seconds = time.perf_counter() - began
        self.progress.say(f"{lineage.framework}: imported {', '.join(modules)} in {lineage.import_seconds:.1f} s")

    def train(self, lineage: Lineage) -> None:
        import interop

        began = time.perf_counter()
        if not lineage.in_other_environment and lineage.design is None:  # a design row's framework is loaded
            self.import_framework(lineage)
        where = " (in its own environment, in the background)" if lineage.in_other_environment else ""
        init = None
        if lineage.design is not None and lineage.design_framework is not None:
            interop.train(lineage.design_framework, lineage.design, epochs=0, force=self.force, registry=self.registry)
            self.progress.say(f"{lineage.design_framework}: saved the untrained design {lineage.design.name}")
            init, where = lineage.design, f" from {lineage.design.name} (--init, through ONNX)"
        self.progress.say(f"{lineage.framework}: training{where} ...")
        result = interop.train(lineage.framework, lineage.source.path, force=self.force, registry=self.registry,
                               init=init)
        lineage.training = result
        lineage.source.seconds = time.perf_counter() - began
        self.progress.say(
            f"{lineage.framework}: {len(result.history)} epochs in "
            f"{lineage.source.seconds - lineage.import_seconds:.1f} s, "
            f"train accuracy {result.train_accuracy:.1%}, test accuracy {result.test_accuracy:.1%} "
            f"-> {lineage.source.path.name}"
        )

    def convert(self, src: Model, dst: Model) -> None:
        import interop

        began = time.perf_counter()
        interop.convert(src.path, dst.path, force=self.force, registry=self.registry)
        dst.seconds = time.perf_counter() - began
        self.progress.say(f"{src.path.name} -> {dst.path.name} in {dst.seconds:.1f} s")

    def first_copy(self, lineage: Lineage) -> None:
        """The ONNX copy, made from the framework's file (further copies are made from it)."""
        self.convert(lineage.source, lineage.copies[0])

@dataclass
class Queued:
    """The futures of a lineage whose steps run in the background, one per stage."""

    trained: Future[None]
    copied: Future[None]


def queue_other_environments(lineages: list[Lineage], steps: Steps, pool: ThreadPoolExecutor) -> dict[str, Queued]:
    """Queue train -> ONNX copy of every lineage living in another environment.

    Those steps spend their time in the environment's own processes, so they
    overlap the in-process stages; each stage then waits for its step only.
    """
    return {
        lineage.framework: Queued(
            pool.submit(steps.train, lineage),
            pool.submit(steps.first_copy, lineage),
        )
        for lineage in lineages if lineage.in_other_environment
    }


def train_stage(lineages: list[Lineage], steps: Steps, queued: dict[str, Queued]) -> None:
    for lineage in lineages:
        if lineage.framework not in queued:
            steps.train(lineage)
    for waiting in queued.values():
        waiting.trained.result()


def convert_stage(lineages: list[Lineage], steps: Steps, queued: dict[str, Queued]) -> None:
    for lineage in lineages:
        if lineage.framework not in queued:
            steps.first_copy(lineage)
    for waiting in queued.values():
        waiting.copied.result()
    for lineage in lineages:  # each further copy is made from the ONNX copy, sparing the framework
        for copy in lineage.copies[1:]:
            steps.convert(lineage.copies[0], copy)


def demo_inputs() -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(Iris x, Iris y, (xx, yy, grid points)): the check and the plots use the same samples."""
    iris_x, iris_y = load_iris()
    return iris_x, iris_y, iris_grid()


def check_stage(lineages: list[Lineage], steps: Steps) -> Any:
    """The check engine's verdict; every model's outputs in that check become its ``run`` (for the figures)."""
    groups = [((str(l.source.path), l.source.runtime), [(str(c.path), c.runtime) for c in l.copies])
              for l in lineages]
    ran: dict[tuple[Path, str], RunResult] = {}

    def keep(info: Any, outputs: dict[str, np.ndarray]) -> None:
        key = (Path(info.path), info.runtime)
        ran[key] = RunResult(key[0], info.runtime, info.engine, np.asarray(outputs[OUTPUT_NAME]))

    report = check_lineages(groups, {INPUT_NAME: steps.samples}, steps.registry,
                            on_progress=steps.progress.say, on_outputs=keep)
    for lineage in lineages:
        for model in lineage.models:
            model.run = ran.get((model.path, model.runtime))
    steps.progress.say(f"check engine: {len(report.pairs)} pairs, {len(report.failures)} failure(s) "
                       f"in {report.seconds:.1f} s")
    return report


def run_demo(folder: str | Path = "interop-demo", *, force: bool = False, echo: Echo = print,
             registry: Registry | None = None, library_log: str | Path | None = None,
             show_library_messages: bool = False, live: LiveLine | None = None) -> DemoResult:
    """Train, convert, check and write the plots and reports into ``folder``.

    ``library_log`` is a file (relative to ``folder`` unless absolute) that receives
    the libraries' console messages while the demo runs (see
    :mod:`interop.library_messages`; None: they are kept off the terminal only);
    ``show_library_messages`` shows them on the terminal too. ``live`` is told when each
    stage starts and ends (the CLI's console draws the stage's elapsed time on a terminal).
    """
    progress = Progress(STAGES, echo, live)
    registry = registry or get_registry()
    folder = Path(folder)
    if importlib.util.find_spec("matplotlib") is None:  # fail before a minute of training, not after
        raise InteropError("the demo draws its figures with matplotlib, which is not installed",
                           hint="pip install 'interop[plots]' (or: pip install matplotlib)")
    frameworks, skipped = select_frameworks(registry)
    lineages, runtimes = plan_lineages(folder, frameworks, registry)
    prepare_folder(folder, lineages, force)
    for framework, why in skipped:
        echo(f"note: {framework} is left out: {why}")
    log = folder / library_log if library_log else None
    if log is not None:
        echo(f"messages of the libraries go to {log}")
    try:
        with library_messages(log, echo=show_library_messages):
            return _run_stages(folder, lineages, runtimes, skipped, force, progress, registry)
    except BaseException:
        if log is not None:
            echo(f"the demo stopped; the libraries' messages are in {log}")
        raise


def _run_stages(
    folder: Path, lineages: list[Lineage], runtimes: dict[str, RuntimeChoice], skipped: list[tuple[str, str]],
    force: bool, progress: Progress, registry: Registry,
) -> DemoResult:
    iris_x, iris_y, grid = demo_inputs()
    steps = Steps(force, progress, registry, np.concatenate([iris_x, grid[2]], axis=0))
    names = framework_names(lineages)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="interop-demo")
    try:
        with progress.stage(f"training the Iris MLP in {names}"):
            queued = queue_other_environments(lineages, steps, pool)
            train_stage(lineages, steps, queued)
        with progress.stage(f"converting each model to {' and '.join(FORMAT_LABELS.get(f, f) for f in COPY_FORMATS)}"):
            convert_stage(lineages, steps, queued)
        with progress.stage(f"checking every copy against its source on {len(iris_x)} Iris samples "
                            f"and {len(grid[2])} grid points"):
            report = check_stage(lineages, steps)
    finally:
        # On failure, queued steps that have not started are dropped rather than waited for.
        pool.shutdown(wait=True, cancel_futures=True)
    result = DemoResult(folder, lineages, skipped, runtimes, report, iris_x, iris_y, grid)
    with progress.stage(f"writing plots and reports to {folder}"):
        result.files = write_outputs(result, progress)
    result.durations = dict(progress.durations)
    result.total_seconds = progress.total
    return result
