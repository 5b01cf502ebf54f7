"""Crafted graphs for what whole networks rarely show: layer options, shape arithmetic, shared weights.

Each graph is imported (the in-process module, and a .pt2 where dynamic sizes matter) and
compared with onnxruntime on random inputs at two batch sizes.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import interop

from .conftest import ort_run, save, torch_run

RNG = np.random.default_rng(0)


def weight(name: str, *shape: int, scale: float = 0.3) -> onnx.TensorProto:
    return numpy_helper.from_array((RNG.standard_normal(shape) * scale).astype(np.float32), name)


def graph(nodes, inputs, outputs, inits=(), opset=17) -> onnx.ModelProto:  # type: ignore[no-untyped-def]
    model = helper.make_model(helper.make_graph(nodes, "crafted", inputs, outputs, list(inits)),
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def assert_matches_onnxruntime(model: onnx.ModelProto, shapes: dict[str, tuple], batches=(1, 4)) -> None:
    from interop_torch.onnx_import import import_onnx

    imported = import_onnx(model)
    module = imported.module.eval()
    for batch in batches:
        feeds = {name: np.random.default_rng(batch).standard_normal((batch, *shape)).astype(np.float32)
                 for name, shape in shapes.items()}
        for ours, reference in zip(torch_run(module, feeds, imported.input_names), ort_run(model, feeds)):
            np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-5)


def tensor(name: str, *shape) -> onnx.ValueInfoProto:  # type: ignore[no-untyped-def]
    """A float tensor; ``tensor("y", None)`` leaves the shape to inference."""
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, None if shape == (None,) else list(shape))


CONVS = {
    "conv1d_dilated_grouped": (dict(group=2, dilations=[2], pads=[1, 2]), (4, 2, 3), (4, 20)),
    "conv2d_same_upper_stride2": (dict(auto_pad="SAME_UPPER", strides=[2, 2]), (6, 3, 3, 3), (3, 11, 9)),
    "conv2d_same_lower_stride2": (dict(auto_pad="SAME_LOWER", strides=[2, 2]), (6, 3, 4, 4), (3, 10, 9)),
    "conv2d_asymmetric_pads": (dict(pads=[0, 1, 2, 0], strides=[1, 2]), (5, 3, 3, 2), (3, 8, 8)),
    "conv3d_depthwise": (dict(group=4, pads=[1, 1, 1, 1, 1, 1]), (4, 1, 3, 3, 3), (4, 5, 6, 7)),
}


@pytest.mark.parametrize("case", sorted(CONVS))
def test_conv_options_become_conv_layers(case):
    attrs, w_shape, x_shape = CONVS[case]
    n = len(w_shape) - 2
    model = graph([helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=list(w_shape[2:]), **attrs)],
                  [tensor("x", "N", *x_shape)], [tensor("y", None)], [weight("w", *w_shape), weight("b", w_shape[0])])
    from interop_torch.onnx_import import import_onnx

    assert f"nn.Conv{n}d(" in import_onnx(model).source
    assert_matches_onnxruntime(model, {"x": x_shape})


CONV_TRANSPOSES = {
    "stride2_output_padding": dict(strides=[2, 2], output_padding=[1, 1], pads=[1, 1, 1, 1]),
    "asymmetric_pads": dict(strides=[2, 2], pads=[0, 1, 1, 0]),
    "output_shape": dict(strides=[3, 2], output_shape=[10, 8]),
    "grouped_dilated": dict(group=2, dilations=[2, 2]),
}


@pytest.mark.parametrize("case", sorted(CONV_TRANSPOSES))
def test_conv_transpose_options(case):
    attrs = CONV_TRANSPOSES[case]
    model = graph([helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], kernel_shape=[3, 3], **attrs)],
                  [tensor("x", "N", 4, 4, 4)], [tensor("y", None)], [weight("w", 4, 3, 3, 3), weight("b", 6 if attrs.get(
                      "group") else 3)])
    if attrs.get("group"):
        model.graph.initializer[0].CopyFrom(weight("w", 4, 3, 3, 3))
    assert_matches_onnxruntime(model, {"x": (4, 4, 4)})


POOLS = {
    "max_ceil_asymmetric": ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1], ceil_mode=1)),
    "max_dilated": ("MaxPool", dict(kernel_shape=[2, 2], dilations=[2, 2], pads=[1, 1, 1, 1])),
    "avg_asymmetric_exclude_pad": ("AveragePool", dict(kernel_shape=[3, 3], pads=[0, 0, 1, 1])),
    "avg_ceil_include_pad": ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1,
                                                 count_include_pad=1)),
    "avg_same_upper": ("AveragePool", dict(kernel_shape=[2, 2], strides=[2, 2], auto_pad="SAME_UPPER")),
}


@pytest.mark.parametrize("case", sorted(POOLS))
def test_pooling_keeps_onnx_padding_rules(case):
    op, attrs = POOLS[case]
    model = graph([helper.make_node(op, ["x"], ["y"], **attrs)], [tensor("x", "N", 2, 9, 8)], [tensor("y", None)])
    assert_matches_onnxruntime(model, {"x": (2, 9, 8)})


def test_shape_arithmetic_stays_dynamic_in_the_pt2(tmp_path):
    # x.view(x.size(0), -1) as exporters write it: Shape -> Gather -> Unsqueeze -> Concat -> Reshape.
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3]),
        helper.make_node("Shape", ["c"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus_one"], ["target"], axis=0),
        helper.make_node("Reshape", ["c", "target"], ["flat"]),
        helper.make_node("MatMul", ["flat", "fc"], ["y"]),
    ]
    inits = [weight("w", 2, 3, 3, 3), weight("fc", 2 * 4 * 4, 5), numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array([0], np.int64), "axes"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus_one")]
    model = graph(nodes, [tensor("x", "batch", 3, 6, 6)], [tensor("y", "batch", 5)], inits, opset=13)
    from interop_torch.onnx_import import import_onnx

    source = import_onnx(model).source
    assert "list(c.shape)" in source and ".tolist()" not in source  # sizes stay Python ints
    path = save(model, tmp_path / "flatten.onnx")
    pt2 = tmp_path / "flatten.pt2"
    interop.convert(path, pt2)
    report = interop.check(path, pt2, batch_sizes=(1, 7))
    assert report.passed, report.format_table()



@pytest.mark.parametrize("keepdims", [1, 0])
def test_a_reduced_shape_stays_a_python_size_in_the_pt2(tmp_path, keepdims):
    # tf2onnx's merging of dims (Keras MultiHeadAttention): Reshape(x, Concat(Shape(x)[0:1],
    # ReduceProd(Shape(x)[1:3]), [-1])).
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Slice", ["s", "zero", "one"], ["b"]),
        helper.make_node("Slice", ["s", "one", "three"], ["middle"]),
        helper.make_node("ReduceProd", ["middle"], ["n"], keepdims=keepdims),
        *([] if keepdims else [helper.make_node("Unsqueeze", ["n", "zero"], ["n_"])]),
        helper.make_node("Concat", ["b", "n" if keepdims else "n_", "minus_one"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["flat"]),
        helper.make_node("MatMul", ["flat", "fc"], ["y"]),
    ]
    ints = {"zero": [0], "one": [1], "three": [3], "minus_one": [-1]}
    inits = [weight("fc", 5, 3), *(numpy_helper.from_array(np.array(v, np.int64), k) for k, v in ints.items())]
    model = graph(nodes, [tensor("x", "batch", "h", 2, 5)], [tensor("y", None)], inits, opset=17)
    from interop_torch.onnx_import import import_onnx

    source = import_onnx(model).source
    assert ".tolist()" not in source and "_prod(" in source  # the product of sizes stays a Python size
    path = save(model, tmp_path / "reduced.onnx")
    pt2 = tmp_path / "reduced.pt2"
    interop.convert(path, pt2)
    report = interop.check(path, pt2, batch_sizes=(1, 7))
    assert report.passed, report.format_table()


def test_a_size_reshaped_to_one_element_stays_a_python_size(tmp_path):
    # torch.onnx's multi-head attention (nn.TransformerEncoder with a padding mask): the batch size
    # as a rank-0 value, times the heads, Reshape'd to [1] and concatenated into a target shape;
    # and the reverse, a one-element size Reshape'd to a scalar. Both stay Python sizes.
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Slice", ["s", "zero", "one"], ["b1"]),
        helper.make_node("Squeeze", ["b1"], ["b"]),
        helper.make_node("Mul", ["b", "two"], ["b2"]),
        helper.make_node("Reshape", ["b2", "one"], ["b2_1"]),
        helper.make_node("Reshape", ["b1", "empty"], ["b_scalar"]),
        helper.make_node("Reshape", ["b_scalar", "one"], ["b_again"]),
        helper.make_node("Concat", ["b2_1", "minus_one"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["halves"]),
        helper.make_node("Concat", ["b_again", "minus_one"], ["back"], axis=0),
        helper.make_node("Reshape", ["halves", "back"], ["flat"]),
        helper.make_node("MatMul", ["flat", "fc"], ["y"]),
    ]
    ints = {"zero": [0], "one": [1], "minus_one": [-1], "two": 2, "empty": np.zeros(0, np.int64)}
    inits = [weight("fc", 12, 3), *(numpy_helper.from_array(np.array(v, np.int64), k) for k, v in ints.items())]
    model = graph(nodes, [tensor("x", "batch", 4, 3)], [tensor("y", None)], inits, opset=17)
    from interop_torch.onnx_import import import_onnx

    source = import_onnx(model).source
    assert ".tolist()" not in source and "torch.tensor(" not in source, source  # no size becomes a tensor
    assert_matches_onnxruntime(model, {"x": (4, 3)})
    path = save(model, tmp_path / "sizes.onnx")
    interop.convert(path, tmp_path / "sizes.pt2")
    interop.convert(path, tmp_path / "sizes_src", to="torch-source")
    report = interop.check(path, [tmp_path / "sizes.pt2", tmp_path / "sizes_src"], batch_sizes=(1, 5))
    assert report.passed, report.format_table()


@pytest.mark.parametrize("mode, coordinate", [("cubic", "half_pixel"), ("linear", "align_corners")])
def test_resize_to_sizes_under_a_dynamic_batch(tmp_path, mode, coordinate):
    # F.interpolate(x, size=(7, 9)) as torch.onnx writes it: sizes = Concat(Shape(x)[0:2], [7, 9]), whose
    # batch entry is known only at run time.
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], start=0, end=2),
        helper.make_node("Concat", ["s", "hw"], ["sizes"], axis=0),
        helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode=mode, coordinate_transformation_mode=coordinate),
    ]
    model = graph(nodes, [tensor("x", "batch", 3, 5, 6)], [tensor("y", None)],
                  [numpy_helper.from_array(np.array([7, 9], np.int64), "hw")], opset=18)
    from interop_torch.onnx_import import import_onnx

    assert "size=_spatial_sizes(x, sizes)" in import_onnx(model).source
    assert_matches_onnxruntime(model, {"x": (3, 5, 6)})
    path = save(model, tmp_path / "resize.onnx")
    interop.convert(path, tmp_path / "resize.pt2")
    report = interop.check(path, tmp_path / "resize.pt2", batch_sizes=(1, 5))
    assert report.passed, report.format_table()


def test_a_shared_weight_is_one_parameter():
    nodes = [helper.make_node("MatMul", ["x", "tied"], ["a"]), helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("MatMul", ["r", "tied"], ["y"])]
    model = graph(nodes, [tensor("x", "N", 6)], [tensor("y", "N", 6)], [weight("tied", 6, 6)])
    from interop_torch.onnx_import import import_onnx

    imported = import_onnx(model)
    assert imported.trainable_count == imported.weight_count == 36
    assert [k for k, v in imported.parameter_sources.items() if v["kind"] == "parameter"] == ["tied"]
    assert_matches_onnxruntime(model, {"x": (6,)})


def test_gemm_with_alpha_beta_and_transposed_input():
    model = graph([helper.make_node("Gemm", ["x", "w", "c"], ["y"], alpha=0.5, beta=2.0, transA=1)],
                  [tensor("x", 7, 3)], [tensor("y", 3, 4)], [weight("w", 7, 4), weight("c", 1, 4)])
    from interop_torch.onnx_import import import_onnx

    imported = import_onnx(model)
    assert "nn.Linear(7, 4)" in imported.source and imported.trainable_count == 32
    x = RNG.standard_normal((7, 3)).astype(np.float32)
    np.testing.assert_allclose(torch_run(imported.module, {"x": x}, ["x"])[0], ort_run(model, {"x": x})[0],
                               rtol=1e-5, atol=1e-5)


def test_embedding_and_layer_norm_become_layers():
    nodes = [helper.make_node("Gather", ["table", "ids"], ["e"], axis=0),
             helper.make_node("LayerNormalization", ["e", "gamma", "beta"], ["y"], axis=-1, epsilon=1e-5)]
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", 5])
    model = graph(nodes, [ids], [tensor("y", "N", 5, 8)], [weight("table", 11, 8), weight("gamma", 8),
                                                           weight("beta", 8)])
    from interop_torch.onnx_import import import_onnx

    imported = import_onnx(model)
    assert "nn.Embedding(11, 8)" in imported.source and "nn.LayerNorm(8, eps=1e-05)" in imported.source
    assert imported.trainable_count == 11 * 8 + 16
    feeds = {"ids": np.random.default_rng(1).integers(0, 11, (3, 5)).astype(np.int64)}
    np.testing.assert_allclose(torch_run(imported.module.eval(), feeds, ["ids"])[0], ort_run(model, feeds)[0],
                               rtol=1e-5, atol=1e-5)


def test_torch_transformer_block_round_trips_through_onnx(tmp_path):
    # Embedding, LayerNorm, MultiheadAttention and GELU as torch.onnx writes them (Shape/Slice/Concat
    # arithmetic, MatMul with transposed weights), back into torch with a dynamic batch.
    import torch
    from torch import nn

    from interop_torch.loading import save_program

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb, self.pos = nn.Embedding(50, 32), nn.Parameter(torch.randn(1, 12, 32) * 0.1)
            self.ln1, self.ln2 = nn.LayerNorm(32), nn.LayerNorm(32)
            self.att = nn.MultiheadAttention(32, 4, batch_first=True)
            self.ff = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 32))
            self.head = nn.Linear(32, 5)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            x = self.emb(ids) + self.pos[:, :ids.shape[1]]
            y = self.ln1(x)
            x = x + self.att(y, y, y, need_weights=False)[0]
            return self.head((x + self.ff(self.ln2(x))).mean(1))

    torch.manual_seed(0)
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(Block().eval(), (torch.randint(0, 50, (2, 12)),), dynamic_shapes={"ids": {0: batch}})
    save_program(program, tmp_path / "block.pt2", ["ids"], ["scores"])
    interop.convert(tmp_path / "block.pt2", tmp_path / "block.onnx")
    interop.convert(tmp_path / "block.onnx", tmp_path / "back.pt2")
    interop.convert(tmp_path / "block.onnx", tmp_path / "back_src", to="torch-source")
    report = interop.check(tmp_path / "block.pt2", [tmp_path / "block.onnx", tmp_path / "back.pt2",
                                                    tmp_path / "back_src"], batch_sizes=(1, 3))
    assert report.passed, report.format_table()


RECURRENT = [("LSTM", "forward", 0), ("LSTM", "bidirectional", 1), ("LSTM", "reverse", 0), ("GRU", "bidirectional", 0),
             ("GRU", "reverse", 1), ("RNN", "forward", 0)]


@pytest.mark.parametrize("op,direction,layout", RECURRENT)
def test_recurrent_layers_own_their_weights(op, direction, layout):
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    dirs, hidden, steps, features = (2 if direction == "bidirectional" else 1), 5, 7, 3
    inputs = ["x", "w", "r", "b", "", "h0"] + (["c0"] if op == "LSTM" else [])
    extra = {"linear_before_reset": 1} if op == "GRU" else {}
    outputs = ["y", "y_h"] + (["y_c"] if op == "LSTM" else [])
    node = helper.make_node(op, inputs, outputs, hidden_size=hidden, direction=direction, layout=layout, **extra)
    state_shape = ("N", dirs, hidden) if layout else (dirs, "N", hidden)
    x_shape = ("N", steps, features) if layout else (steps, "N", features)
    graph_inputs = [tensor("x", *x_shape), tensor("h0", *state_shape)] + (
        [tensor("c0", *state_shape)] if op == "LSTM" else [])
    model = graph([node], graph_inputs, [tensor(name, None) for name in outputs],
                  [weight("w", dirs, gates * hidden, features), weight("r", dirs, gates * hidden, hidden),
                   weight("b", dirs, 2 * gates * hidden)], opset=14)
    from interop_torch.onnx_import import import_onnx

    imported = import_onnx(model)
    assert f"nn.{op}({features}, {hidden}" in imported.source
    assert imported.trainable_count == imported.weight_count == dirs * gates * hidden * (features + hidden + 2)
    module = imported.module.eval()
    for batch in (1, 4):
        rng = np.random.default_rng(batch)
        feeds = {"x": rng.standard_normal([batch if d == "N" else d for d in x_shape]).astype(np.float32)}
        for name in ("h0", "c0")[:2 if op == "LSTM" else 1]:
            feeds[name] = rng.standard_normal([batch if d == "N" else d for d in state_shape]).astype(np.float32)
        # onnxruntime refuses batch-first recurrent layers (layout=1); ONNX's reference evaluator runs them.
        reference = ort_run(model, feeds) if layout == 0 else ReferenceEvaluator(model).run(None, feeds)
        for ours, expected in zip(torch_run(module, feeds, imported.input_names), reference):
            np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("hidden", [8, 4096])  # 8: layers built on the CPU; 4096 (81,920 weights): on the meta device
def test_import_holds_the_graph_weights_and_leaves_torchs_random_state_alone(hidden):
    import torch

    from interop_torch.onnx_import import import_onnx

    inits = [weight("w1", 16, hidden), weight("b1", hidden), weight("w2", hidden, 3)]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h0"]), helper.make_node("Add", ["h0", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["h2"]), helper.make_node("MatMul", ["h2", "w2"], ["y"])]
    model = graph(nodes, [tensor("x", "N", 16)], [tensor("y", "N", 3)], inits)
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    imported = import_onnx(model)
    # An import that initialised its layers with torch's generator would shift a seeded training run.
    assert torch.equal(torch.rand(4), expected)
    params = dict(imported.module.named_parameters())
    assert all(p.requires_grad and p.device.type == "cpu" for p in params.values())
    sources = {numpy_helper.to_array(t).tobytes() for t in inits}
    # Every parameter is a graph weight (Linear keeps W transposed), none the layer's own initialisation.
    assert {p.detach().numpy().T.tobytes() if p.ndim == 2 else p.detach().numpy().tobytes()
            for p in params.values()} == sources
    assert_matches_onnxruntime(model, {"x": (16,)})
