"""Plugin glue: the ``onnx -> coreml`` converter interop's core calls.

Loads the ONNX file without running anything from it, translates it with
:mod:`interop_coreml.onnx2mil` and writes the ``.mlpackage`` directory at
exactly ``dst`` (the core hands us a temporary path and renames it), then checks
that the package passes the same confinement every reader applies.
"""

from __future__ import annotations

import collections.abc
import pathlib

from interop.plugin_api import ConversionError, InteropError, ModelLoadError


def load_onnx(src: pathlib.Path):
    """Parse an ONNX file or raise ModelLoadError.

    External data (weights in files beside the model) is not read here: the translator maps it
    from the model's folder when it needs the values (onnx2mil/weights.py), so a model past 2 GB
    is never held in memory twice. The checker reads the file by path, which is also what lets it
    check a model too large for one protobuf message. It runs before the load: its own copy of
    the model (the file's bytes and their parse, 2x the weights at its peak) is gone before
    ours is made, where checking after the load held three copies at once (ResNet-50: 3.0x the
    weights above the imports, the peak of `interop convert`).
    """
    import onnx

    src = pathlib.Path(src)
    if not src.is_file():
        raise ModelLoadError(f"{src}: no such ONNX file")
    try:
        onnx.checker.check_model(str(src))
    except Exception as error:  # noqa: BLE001 - the checker raises its own errors and protobuf's on garbage
        raise ModelLoadError(f"{src} is not a valid ONNX model: {_first_line(error)}") from None
    try:
        model = onnx.load(str(src), load_external_data=False)
    except Exception as error:  # noqa: BLE001 - protobuf raises several kinds on garbage
        raise ModelLoadError(f"{src} is not a valid ONNX model: {type(error).__name__}: {error}") from None
    if not model.graph.node and not model.graph.output:
        raise ModelLoadError(f"{src} is not a valid ONNX model: it holds no graph")
    # The checker accepts any opset number; an operator's meaning in an opset onnx does not
    # know yet cannot be looked up, so translating it would be a guess.
    newest = onnx.defs.onnx_opset_version()
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and opset.version > newest:
            raise ModelLoadError(
                f"{src} declares ONNX opset {opset.version}, newer than the installed onnx "
                f"{onnx.__version__} knows ({newest})",
                hint="upgrade onnx, or export the model with an older opset",
            )
    return model


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
            save_mlpackage(lambda: load_onnx(pathlib.Path(src)), pathlib.Path(dst),
                           external_data_dir=pathlib.Path(src).parent, **options)
    except ValueError as error:
        raise InteropError(str(error)) from None
    # Every reader of a package refuses one that reaches outside itself; never write such a package.
    from interop_coreml.package import PackageError, validate_package

    try:
        validate_package(pathlib.Path(dst))
    except PackageError as error:
        raise ConversionError(f"the package written at {dst} would be refused when read: {error}") from None
