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
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # numpy is not imported at start-up: `interop --help` and discovery stay light
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
    "IntermediateSpec",
    "IntermediatesSession",
    "supports_intermediates",
    "input_index_ranges",
    "VALUE_MAP_METADATA_KEY",
    "InteropError",
    "ModelLoadError",
    "UnsupportedModelError",
    "ConversionError",
    "PluginDeclarationError",
    "resolve",
    # --- 1.1: session metadata, options (core engineer's block) ---
    "METADATA_PRECISION",
    "METADATA_IO_NAMES",
    "METADATA_SCALAR_IO",
    "METADATA_SOURCE_OPSET",
    "METADATA_SOURCE_PRODUCER",
    "METADATA_INTEROP_VERSION",
    "METADATA_WEIGHT_COMPRESSION",
    "session_metadata",
    "option_values",
    "OPTION_TYPES",
    # --- end of 1.1 session metadata block ---
]

#: (major, minor) of this API. Plugins declare the major they target.
PLUGIN_API_VERSION: tuple[int, int] = (1, 3)

_NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")
_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_OPTION_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


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
    """A model input or output: name, numpy dtype name, shape (None/str = dynamic).

    ``max_shape`` (since 1.1) is for runtimes that bound dynamic dimensions (Core
    ML's flexible shapes do): the largest size each dimension accepts, ``None``
    where unbounded; ``None`` altogether when the runtime enforces no bound.
    interop keeps its batches within it.
    """

    name: str
    dtype: str
    shape: tuple[int | str | None, ...]
    max_shape: tuple[int | None, ...] | None = None

    def is_dynamic(self, axis: int) -> bool:
        return not isinstance(self.shape[axis], int)

    def max_size(self, axis: int) -> int | None:
        """The largest size dimension ``axis`` accepts: its fixed size, its bound, or None (unbounded)."""
        if isinstance(self.shape[axis], int):
            return int(self.shape[axis])  # type: ignore[arg-type]
        if self.max_shape is not None and axis < len(self.max_shape):
            return self.max_shape[axis]
        return None


@runtime_checkable
class Session(Protocol):
    """A model loaded in a runtime, ready to run numpy inputs.

    ``engine`` names what computes the numbers (for example
    ``"mylib 2.1 (reference interpreter)"``); it wins over the declaring
    :class:`Runtime`'s ``engine``, which is only what is expected before a model
    is loaded. ``versions`` maps package names to versions used, for reports.
    ``inputs`` and ``outputs`` carry the names users see: a converted copy must
    keep its source's names, because ``interop check`` matches outputs by name.

    Since 1.1 a session may also have ``metadata``: a ``Mapping[str, str]`` of
    what the model file records about itself, keyed by the ``METADATA_*``
    constants for what crosses the boundary (the core reads the recorded
    compute precision from it). It is optional: read it with
    :func:`session_metadata`, never as a required attribute.
    """

    engine: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    versions: dict[str, str]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


# ------------------------------------------------ API 1.1: intermediate values (interop check --locate)
#
# An optional Session capability: a session that can return the values computed
# inside its model lets ``interop check --locate`` find the first operation whose
# output diverges while its inputs still agree. Sessions without it keep working;
# --locate then says that this runtime cannot show intermediate values.


@dataclass(frozen=True)
class IntermediateSpec:
    """A value computed inside a model that a session can return on request (API 1.1).

    ``name`` is the session's own name for the value (what :meth:`IntermediatesSession.run_intermediates`
    takes and returns). ``op_type`` and ``op_name`` describe the operation that produces it;
    ``inputs`` names the values that operation reads (other intermediate values or model
    inputs; constants and weights are left out). Two fields pair a value with the same value
    in another copy of the model:

    * ``source``: the name this value had in the model it was converted from, when the
      converter recorded it (a converted model's variable -> the ONNX value it translates;
      an ONNX value -> the source framework's graph node it was exported from);
    * ``scope``: the layer or module the operation belongs to (a module path such as
      ``"layer1.0.bn1"``, a layer name), used to pair the last value of each scope when
      the names differ.
    """

    name: str
    op_type: str = ""
    op_name: str = ""
    inputs: tuple[str, ...] = ()
    source: str | None = None
    scope: str | None = None


@runtime_checkable
class IntermediatesSession(Protocol):
    """The optional Session capability behind ``--locate`` (API 1.1).

    ``intermediates()`` lists every value the session can return, in an order in which
    the model can compute them (each value after the values it reads).
    ``run_intermediates(feeds, names)`` runs the model on ``feeds`` and returns the
    values named (a subset of ``intermediates()``'s names) as numpy arrays. Callers ask
    for a bounded number of names per call, so a model with thousands of values is
    compared chunk by chunk without holding them all in memory at once.
    """

    def intermediates(self) -> list[IntermediateSpec]: ...

    def run_intermediates(
        self, feeds: Mapping[str, np.ndarray], names: Sequence[str]
    ) -> dict[str, np.ndarray]: ...


def supports_intermediates(session: Any) -> bool:
    """True when ``session`` implements the API 1.1 intermediate-values capability."""
    return callable(getattr(session, "intermediates", None)) and callable(
        getattr(session, "run_intermediates", None)
    )


def input_index_ranges(session: Any) -> dict[str, tuple[float, float]]:
    """Valid values of integer inputs ``session``'s model uses as indices into a table it holds (API 1.1).

    A session may define ``input_index_ranges() -> dict[str, tuple[int, int]]``: for each
    input that selects rows of a weight (an embedding lookup: ONNX ``Gather`` on an
    initializer, a framework's embedding layer), the inclusive range of valid values. ``interop
    check`` draws such inputs from that range instead of its generic one. Sessions
    without the method, or whose method fails, give ``{}``.
    """
    method = getattr(session, "input_index_ranges", None)
    if not callable(method):
        return {}
    try:
        ranges = method() or {}
        return {str(name): (float(low), float(high)) for name, (low, high) in dict(ranges).items()}
    except Exception:  # noqa: BLE001 - an optional hint must never break a check
        return {}


#: Model metadata in which a converter records which value of the converted model each
#: value of the source model became: a JSON object ``{source name: converted name}``
#: (a translator from ONNX writes it; its session reads it into
#: :attr:`IntermediateSpec.source`).
VALUE_MAP_METADATA_KEY = "interop.value_map"


# --- 1.1: session metadata (core engineer's block) ---------------------------------------
# Keys of Session.metadata (and of the model files' own metadata) whose meaning is shared by
# the core and the plugins. Values are strings; structured values are JSON.

#: Compute precision the model was converted for: one of "fp64", "fp32", "fp16", "bf16".
METADATA_PRECISION = "interop.precision"
#: JSON {"inputs": {stored: shown}, "outputs": {stored: shown}}: the source's tensor names,
#: for formats whose own names had to differ (a session shows and accepts the shown names).
METADATA_IO_NAMES = "interop.io_names"
#: JSON {"inputs": [...], "outputs": [...]}: shown names of rank-0 tensors a format stores as (1,).
METADATA_SCALAR_IO = "interop.scalar_io"
#: Opset (ONNX default domain) of the model a converted copy was made from.
METADATA_SOURCE_OPSET = "interop.source_opset"
#: Producer (name and version) of the model a converted copy was made from.
METADATA_SOURCE_PRODUCER = "interop.source_producer"
#: Version of interop that wrote the file.
METADATA_INTEROP_VERSION = "interop.version"
#: (1.3) How the model's weights were compressed, when they were: "int8" (linear, 8 bits), "palettize8" or
#: "palettize4" (a 256- or 16-entry table). A checker judges such a model at that compression's
#: default tolerances instead of its compute precision's.
METADATA_WEIGHT_COMPRESSION = "interop.weight_compression"


def session_metadata(session: Any) -> Mapping[str, str]:
    """A session's ``metadata`` mapping, or an empty one for sessions without (API 1.0 plugins)."""
    metadata = getattr(session, "metadata", None)
    return metadata if isinstance(metadata, Mapping) else {}


# --- end of 1.1 session metadata block ---------------------------------------------------


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of the reference MLP (defaults are the tutorial's)."""

    epochs: int = 10
    batch_size: int = 10
    lr: float = 0.1
    seed: int = 0
    hidden: int = 64
    #: (1.2) Path of the model to start from (``interop train --init``), in one of the trainer's
    #: ``init_formats``; ``None`` builds the reference MLP. interop converts and, for ``--reinit``,
    #: re-draws its weights before the trainer sees it.
    init: str | None = None


@dataclass(frozen=True)
class TrainData:
    """The stratified split a trainer receives (Iris, or a CSV since 1.2), plus normalisation stats.

    ``x_*`` are float32 features (Iris: petal length/width in cm); ``y_*`` int64 class
    indices into ``class_names``. ``mean``/``std`` must be baked into the saved model so
    it takes raw values; ``input_name`` (1.2) names its input.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    class_names: tuple[str, ...]
    feature_names: tuple[str, ...]
    #: (1.2) int64 ``[epochs, len(x_train)]``: row ``e`` is the order in which epoch ``e + 1``
    #: visits ``x_train`` (batches are consecutive slices of it). Computed by interop from the
    #: seed, so every trainer that follows it (``Trainer.follows_batch_order``) sees the same
    #: batches. ``None`` when the caller has none: shuffle as you like.
    batch_order: np.ndarray | None = None
    input_name: str = "petal"


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


#: The value types an :class:`Option` may declare.
OPTION_TYPES = ("str", "int", "float", "bool")
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Option:
    """A converter option, declared once by the plugin whose converter reads it.

    Users give it as ``--NAME`` (a flag ``interop convert`` generates from this
    declaration, ``_`` written ``-``; ``--NAME/--no-NAME`` for a bool), as
    ``-O NAME=VALUE``, or from Python as ``options={"NAME": value}``. ``type`` is
    one of ``"int"``, ``"float"``, ``"str"``, ``"bool"``; ``choices`` restricts the
    values; ``minimum``/``maximum`` (since 1.1) bound an int or float. The core
    checks every value against this declaration (:meth:`coerce`) before the
    converter runs, so a converter receives each option it declares, parsed,
    checked, and set to ``default`` when the user gave none.
    """

    name: str
    type: str = "str"
    default: Any = None
    help: str = ""
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    @property
    def flag(self) -> str:
        """The command-line flag of this option: ``--max-dynamic-dim`` for ``max_dynamic_dim``."""
        return "--" + self.name.replace("_", "-")

    def parse(self, raw: str) -> Any:
        """Turn a command-line string into this option's value, or raise InteropError."""
        return self.coerce(raw)

    def coerce(self, value: Any) -> Any:
        """``value`` (a command-line string or a Python value) as this option's type, checked.

        Raises InteropError (exit 2) naming the option when the value has the
        wrong type, is not one of ``choices`` or lies outside ``minimum``/``maximum``.
        """
        if isinstance(value, str) and self.type != "str":
            value = self._from_text(value)
        elif not self._has_type(value):
            raise InteropError(
                f"option {self.name} expects {self._type_words()}, got {value!r}",
                hint=self._hint(),
            )
        if self.type == "float":
            value = float(value)
        if self.choices and value not in self.choices:
            raise InteropError(
                f"option {self.name} must be one of {', '.join(map(str, self.choices))}, got {value!r}"
            )
        if self.minimum is not None and value < self.minimum:
            raise InteropError(f"option {self.name} must be at least {self.minimum:g}, got {value!r}")
        if self.maximum is not None and value > self.maximum:
            raise InteropError(f"option {self.name} must be at most {self.maximum:g}, got {value!r}")
        return value

    def validate(self) -> None:
        """Raise PluginDeclarationError when the declaration itself is malformed."""
        if not isinstance(self.name, str) or not _OPTION_NAME.match(self.name):
            raise PluginDeclarationError(
                f"option name {self.name!r} is invalid",
                hint="use lower-case letters, digits and '_', starting with a letter",
            )
        if self.type not in OPTION_TYPES:
            raise PluginDeclarationError(
                f"option {self.name}: type {self.type!r} is not one of {', '.join(OPTION_TYPES)}"
            )
        if (self.minimum is not None or self.maximum is not None) and self.type not in ("int", "float"):
            raise PluginDeclarationError(f"option {self.name}: minimum/maximum apply to int and float options only")
        for value in self.choices:
            if not self._has_type(value):
                raise PluginDeclarationError(f"option {self.name}: choice {value!r} is not of type {self.type}")
        if self.default is not None:
            try:
                self.coerce(self.default)
            except InteropError as exc:
                raise PluginDeclarationError(f"option {self.name}: default is invalid: {exc.message}") from None

    def _has_type(self, value: Any) -> bool:
        if self.type == "bool":
            return isinstance(value, bool)
        if self.type == "int":
            return isinstance(value, int) and not isinstance(value, bool)
        if self.type == "float":
            return isinstance(value, (int, float)) and not isinstance(value, bool)
        return isinstance(value, str)

    def _from_text(self, raw: str) -> Any:
        text = raw.strip()
        try:
            if self.type == "int":
                return int(text)
            if self.type == "float":
                return float(text)
            lowered = text.lower()
            if lowered in _TRUE | _FALSE:
                return lowered in _TRUE
        except ValueError:
            pass
        raise InteropError(f"option {self.name} expects {self._type_words()}, got {raw!r}", hint=self._hint())

    def _type_words(self) -> str:
        return {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}[self.type]

    def _hint(self) -> str:
        if self.type == "bool":
            return f"give {self.flag} or --no-{self.flag[2:]}, or -O {self.name}=true|false"
        if self.choices:
            return f"{self.flag} takes one of {', '.join(map(str, self.choices))}"
        return f"for example {self.flag}=" + {"int": "1", "float": "0.5", "bool": "true", "str": "VALUE"}[self.type]


def option_values(declared: Sequence[Option], given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every declared option's value: ``given``'s, checked by its :class:`Option`, else the default (since 1.1).

    A converter called directly (in a plugin's own tests, or by a library) gets
    the same checks as through ``interop convert``. A name in ``given`` that no
    option declares is an InteropError; a ``None`` value means "not given".
    """
    given = dict(given or {})
    unknown = sorted(name for name, value in given.items()
                     if value is not None and name not in {o.name for o in declared})
    if unknown:
        known = ", ".join(o.name for o in declared) or "none"
        raise InteropError(f"unknown option {', '.join(unknown)}", hint=f"options declared here: {known}")
    return {o.name: o.default if given.get(o.name) is None else o.coerce(given[o.name]) for o in declared}


@dataclass(frozen=True)
class Format:
    """A model format: how to recognise it without loading a framework.

    ``extensions`` are file suffixes (``".onnx"``); ``directory_markers`` are file
    names whose presence inside a directory marks the format (``"saved_model.pb"``);
    ``directory_suffixes`` are suffixes of directory formats (``".mymodel"``).
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
    availability; ``available`` (since 1.1, as for :class:`Runtime`) optionally
    points to ``available() -> tuple[bool, str]``; ``environment`` names a separate
    Python environment to run in (see docs/plugins.md).
    """

    source: str
    target: str
    impl: str
    options: tuple[Option, ...] = ()
    requires: tuple[str, ...] = ()
    description: str = ""
    environment: str | None = None
    priority: int = 0
    available: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.target)

    def validate(self) -> None:
        _check_name("converter source", self.source)
        _check_name("converter target", self.target)
        _check_path(f"converter {self.source}->{self.target} impl", self.impl)
        _check_path(f"converter {self.source}->{self.target} available", self.available, required=False)
        seen: set[str] = set()
        for option in self.options:
            if not isinstance(option, Option):
                raise PluginDeclarationError(
                    f"converter {self.source}->{self.target}: options holds {type(option).__name__}, expected Option"
                )
            try:
                option.validate()
            except PluginDeclarationError as exc:
                raise PluginDeclarationError(f"converter {self.source}->{self.target}: {exc.message}",
                                             hint=exc.hint) from None
            if option.name in seen:
                raise PluginDeclarationError(
                    f"converter {self.source}->{self.target}: option {option.name!r} is declared twice"
                )
            seen.add(option.name)


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
    ``extension`` is the suffix of the saved file (``".onnx"``). ``available``
    (since 1.1, as for :class:`Runtime`) optionally points to
    ``available() -> tuple[bool, str]``.

    Since 1.2: ``init_formats`` lists the formats of a model the trainer can start
    from (``TrainConfig.init``; empty: it trains only the reference MLP), and
    ``follows_batch_order`` says the trainer visits the data in
    ``TrainData.batch_order`` (trainers that do not keep their own shuffling).
    """

    framework: str
    format: str
    extension: str
    impl: str
    requires: tuple[str, ...] = ()
    environment: str | None = None
    priority: int = 0
    available: str | None = None
    init_formats: tuple[str, ...] = ()
    follows_batch_order: bool = False

    def validate(self) -> None:
        _check_name("trainer framework", self.framework)
        _check_name("trainer format", self.format)
        for fmt in self.init_formats:
            _check_name(f"trainer {self.framework} init format", fmt)
        _check_path(f"trainer {self.framework} impl", self.impl)
        _check_path(f"trainer {self.framework} available", self.available, required=False)


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

