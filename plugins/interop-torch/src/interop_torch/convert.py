"""PyTorch (.pt2) -> ONNX with torch.onnx's torch.export-based exporter (dynamo=True)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from interop_torch.loading import example_inputs, load_program


#: What torch.onnx says when its step 2 (decomposing the program for ONNX) fails.
_DECOMPOSITION_FAILED = "Failed to decompose the FX graph for ONNX compatibility"


def torch_to_onnx(src: Path, dst: Path, options: Mapping[str, Any]) -> None:
    loaded = load_program(src)  # first: an archive it refuses never costs importing the exporter

    import onnx
    import torch

    opset = int(options.get("opset") or 18)
    # The exporter logs a warning per missing optional op library (torchvision); not ours to show.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")

        def export(program: Any) -> Any:
            return torch.onnx.export(
                program,
                example_inputs(loaded.program),
                dynamo=True,
                opset_version=opset,
                input_names=loaded.input_names,
                output_names=loaded.output_names,
                verbose=False,
                optimize=False,  # optimized below, keeping every weight its own initializer
            )

        first_error: Exception | None = None
        try:
            onnx_program = export(loaded.program)
        except Exception as error:
            if _DECOMPOSITION_FAILED not in str(error):
                raise
            first_error = error
            # torch.onnx re-traces the program with its own decomposition table, and with dynamic dims
            # it can lose a .contiguous() after scaled_dot_product_attention with a dense attn_mask
            # (T5's position bias, BEiT's and Swin's relative-position bias): the next view then fails
            # ("Cannot view a tensor with shape [s0, s1, 4, 8] and strides ..."). torch.export's own
            # decompositions keep it; the exporter takes the program they give. Still failing, or
            # an ONNX model that is not valid (BEiT's comes out with an Unsqueeze that onnxruntime
            # refuses to load): the first error is the one to report.
            try:
                onnx_program = export(loaded.program.run_decompositions())
            except Exception:
                raise error from None
        weights = set(loaded.program.state_dict) | set(loaded.program.constants)
        optimize_keeping_weights(onnx_program, weights)
    onnx_program.save(str(dst))
    if first_error is None:
        onnx.checker.check_model(str(dst))
        return
    try:
        onnx.checker.check_model(str(dst), full_check=True)  # with strict shape inference, as onnxruntime loads it
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError):
        raise first_error from None


def optimize_keeping_weights(onnx_program: Any, weights: set[str]) -> None:
    """torch.onnx's optimization, except that no two weights of the module become one initializer.

    The optimizer merges initializers of equal content (onnx_ir's DeduplicateInitializersPass, up to
    1024 elements). Between a module's weights that is a change of model, not a saving: an untrained
    design's LayerNorm and BatchNorm weights (all ones) and biases and running means (all zeros)
    would come out as one tensor, which an importer must read as one parameter trained for every
    layer (and a BatchNorm's running statistics would be that parameter). Each weight the
    optimizer dropped as a duplicate gets its own initializer back at the uses it had.
    """
    graph = onnx_program.model.graph
    kept = {name: (value, [(use.node, use.idx) for use in value.uses()])
            for name, value in graph.initializers.items() if name in weights}
    onnx_program.optimize()
    graph = onnx_program.model.graph
    live = set(graph)  # the nodes left after optimizing
    for name, (value, uses) in kept.items():
        if name in graph.initializers:
            continue
        restored = False
        for node, index in uses:
            current = node.inputs[index] if node in live and index < len(node.inputs) else None
            if current is None or not current.is_initializer() or current.name not in weights:
                continue  # folded into something else, or no longer read from a weight
            if not restored:
                graph.register_initializer(value)
                restored = True
            node.replace_input_with(index, value)
