"""The conformance kit: check that a plugin keeps the promises of its declarations.

A plugin author calls it from their own pytest suite::

    from interop.testing.conformance import assert_plugin_conforms

    def test_my_plugin_conforms(tmp_path):
        assert_plugin_conforms("my-plugin", tmp_path=tmp_path)

What is checked, each result naming the declaration it concerns:

* the declaration (and every ``sniff`` and ``available`` function it names) loads
  in a fresh interpreter without importing a heavy framework;
* every format's ``sniff`` accepts a sample model and rejects a bogus file;
* every trainer trains the reference MLP into a model its format recognises;
* every converter turns a sample of its source format into a file of its target
  format, and the runtime `interop check` would choose for the target format computes
  what the one for the source format computes, judged by `interop check`'s own rules
  (:func:`interop.testing.compare_outputs`: inputs and outputs matched by name, the
  default tolerance of the pair's precision), so a plugin the kit passes passes
  every user's check too;
* every runtime loads its sample, describes inputs and outputs, and runs it.

Samples come from ``sample_models`` (format name -> path) first, else from a
trainer of that format (the reference MLP, 3 epochs), else from a trainer of
another format converted along the installed routes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interop.builtin_plugins import FRAMEWORK_MODULES
from interop.plugin_api import Converter, Plugin, Session, TensorSpec, UnsupportedModelError
from interop.plugin_registry import LoadedPlugin, Provided, Registry, availability, discover

#: Modules a declaration must not import (checked in a fresh interpreter): the frameworks' (a data table).
HEAVY_MODULES = FRAMEWORK_MODULES
SAMPLE_EPOCHS = 3
#: Samples fed to compare a converter's output with its source's.
SAMPLE_BATCH = 5


@dataclass
class ConformanceReport:
    """What passed, what failed (declaration -> reason) and what could not run here."""

    plugin: str
    passed: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        lines = [f"conformance of plugin {self.plugin!r}: {len(self.passed)} passed, "
                 f"{len(self.failures)} failed, {len(self.skipped)} could not run here"]
        lines += [f"  FAIL {what}: {why}" for what, why in self.failures]
        lines += [f"  SKIP {what}: {why}" for what, why in self.skipped]
        lines += [f"  ok   {what}" for what in self.passed]
        return "\n".join(lines)

    __str__ = summary


class _Checker:
    """One run of the kit: the registry, the samples it made, the report it fills."""

    def __init__(self, loaded: LoadedPlugin, registry: Registry, samples: Mapping[str, Path],
                 tmp_path: Path, entry_point: str | None):
        self.loaded, self.registry, self.tmp = loaded, registry, tmp_path
        self.plugin: Plugin = loaded.plugin  # type: ignore[assignment]
        self.samples: dict[str, Path] = {k: Path(v) for k, v in samples.items()}
        self.sample_errors: dict[str, str] = {}
        self.entry_point = entry_point
        self.report = ConformanceReport(self.plugin.name)

    # ------------------------------------------------------------------ outcome helpers

    def run_step(self, what: str, step: Any, *args: Any) -> Any:
        """Run one check; an exception becomes a failure naming ``what``."""
        try:
            result = step(*args)
        except _Skip as skip:
            self.report.skipped.append((what, str(skip)))
            return None
        except Exception as exc:  # noqa: BLE001 - every failure is reported, not raised
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            self.report.failures.append((what, f"{type(exc).__name__}: {message}"))
            return None
        self.report.passed.append(what)
        return result

    def provided(self, item: Any) -> Provided[Any]:
        return Provided(item, self.loaded)

    def usable(self, provided: Provided[Any], what: str) -> None:
        ok, why = availability(provided, self.registry)
        if not ok:
            raise _Skip(f"{what} cannot run here: {why}")

    # ------------------------------------------------------------------ samples

    def sample(self, fmt: str) -> Path:
        """A model of ``fmt``: supplied, trained, or trained elsewhere and converted."""
        if fmt in self.samples:
            return self.samples[fmt]
        if fmt in self.sample_errors:
            raise _Skip(self.sample_errors[fmt])
        try:
            path = self._make_sample(fmt)
        except _Skip as skip:
            self.sample_errors[fmt] = str(skip)
            raise
        self.samples[fmt] = path
        return path

    def _make_sample(self, fmt: str) -> Path:
        from interop.conversion import convert
        from interop.routing import plan_route

        # A trainer of the format itself first, then ones that need no separate environment.
        trainers = sorted(self.registry.trainers.values(), key=lambda p: (
            p.item.format != fmt, p.item.environment is not None, p.item.framework))
        for provided in trainers:
            if not availability(provided, self.registry)[0]:
                continue
            if provided.item.format == fmt:
                return self._train(provided)
            try:
                plan_route(provided.item.format, fmt, self.registry)
            except Exception:  # noqa: BLE001 - this trainer's format just does not lead there
                continue
            trained = self._train(provided)
            out = self.tmp / f"sample-{fmt}{_extension(fmt, self.registry)}"
            convert(trained, out, fmt, registry=self.registry)
            return out
        raise _Skip(f"no sample model of format {fmt!r}: pass sample_models={{{fmt!r}: path}}")

    def _train(self, provided: Provided[Any]) -> Path:
        from interop.training import train

        tr = provided.item
        out = self.tmp / f"trained-{tr.framework}{tr.extension}"
        if not out.exists():
            train(tr.framework, out, epochs=SAMPLE_EPOCHS, registry=self.registry)
        return out

    # ------------------------------------------------------------------ the checks

    def check_light_declaration(self) -> None:
        if self.entry_point is None:
            raise _Skip("the plugin is not installed as an entry point, so its import cost is unknown")
        heavy = _heavy_imports_of(self.entry_point)
        if heavy:
            raise AssertionError(
                f"loading the declaration (with its sniff/available functions) imported "
                f"{', '.join(heavy)}; import frameworks inside the implementation functions"
            )

    def check_format(self, fmt_name: str) -> None:
        from interop.formats import check_content

        fmt = next(f for f in self.plugin.formats if f.name == fmt_name)
        sample = self.sample(fmt_name)
        check_content(sample, fmt_name, self.registry)
        if fmt.sniff:
            from interop.plugin_api import resolve

            bogus = self.tmp / f"bogus-{fmt_name}{(fmt.extensions or fmt.directory_suffixes or ('',))[0]}"
            if fmt.extensions:
                bogus.write_bytes(b"this is not a model\n" * 4)
            else:
                bogus.mkdir(exist_ok=True)
                for marker in fmt.directory_markers:
                    (bogus / marker).write_text("this is not a model\n")
            reason = resolve(fmt.sniff)(bogus)
            if not reason:
                raise AssertionError(f"sniff {fmt.sniff} accepted a bogus {bogus.name}")

    def check_trainer(self, provided: Provided[Any]) -> None:
        from interop.formats import check_content

        self.usable(provided, f"trainer {provided.item.framework}")
        out = self.tmp / f"trained-{provided.item.framework}{provided.item.extension}"
        if out.exists():
            return  # made (and so checked for existence) when a sample was needed
        path = self._train(provided)
        check_content(path, provided.item.format, self.registry)

    def check_runtime(self, provided: Provided[Any], fmt: str) -> None:
        self.usable(provided, f"runtime {provided.item.name}")
        session = _open(provided, self.registry, self.sample(fmt))
        outputs = session.run(reference_feeds(session.inputs))
        _check_outputs(session, outputs)

    def check_converter(self, conv: Converter) -> None:
        from interop.conversion import run_converter
        from interop.formats import check_content

        provided = self.provided(conv)
        self.usable(provided, f"converter {conv.source} -> {conv.target}")
        source = self.sample(conv.source)
        out = self.tmp / f"converted-{conv.source}-to-{conv.target}{_extension(conv.target, self.registry)}"
        options = {opt.name: opt.default for opt in conv.options}
        run_converter(provided, source, out, options, self.registry)
        check_content(out, conv.target, self.registry)
        before = _first_available_runtime(conv.source, self.registry)
        after = _first_available_runtime(conv.target, self.registry)
        if before is None or after is None:
            missing = conv.source if before is None else conv.target
            raise _Skip(f"converted, but no runtime for {missing} runs here to compare outputs")
        reference = _open(before, self.registry, source)
        candidate = _open(after, self.registry, out)
        _same_function(reference, candidate, f"{before.item.name} on {conv.source}",
                       f"{after.item.name} on {conv.target}")


class _Skip(Exception):
    """A check that cannot run on this machine (reported, not failed)."""


def _extension(fmt: str, registry: Registry) -> str:
    item = registry.formats[fmt].item if fmt in registry.formats else None
    return next(iter((*item.extensions, *item.directory_suffixes)), "") if item else ""


def _first_available_runtime(fmt: str, registry: Registry) -> Provided[Any] | None:
    """The runtime `interop check` would run ``fmt`` models on here, or None when none can."""
    from interop.runtime_choice import choose_runtime

    try:
        return choose_runtime(fmt, registry).provided
    except UnsupportedModelError:
        return None


def _open(provided: Provided[Any], registry: Registry, path: Path) -> Session:
    from interop.implementations import open_session

    return open_session(provided, registry, path)


def reference_feeds(inputs: list[TensorSpec], batch: int = SAMPLE_BATCH, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs for a check: Iris petals for a float [batch, 2] input, else `interop check`'s own random inputs.

    The values come from :func:`interop.checker.inputs.random_inputs` (the one input
    generator), with a dynamic batch axis of ``batch`` samples.
    """
    from interop.checker.inputs import random_inputs
    from interop.datasets import load_iris

    specs = list(inputs)
    dynamic = any(spec.shape and not isinstance(spec.shape[0], int) for spec in specs)
    feeds = random_inputs(specs, seed=seed, samples=batch if dynamic else None, batch_sizes=(batch,)).arrays
    rng = np.random.default_rng(seed)
    for spec in specs:
        value = feeds[spec.name]
        if value.ndim == 2 and value.shape[1] == 2 and value.dtype.kind == "f":
            x, _ = load_iris()
            feeds[spec.name] = x[rng.choice(len(x), value.shape[0], replace=len(x) < value.shape[0])].astype(value.dtype)
    return feeds


def _check_outputs(session: Session, outputs: Mapping[str, Any]) -> None:
    declared = [spec.name for spec in session.outputs]
    if sorted(outputs) != sorted(declared):
        raise AssertionError(f"run() returned outputs {sorted(outputs)}, the session declares {declared}")
    for spec in session.outputs:
        value = outputs[spec.name]
        if not isinstance(value, np.ndarray):
            raise AssertionError(f"output {spec.name} is a {type(value).__name__}, not a numpy array")
        if len(value.shape) != len(spec.shape):
            raise AssertionError(f"output {spec.name} has shape {value.shape}, declared {spec.shape}")
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise AssertionError(f"output {spec.name} holds NaN or infinity")


def _same_function(reference: Session, candidate: Session, a: str, b: str) -> None:
    """`interop check`'s verdict on the two sessions: inputs and outputs by name, its tolerances."""
    from interop.checker.inputs import cast_to_spec
    from interop.checker.models import model_precision
    from interop.checker.tolerances import lower_precision
    from interop.testing.comparison import compare_outputs

    wanted = sorted(spec.name for spec in candidate.inputs)
    given = sorted(spec.name for spec in reference.inputs)
    if wanted != given:
        raise AssertionError(
            f"{b} takes inputs {wanted}, {a} takes {given}: interop check feeds inputs by name, "
            "so a converter must keep its source's input names"
        )
    feeds = reference_feeds(reference.inputs)
    expected = reference.run(feeds)
    got = candidate.run({spec.name: cast_to_spec(feeds[spec.name], spec, b) for spec in candidate.inputs})
    precision = lower_precision(model_precision(reference)[0], model_precision(candidate)[0])
    # As check: outputs whose axis 0 is the fed batch hold samples there.
    batched = any(spec.shape and not isinstance(spec.shape[0], int) for spec in reference.inputs)
    comparison = compare_outputs(expected, got, precision=precision, samples=SAMPLE_BATCH if batched else None)
    if not comparison.passed:
        problems = "; ".join(f"output {r.name}: {r.message}" for r in comparison.failures) or "no outputs"
        raise AssertionError(
            f"{b} does not compute what {a} computes, by interop check's rules "
            f"(outputs matched by name, {precision} tolerances): {problems}"
        )


_PROBE = """
import importlib.metadata as md, json, sys
from interop.plugin_api import Plugin, resolve
ep = [e for e in md.entry_points(group="interop.plugins") if e.name == sys.argv[1]][0]
obj = ep.load()
obj = obj if isinstance(obj, Plugin) else obj()
for fmt in obj.formats:
    if fmt.sniff:
        resolve(fmt.sniff)
for rt in obj.runtimes:
    if rt.available:
        resolve(rt.available)()
heavy = json.loads(sys.argv[2])
print(json.dumps(sorted(m for m in heavy if m in sys.modules)))
"""


def _heavy_imports_of(entry_point: str) -> list[str]:
    """Heavy modules present after loading the entry point in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, entry_point, json.dumps(HEAVY_MODULES)],
        capture_output=True, text=True, timeout=120,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        raise AssertionError(f"loading the declaration in a fresh interpreter failed: {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _find_plugin(name_or_plugin: str | Plugin, registry: Registry) -> tuple[LoadedPlugin, str | None]:
    """The plugin as the registry knows it, plus its entry-point name when installed."""
    wanted = name_or_plugin if isinstance(name_or_plugin, str) else name_or_plugin.name
    for loaded in registry.plugins:
        declared = loaded.plugin.name if loaded.plugin is not None else None
        if wanted in (loaded.name, declared):
            if loaded.status != "ok":
                raise AssertionError(f"plugin {loaded.describe()} did not load: {loaded.error}")
            return loaded, loaded.name
    if isinstance(name_or_plugin, str):
        known = ", ".join(sorted(p.name for p in registry.plugins)) or "none"
        raise AssertionError(f"no installed plugin named {wanted!r}; installed: {known}")
    name_or_plugin.validate()
    loaded = LoadedPlugin(name_or_plugin.name, "(not installed)", "", "ok", plugin=name_or_plugin)
    registry.add(loaded)
    return loaded, None


def check_plugin(
    name_or_plugin: str | Plugin, *, sample_models: Mapping[str, Path] | None = None,
    tmp_path: Path, registry: Registry | None = None,
) -> ConformanceReport:
    """Run every check on a plugin (installed entry-point name, or a Plugin object)."""
    registry = registry or discover()
    loaded, entry_point = _find_plugin(name_or_plugin, registry)
    tmp_path = Path(tmp_path)
    tmp_path.mkdir(parents=True, exist_ok=True)
    checker = _Checker(loaded, registry, sample_models or {}, tmp_path, entry_point)
    plugin = checker.plugin
    checker.run_step(f"plugin {plugin.name}: declaration imports no heavy framework",
                     checker.check_light_declaration)
    for tr in plugin.trainers:
        checker.run_step(f"trainer {tr.framework}", checker.check_trainer, checker.provided(tr))
    for fmt in plugin.formats:
        checker.run_step(f"format {fmt.name}", checker.check_format, fmt.name)
    for conv in plugin.converters:
        checker.run_step(f"converter {conv.source} -> {conv.target}", checker.check_converter, conv)
    for rt in plugin.runtimes:
        for fmt_name in rt.formats:
            checker.run_step(f"runtime {rt.name} on {fmt_name}", checker.check_runtime,
                             checker.provided(rt), fmt_name)
    return checker.report


def assert_plugin_conforms(
    name_or_plugin: str | Plugin, *, sample_models: Mapping[str, Path] | None = None,
    tmp_path: Path, allow_unavailable: bool = False, registry: Registry | None = None,
) -> ConformanceReport:
    """pytest-friendly :func:`check_plugin`: raise AssertionError listing every failure.

    Checks that cannot run on this machine (a missing framework or environment) also
    fail unless ``allow_unavailable`` is set.
    """
    report = check_plugin(name_or_plugin, sample_models=sample_models, tmp_path=tmp_path,
                          registry=registry)
    if report.failures or (report.skipped and not allow_unavailable):
        raise AssertionError(report.summary())
    return report


__all__ = ["check_plugin", "assert_plugin_conforms", "ConformanceReport", "reference_feeds",
           "HEAVY_MODULES"]
