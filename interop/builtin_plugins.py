"""What the built-in plugins provide, as data: so an error can say which distribution to pip install.

The core never imports a plugin by name; it discovers whatever is installed. When
something is missing (no plugin reads ``.mlpackage`` files, no trainer for keras),
this table names the built-in plugin that would provide it. It holds names only
and imports nothing; a test keeps it equal to the built-in plugins' declarations.

This is one of the core's two data tables that may name frameworks (the other is the
demo's line-up, ``interop/demo/lineup.py``; docs/architecture.md, "The core knows no
framework"): code elsewhere in the core takes names from the installed plugins.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class KnownPlugin:
    """A built-in plugin: its distribution and what it declares, by name."""

    name: str
    distribution: str
    summary: str
    formats: tuple[str, ...] = ()
    #: File extensions and directory suffixes of its formats.
    suffixes: tuple[str, ...] = ()
    converters: tuple[tuple[str, str], ...] = ()
    runtimes: tuple[str, ...] = ()
    trainers: tuple[str, ...] = ()

    @property
    def install(self) -> str:
        return f"pip install {self.distribution}"

    @property
    def disabled(self) -> bool:
        """Installed maybe, but skipped by ``INTEROP_DISABLE_PLUGINS``: installing it again would not help."""
        from interop.plugin_registry import disabled_plugin_names

        return self.name in disabled_plugin_names()


BUILTIN_PLUGINS: tuple[KnownPlugin, ...] = (
    KnownPlugin("onnx", "interop-onnx", "ONNX models (.onnx), run with ONNX Runtime",
                formats=("onnx",), suffixes=(".onnx",), runtimes=("onnxruntime",)),
    KnownPlugin("keras", "interop-keras", "Keras models (.keras, .h5, SavedModel), Keras <-> ONNX, trainer",
                formats=("keras",), suffixes=(".keras", ".h5", ".hdf5"),
                converters=(("keras", "onnx"), ("onnx", "keras")), runtimes=("keras",), trainers=("keras",)),
    KnownPlugin("torch", "interop-torch",
                "PyTorch models (.pt2, torch.export; editable source folders), PyTorch <-> ONNX, trainer",
                formats=("torch", "torch-source"), suffixes=(".pt2",),
                converters=(("torch", "onnx"), ("onnx", "torch"), ("onnx", "torch-source")),
                runtimes=("torch", "torch-source"), trainers=("torch",)),
    KnownPlugin("coreml", "interop-coreml", "Core ML ML Programs (.mlpackage), ONNX -> Core ML, two runtimes",
                formats=("coreml",), suffixes=(".mlpackage",), converters=(("onnx", "coreml"),),
                runtimes=("coreml", "coreml-interpreter")),
    KnownPlugin("mxnet", "interop-mxnet", "MXNet Gluon exports (.mxnet), MXNet -> ONNX, trainer (own environment)",
                formats=("mxnet",), suffixes=(".mxnet",), converters=(("mxnet", "onnx"),),
                runtimes=("mxnet",), trainers=("mxnet",)),
)


#: The top-level modules of the frameworks and converters the built-in plugins bring in: a plugin's
#: declaration, ``import interop``, ``interop --help`` and ``interop plugins`` import none of them.
FRAMEWORK_MODULES = ("tensorflow", "keras", "torch", "coremltools", "onnxruntime", "tf2onnx", "mxnet")


def _hint(plugin: KnownPlugin | None, does: str) -> str | None:
    if plugin is None:
        return None
    if plugin.disabled:
        return f"the {plugin.name} plugin {does}, but INTEROP_DISABLE_PLUGINS disables it"
    return f"the {plugin.name} plugin {does}: {plugin.install}"


def for_suffix(path: str | Path) -> KnownPlugin | None:
    """The built-in plugin whose formats use the suffix of ``path`` (longest match)."""
    name = Path(path).name.lower()
    best, length = None, 0
    for plugin in BUILTIN_PLUGINS:
        for suffix in plugin.suffixes:
            if name.endswith(suffix) and len(suffix) > length:
                best, length = plugin, len(suffix)
    return best


def for_format(fmt: str) -> KnownPlugin | None:
    return next((p for p in BUILTIN_PLUGINS if fmt in p.formats), None)


def for_runtime_of(fmt: str) -> KnownPlugin | None:
    """The built-in plugin with a runtime for ``fmt`` models."""
    owner = for_format(fmt)
    return owner if owner is not None and owner.runtimes else None


def for_trainer(framework: str) -> KnownPlugin | None:
    return next((p for p in BUILTIN_PLUGINS if framework in p.trainers), None)


def for_converter(source: str, target: str) -> KnownPlugin | None:
    return next((p for p in BUILTIN_PLUGINS if (source, target) in p.converters), None)


def suffix_hint(path: str | Path) -> str | None:
    """``"the coreml plugin reads '.mlpackage' models: pip install interop-coreml"``, or None."""
    plugin = for_suffix(path)
    suffix = next((s for s in plugin.suffixes if Path(path).name.lower().endswith(s)), "") if plugin else ""
    return _hint(plugin, f"reads {suffix!r} models")


def runtime_hint(fmt: str) -> str | None:
    return _hint(for_runtime_of(fmt), f"runs {fmt} models")


def trainer_hint(framework: str) -> str | None:
    return _hint(for_trainer(framework), f"trains with {framework}")


def converter_hint(source: str, target: str) -> str | None:
    return _hint(for_converter(source, target), f"converts {source} to {target}")


__all__ = ["KnownPlugin", "BUILTIN_PLUGINS", "FRAMEWORK_MODULES", "for_suffix", "for_format", "for_runtime_of", "for_trainer",
           "for_converter", "suffix_hint", "runtime_hint", "trainer_hint", "converter_hint"]
