"""Plugin glue: the ``onnx -> coreml`` converter interop's core calls.

Loads the ONNX file without running anything from it, translates it with
:mod:`interop_coreml.onnx2mil` and writes the ``.mlpackage`` directory at
exactly ``dst`` (the core hands us a temporary path and renames it), then checks
that the package passes the same confinement every reader applies and that its
program reads back the way interop's runtimes read it; a package that fails either
is removed and the conversion fails.
"""

from __future__ import annotations

import collections.abc
import pathlib
import shutil

from interop.plugin_api import ConversionError, InteropError, ModelLoadError, UnsupportedModelError


# Above this file size an inline model's large weights are referenced in the file, not parsed
# (inline_weights.py); smaller files are parsed whole, which costs little.
STREAM_INLINE_ABOVE = 32 * 2**20


def load_onnx(src: pathlib.Path, *, stream_inline_above: int | None = STREAM_INLINE_ABOVE):
    """Parse an ONNX file or raise ModelLoadError.

    External data (weights in files beside the model) is not read here: the translator maps it
    from the model's folder when it needs the values (onnx2mil/weights.py), so a model past 2 GB
    is never held in memory twice. An inline model larger than ``stream_inline_above`` bytes (None:
    never) is loaded the same way: its large initializers become external data that points into the
    model's own file (:func:`interop_coreml.inline_weights.stripped_model`), and onnx's checker and
    parser see only the small rest, so neither holds the weights. The translator must then be given
    the model's folder as its ``external_data_dir``. If that stripped model does not parse or check,
    the file is loaded the normal way, which reports what is wrong with it.

    The normal way runs the checker by path, which is also what lets it check a model too large
    for one protobuf message. It runs before the load: its own copy of the model (the file's bytes
    and their parse, 2x the weights at its peak) is gone before ours is made, where checking after
    the load held three copies at once (ResNet-50: 3.0x the weights above the imports).
    """
    src = pathlib.Path(src)
    if not src.is_file():
        raise ModelLoadError(f"{src}: no such ONNX file")
    model = None
    # onnx refuses external data reached through a link, so a linked model file is parsed whole.
    if stream_inline_above is not None and not src.is_symlink() and src.stat().st_size > stream_inline_above:
        model = _load_stripped(src)
    if model is None:
        model = _load_whole(src)
    if not model.graph.node and not model.graph.output:
        raise ModelLoadError(f"{src} is not a valid ONNX model: it holds no graph")
    # The checker accepts any opset number; an operator's meaning in an opset onnx does not
    # know yet cannot be looked up, so translating it would be a guess.
    import onnx

    newest = onnx.defs.onnx_opset_version()
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and opset.version > newest:
            raise ModelLoadError(
                f"{src} declares ONNX opset {opset.version}, newer than the installed onnx "
                f"{onnx.__version__} knows ({newest})",
                hint="upgrade onnx, or export the model with an older opset",
            )
    return model


def _load_whole(src: pathlib.Path):
    import onnx

    try:
        onnx.checker.check_model(str(src))
    except Exception as error:  # noqa: BLE001 - the checker raises its own errors and protobuf's on garbage
        raise ModelLoadError(f"{src} is not a valid ONNX model: {_first_line(error)}") from None
    try:
        return onnx.load(str(src), load_external_data=False)
    except Exception as error:  # noqa: BLE001 - protobuf raises several kinds on garbage
        raise ModelLoadError(f"{src} is not a valid ONNX model: {type(error).__name__}: {error}") from None


def _load_stripped(src: pathlib.Path):
    """The model with its large inline weights referenced in ``src``, checked; None to load it whole."""
    import onnx

    from interop_coreml.inline_weights import stripped_model

    try:
        stripped = stripped_model(src)
        if stripped is None:
            return None
        data, referenced = stripped
        model = onnx.ModelProto.FromString(data)
        del data
        ours = [tensor for tensor in model.graph.initializer
                if tensor.data_location == onnx.TensorProto.EXTERNAL
                and any(entry.key == "location" and entry.value == src.name for entry in tensor.external_data)]
        # A model that had external data of its own is checked by path, where onnx resolves it.
        if len(ours) != referenced or sum(1 for _ in _external_tensors(model)) != referenced:
            return None
        # onnx's checker resolves external data in memory against the working directory, not the
        # model's folder, so it checks a copy in which the referenced tensors are empty. Of those the
        # scanner has already checked what the checker checks: one value field, a numeric type, and
        # the payload's size against the dims.
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        for tensor in copy.graph.initializer:
            if tensor.data_location == onnx.TensorProto.EXTERNAL:
                tensor.ClearField("external_data")
                tensor.ClearField("data_location")
                del tensor.dims[:]
                tensor.dims.append(0)
        onnx.checker.check_model(copy)
    except Exception:  # noqa: BLE001 - whatever is wrong, the normal path reports it as before
        return None
    return model


def _external_tensors(model):
    """Every tensor of the model (initializers, attributes, subgraphs, functions) stored as external data."""
    import onnx

    def graph_tensors(graph):
        for tensor in graph.initializer:
            yield tensor
        for sparse in graph.sparse_initializer:
            yield from (sparse.values, sparse.indices)
        for node in graph.node:
            yield from node_tensors(node)

    def node_tensors(node):
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            for sparse in ([attribute.sparse_tensor] if attribute.HasField("sparse_tensor") else []):
                yield from (sparse.values, sparse.indices)
            for sparse in attribute.sparse_tensors:
                yield from (sparse.values, sparse.indices)
            for graph in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                yield from graph_tensors(graph)

    tensors = [graph_tensors(model.graph)] + [node_tensors(node) for f in model.functions for node in f.node]
    for group in tensors:
        for tensor in group:
            if tensor.data_location == onnx.TensorProto.EXTERNAL:
                yield tensor


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def onnx_to_coreml(src: pathlib.Path, dst: pathlib.Path, options: collections.abc.Mapping[str, object]) -> None:
    """Convert the ONNX model at ``src`` into an ML Program package at ``dst``."""
    from interop_coreml.coremltools_import import import_coremltools
    from interop_coreml.quiet import no_progress_bars, quiet_coremltools

    quiet_coremltools()
    import_coremltools()  # without TensorFlow/PyTorch, which an ONNX -> Core ML conversion never needs
    from interop_coreml.onnx2mil import save_mlpackage

    try:
        with no_progress_bars():
            # A loader, not the model: the translator then holds the only reference to the ModelProto and
            # frees it (1x the weights) after its pre-pass, before the MIL program is built.
            # The module's threshold read now, so a test can lower it for the whole path.
            save_mlpackage(lambda: load_onnx(pathlib.Path(src), stream_inline_above=STREAM_INLINE_ABOVE),
                           pathlib.Path(dst),
                           external_data_dir=pathlib.Path(src).parent, **options)
    except ValueError as error:
        raise InteropError(str(error)) from None
    # Every reader of a package refuses one that reaches outside itself; never write such a package.
    from interop_coreml.package import PackageError, validate_package

    try:
        validate_package(pathlib.Path(dst))
    except PackageError as error:
        _remove(pathlib.Path(dst))
        raise ConversionError(f"the package written at {dst} would be refused when read: {error}") from None
    read_back(pathlib.Path(dst))


def read_back(package: pathlib.Path) -> None:
    """Parse the written program as interop's runtimes do; on failure remove ``package`` and raise (exit 3)."""
    from interop_coreml.interpreter.errors import ModelFormatError
    from interop_coreml.interpreter.loading import load_saved_model

    try:
        load_saved_model(package)
    except ModelFormatError as error:
        _remove(package)
        # Exit 3 like the translator's other "Core ML rejected the translated program" failures.
        raise UnsupportedModelError(f"the converted program cannot be read back, so no package was written: {error}",
                              hint="set INTEROP_DEBUG=1 for the full trace; please report this model") from None


def _remove(path: pathlib.Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()
