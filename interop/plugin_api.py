"""The public, versioned plugin API of interop.

Everything a plugin author needs lives in this one module: the declarations a
plugin publishes (:class:`Plugin`, :class:`Format`, :class:`Converter`,
:class:`Runtime`, :class:`Trainer`, :class:`Option`), the shapes of the objects its
implementations return (:class:`TensorSpec`, :class:`Session`,
:class:`TrainResult`), and the errors it may raise.

A plugin is a module-level :class:`Plugin` object exposed through the entry-point
group ``interop.plugins``::

    [project.entry-points."interop.plugins"]
    numpy-mlp = "interop_numpy_mlp:plugin"

Declarations name their implementations by dotted import path
(``"package.module:attribute"``) so that reading them imports no framework; the
implementation is imported the first time it is used.

Compatibility policy: :data:`PLUGIN_API_VERSION` is ``(major, minor)``. A plugin
declares the major version it was written for (``api_version``); interop loads
plugins of the same major version. Minor versions only add (new optional fields,
new helpers); anything removed or changed goes through a ``DeprecationWarning``
for at least one minor release and disappears only with a new major version.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "PLUGIN_API_VERSION",
    "Plugin",
    "Format",
    "Converter",
    "Runtime",
    "Trainer",
    "Option",
    "Environment",
    "EpochCallback",
    "TensorSpec",
    "Session",
    "TrainConfig",
    "TrainData",
    "TrainResult",
    "InteropError",
    "ModelLoadError",
    "UnsupportedModelError",
    "ConversionError",
    "PluginDeclarationError",
    "resolve",
]

#: (major, minor) of this API. Plugins declare the major they target.
PLUGIN_API_VERSION: tuple[int, int] = (1, 0)

_NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")
_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


# --------------------------------------------------------------------------- errors


class InteropError(Exception):
    """Base of the errors interop reports as one line with an exit code.

    ``hint`` tells the user what to do; the CLI prints ``error: <message>`` and,
    when present, ``hint: <hint>``.
    """

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class ModelLoadError(InteropError):
    """The input file is missing, corrupt or not of the format it claims (exit 2)."""

    exit_code = 2


class UnsupportedModelError(InteropError):
    """The model is valid but uses something no converter here handles (exit 3)."""

    exit_code = 3


class ConversionError(InteropError):
    """A converter failed on a model it claimed to support (exit 4)."""

    exit_code = 4


class PluginDeclarationError(InteropError):
    """A plugin's declaration is malformed; names the plugin and the field (exit 4)."""

    exit_code = 4


# ----------------------------------------------------------------------- run-time data


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output: name, numpy dtype name, shape (None/str = dynamic)."""

    name: str
    dtype: str
    shape: tuple[int | str | None, ...]

    def is_dynamic(self, axis: int) -> bool:
        return not isinstance(self.shape[axis], int)


@runtime_checkable
class Session(Protocol):
    """A model loaded in a runtime, ready to run numpy inputs.

    ``engine`` names what computes the numbers (for example
    ``"coreml (reference interpreter)"``); ``versions`` maps package names to
    versions used, for reports.
    """

    engine: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    versions: dict[str, str]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of the reference MLP (defaults are the tutorial's)."""

    epochs: int = 10
    batch_size: int = 10
    lr: float = 0.1
    seed: int = 0
    hidden: int = 64


@dataclass(frozen=True)
class TrainData:
    """The stratified Iris split a trainer receives, plus normalisation stats.

    ``x_*`` are float32 petal length/width in cm; ``y_*`` int64 class indices.
    ``mean``/``std`` must be baked into the saved model so it takes raw cm.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    class_names: tuple[str, ...]
    feature_names: tuple[str, ...]


@dataclass
class TrainResult:
    """What a trainer reports; ``history`` holds one dict per epoch."""

    framework: str
    path: str
    train_accuracy: float
    test_accuracy: float
    final_loss: float
    history: list[dict[str, float]] = field(default_factory=list)


#: Called by a trainer after every epoch with (epoch, loss, train_accuracy).
EpochCallback = Callable[[int, float, float], None]


# ----------------------------------------------------------------------- declarations


def resolve(import_path: str) -> Any:
    """Import ``"package.module:attr.sub"`` and return the attribute."""
    module_name, _, attr = import_path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _check_name(kind: str, value: str) -> None:
    if not isinstance(value, str) or not _NAME.match(value):
        raise PluginDeclarationError(
            f"{kind} name {value!r} is invalid",
            hint="use lower-case letters, digits, '-', '_' or '.', starting with a letter",
        )


def _check_path(kind: str, value: str | None, required: bool = True) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or not _IMPORT_PATH.match(value):
        raise PluginDeclarationError(
            f"{kind} {value!r} is not an import path",
            hint="write it as 'package.module:attribute'",
        )


@dataclass(frozen=True)
class Option:
    """A converter option, exposed on the CLI as ``--option NAME=VALUE``.

    ``type`` is one of ``"int"``, ``"float"``, ``"str"``, ``"bool"``; ``choices``
    restricts str values.
    """

    name: str
    type: str = "str"
    default: Any = None
    help: str = ""
    choices: tuple[str, ...] = ()

    def parse(self, raw: str) -> Any:
        """Turn a command-line string into this option's value, or raise InteropError."""
        try:
            if self.type == "int":
                value: Any = int(raw)
            elif self.type == "float":
                value = float(raw)
            elif self.type == "bool":
                lowered = raw.strip().lower()
                if lowered not in {"1", "0", "true", "false", "yes", "no"}:
                    raise ValueError(raw)
                value = lowered in {"1", "true", "yes"}
            else:
                value = raw
        except ValueError:
            raise InteropError(
                f"option {self.name} expects {self.type}, got {raw!r}"
            ) from None
        if self.choices and value not in self.choices:
            raise InteropError(
                f"option {self.name} must be one of {', '.join(self.choices)}, got {raw!r}"
            )
        return value


@dataclass(frozen=True)
class Format:
    """A model format: how to recognise it without loading a framework.

    ``extensions`` are file suffixes (``".keras"``); ``directory_markers`` are file
    names whose presence inside a directory marks the format (``"saved_model.pb"``);
    ``directory_suffixes`` are suffixes of directory formats (``".mlpackage"``).
    ``sniff`` is an optional import path to ``sniff(path: Path) -> str | None``
    returning ``None`` when the file looks right and otherwise the reason it does
    not; it must read only a few bytes and import no framework.
    """

    name: str
    extensions: tuple[str, ...] = ()
    directory_markers: tuple[str, ...] = ()
    directory_suffixes: tuple[str, ...] = ()
    sniff: str | None = None
    description: str = ""
    priority: int = 0

    def validate(self) -> None:
        _check_name("format", self.name)
        _check_path(f"format {self.name} sniff", self.sniff, required=False)
        for ext in (*self.extensions, *self.directory_suffixes):
            if not ext.startswith("."):
                raise PluginDeclarationError(
                    f"format {self.name}: extension {ext!r} must start with '.'"
                )


@dataclass(frozen=True)
class Converter:
    """Converts files of format ``source`` into format ``target``.

    ``impl`` points to ``convert(src: Path, dst: Path, options: Mapping) -> None``,
    which writes exactly ``dst`` (a temporary path the core renames on success).
    ``requires`` lists the Python distributions it needs, checked cheaply for
    availability; ``environment`` names a separate Python environment to run in
    (see docs/plugins.md).
    """

    source: str
    target: str
    impl: str
    options: tuple[Option, ...] = ()
    requires: tuple[str, ...] = ()
    description: str = ""
    environment: str | None = None
    priority: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.target)

    def validate(self) -> None:
        _check_name("converter source", self.source)
        _check_name("converter target", self.target)
        _check_path(f"converter {self.source}->{self.target} impl", self.impl)


@dataclass(frozen=True)
class Runtime:
    """Executes models of some formats.

    ``load`` points to ``load(path: Path) -> Session``; ``available`` optionally
    points to ``available() -> tuple[bool, str]`` (the str says why not), which
    must be cheap (``importlib.util.find_spec``, a platform check).
    """

    name: str
    formats: tuple[str, ...]
    load: str
    available: str | None = None
    requires: tuple[str, ...] = ()
    engine: str = ""
    description: str = ""
    environment: str | None = None
    priority: int = 0

    def validate(self) -> None:
        _check_name("runtime", self.name)
        if not self.formats:
            raise PluginDeclarationError(f"runtime {self.name} declares no formats")
        for fmt in self.formats:
            _check_name(f"runtime {self.name} format", fmt)
        _check_path(f"runtime {self.name} load", self.load)
        _check_path(f"runtime {self.name} available", self.available, required=False)


@dataclass(frozen=True)
class Trainer:
    """Trains the reference MLP in a framework and saves it in ``format``.

    ``impl`` points to ``train(dst: Path, data: TrainData, config: TrainConfig,
    on_epoch: EpochCallback) -> TrainResult`` writing exactly ``dst``.
    ``extension`` is the suffix of the saved file (``".keras"``).
    """

    framework: str
    format: str
    extension: str
    impl: str
    requires: tuple[str, ...] = ()
    environment: str | None = None
    priority: int = 0

    def validate(self) -> None:
        _check_name("trainer framework", self.framework)
        _check_name("trainer format", self.format)
        _check_path(f"trainer {self.framework} impl", self.impl)


@dataclass(frozen=True)
class Environment:
    """A separate Python environment a plugin's implementations run in.

    ``python`` is the interpreter path, relative to the directory named by the
    environment variable ``INTEROP_ENV_<NAME>`` if set, else to the current
    working directory; ``setup_hint`` tells the user how to create it.
    """

    name: str
    python: str
    setup_hint: str = ""
    timeout: float = 600.0


@dataclass(frozen=True)
class Plugin:
    """Everything one plugin contributes. Expose an instance as an entry point."""

    name: str
    api_version: int
    formats: tuple[Format, ...] = ()
    converters: tuple[Converter, ...] = ()
    runtimes: tuple[Runtime, ...] = ()
    trainers: tuple[Trainer, ...] = ()
    environments: tuple[Environment, ...] = ()
    description: str = ""

    def validate(self) -> None:
        """Raise PluginDeclarationError naming the first malformed field."""
        _check_name("plugin", self.name)
        if not isinstance(self.api_version, int):
            raise PluginDeclarationError(
                f"plugin {self.name}: api_version must be an int, got {self.api_version!r}"
            )
        groups: Sequence[tuple[str, tuple[Any, ...], type]] = (
            ("formats", self.formats, Format),
            ("converters", self.converters, Converter),
            ("runtimes", self.runtimes, Runtime),
            ("trainers", self.trainers, Trainer),
            ("environments", self.environments, Environment),
        )
        for label, items, kind in groups:
            for item in items:
                if not isinstance(item, kind):
                    raise PluginDeclarationError(
                        f"plugin {self.name}: {label} holds {type(item).__name__}, "
                        f"expected {kind.__name__}"
                    )
                if hasattr(item, "validate"):
                    item.validate()
        env_names = {env.name for env in self.environments}
        for item in (*self.converters, *self.runtimes, *self.trainers):
            if item.environment is not None and item.environment not in env_names:
                raise PluginDeclarationError(
                    f"plugin {self.name}: environment {item.environment!r} is used "
                    "but not declared in environments"
                )

