"""Driver behaviour: names, metadata, dynamic dims, precision, errors, plugin glue."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from interop.plugin_api import METADATA_IO_NAMES, METADATA_SCALAR_IO, InteropError, ModelLoadError, UnsupportedModelError

from interop_coreml.converter import onnx_to_coreml
from interop_coreml.onnx2mil import convert_model

from .conftest import assert_close, interpret, make_model, ort_run, save, tensor_info


def _awkward_names_model() -> onnx.ModelProto:
    nodes = [
        onnx.helper.make_node("Relu", ["input:0"], ["hidden/relu"]),
        onnx.helper.make_node("Add", ["hidden/relu", "1st bias"], ["scores.out"]),
    ]
    bias = onnx.numpy_helper.from_array(np.array([0.5, -0.5, 1.0], dtype=np.float32), "1st bias")
    return make_model(nodes, [tensor_info("input:0", ["batch", 3])], [tensor_info("scores.out", ["batch", 3])], [bias])


def test_invalid_names_are_mapped_and_recorded(tmp_path):
    model = _awkward_names_model()
    mlmodel = convert_model(model)
    names = json.loads(mlmodel.user_defined_metadata[METADATA_IO_NAMES])
    assert sorted(names["inputs"].values()) == ["input:0"]
    assert sorted(names["outputs"].values()) == ["scores.out"]
    spec = mlmodel.get_spec()
    coreml_inputs = [i.name for i in spec.description.input]
    assert coreml_inputs == list(names["inputs"]) and coreml_inputs[0].isidentifier()
    # The runtime uses the recorded mapping, so ONNX names work end to end.
    path = save(model, tmp_path / "names.mlpackage")
    feeds = {"input:0": np.array([[1.0, -2.0, 3.0]], dtype=np.float32)}
    assert_close(interpret(path, feeds), ort_run(model, feeds))


def test_identity_mapping_is_still_written():
    node = onnx.helper.make_node("Sigmoid", ["x"], ["y"])
    mlmodel = convert_model(make_model([node], [tensor_info("x", [2])], [tensor_info("y", [2])]))
    names = json.loads(mlmodel.user_defined_metadata[METADATA_IO_NAMES])
    assert names == {"inputs": {"x": "x"}, "outputs": {"y": "y"}}


def test_metadata_records_source(tmp_path):
    model = _awkward_names_model()
    model.producer_name, model.producer_version = "pytorch", "2.13.0"
    meta = convert_model(model).user_defined_metadata
    assert meta["interop.source_producer"] == "pytorch 2.13.0"
    assert meta["interop.source_opset"] == "18"
    assert meta["interop.version"]


def test_a_loader_converts_like_the_model_and_is_called_after_the_options_are_checked():
    calls = []

    def loader() -> onnx.ModelProto:
        calls.append(1)
        model = _awkward_names_model()
        model.producer_name, model.producer_version = "pytorch", "2.13.0"
        return model

    with pytest.raises(InteropError, match="precision"):
        convert_model(loader, precision="fp8")
    assert calls == []  # a bad option fails before the model is loaded
    loaded = convert_model(loader)
    assert calls == [1]
    direct = convert_model(loader())
    for key in ("interop.source_producer", "interop.source_opset", METADATA_IO_NAMES, METADATA_SCALAR_IO):
        assert loaded.user_defined_metadata[key] == direct.user_defined_metadata[key], key
    assert loaded.user_defined_metadata["interop.source_producer"] == "pytorch 2.13.0"
    def ops(mlmodel):  # (symbol names come from counters that depend on what the process converted before)
        blocks = mlmodel.get_spec().mlProgram.functions["main"].block_specializations.values()
        return [op.type for block in blocks for op in block.operations]

    assert ops(loaded) == ops(direct) and "relu" in ops(loaded)
    assert loaded.get_spec().description == direct.get_spec().description


def test_symbolic_batch_becomes_bounded_range():
    spec = convert_model(_awkward_names_model(), max_dynamic_dim=64).get_spec()
    ranges = spec.description.input[0].type.multiArrayType.shapeRange.sizeRanges
    assert (ranges[0].lowerBound, ranges[0].upperBound) == (1, 64)
    assert (ranges[1].lowerBound, ranges[1].upperBound) == (3, 3)


def test_fp16_precision_computes_in_half(tmp_path):
    model = _awkward_names_model()
    path = save(model, tmp_path / "fp16.mlpackage", precision="fp16")
    text = str(convert_model(model, precision="fp16")._mil_program)
    assert "fp16" in text
    feeds = {"input:0": np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)}
    assert_close(interpret(path, feeds), ort_run(model, feeds), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("target", ["iOS16", "iOS17", "iOS18"])
def test_newer_deployment_targets(target):
    spec = convert_model(_awkward_names_model(), minimum_deployment_target=target).get_spec()
    assert spec.specificationVersion >= 7


def test_bad_options_are_rejected():
    # Checked by the plugin's one declaration of the options (exit 2 on the command line).
    with pytest.raises(InteropError, match="precision must be one of fp32, fp16"):
        convert_model(_awkward_names_model(), precision="int8")
    with pytest.raises(InteropError, match="minimum_deployment_target"):
        convert_model(_awkward_names_model(), minimum_deployment_target="iOS12")
    with pytest.raises(InteropError, match="max_dynamic_dim must be at least 1"):
        convert_model(_awkward_names_model(), max_dynamic_dim=0)


def _two_unsupported_ops_model() -> onnx.ModelProto:
    nodes = [
        onnx.helper.make_node("Relu", ["x"], ["a"], name="relu"),
        onnx.helper.make_node("Det", ["a"], ["b"], name="det_1"),
        onnx.helper.make_node("Unique", ["x"], ["u"], name="unique_1"),
        onnx.helper.make_node("Det", ["x"], ["c"], name="det_2"),
        onnx.helper.make_node("Add", ["b", "c"], ["y"], name="add"),
    ]
    return make_model(nodes, [tensor_info("x", [2, 3, 3])], [tensor_info("y", [2]), tensor_info("u", [None])])


def test_unsupported_ops_reported_together_and_nothing_written(tmp_path):
    src = tmp_path / "bad.onnx"
    onnx.save(_two_unsupported_ops_model(), str(src))
    dst = tmp_path / "bad.mlpackage"
    with pytest.raises(UnsupportedModelError) as info:
        onnx_to_coreml(src, dst, {})
    message = info.value.message
    assert "Det x2" in message and "det_1" in message and "det_2" in message
    assert "Unique x1" in message and "unique_1" in message
    assert "opset 18" in message
    assert info.value.hint and info.value.exit_code == 3
    assert not dst.exists()


def test_corrupt_file_raises_model_load_error(tmp_path):
    src = tmp_path / "garbage.onnx"
    src.write_bytes(b"\x00\x01not a protobuf at all" * 10)
    with pytest.raises(ModelLoadError) as info:
        onnx_to_coreml(src, tmp_path / "out.mlpackage", {})
    assert info.value.exit_code == 2
    assert not (tmp_path / "out.mlpackage").exists()


def test_plugin_glue_writes_exactly_dst_with_options(tmp_path):
    src = tmp_path / "m.onnx"
    onnx.save(_awkward_names_model(), str(src))
    dst = tmp_path / "tmp-output-name"
    onnx_to_coreml(src, dst, {"precision": "fp32", "minimum_deployment_target": "iOS16", "max_dynamic_dim": 8})
    assert (dst / "Manifest.json").is_file()
    feeds = {"input:0": np.ones((8, 3), dtype=np.float32)}
    assert interpret(dst, feeds)["scores.out"].shape == (8, 3)


# --- coremltools graph passes the translator guards (docs/coreml.md, "coremltools passes interop disables")

def _inferred(nodes, inputs, initializers) -> onnx.ModelProto:
    """A model whose outputs (the last node's) get their type from ONNX shape inference."""
    last = nodes[-1].output[0]
    model = make_model(nodes, inputs, [onnx.helper.make_value_info(last, onnx.TypeProto())], initializers, opset=17)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    del model.graph.output[:]
    model.graph.output.extend(inferred.graph.output)
    onnx.checker.check_model(model)
    return model


def _f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _pass_case(name: str, rng):
    node = onnx.helper.make_node
    init = onnx.numpy_helper.from_array
    x4 = [tensor_info("x", [1, 2, 5, 5])]
    conv = node("Conv", ["x", "w"], ["c"])
    cases = {
        # fuse_conv_scale folded 1/k into the weights of k / conv(x).
        "const_div_conv": ([conv, node("Div", ["k", "c"], ["y"])], x4, [init(_f32(rng, 3, 2, 3, 3), "w"),
                                                                        init(np.array(2.5, np.float32), "k")]),
        "conv_div_zero": ([conv, node("Div", ["c", "k"], ["y"])], x4, [init(_f32(rng, 3, 2, 3, 3), "w"),
                                                                       init(np.array([0, 1, 2], np.float32).reshape(3, 1, 1), "k")]),
        # fuse_conv_bias dropped the broadcast of a constant of higher rank or more channels.
        "conv_add_rank_grows": ([conv, node("Add", ["c", "k"], ["y"])], x4, [init(_f32(rng, 3, 2, 3, 3), "w"),
                                                                             init(_f32(rng, 1, 1, 1, 1, 1), "k")]),
        "conv_add_channels_grow": ([conv, node("Add", ["c", "k"], ["y"])], x4, [init(_f32(rng, 1, 2, 3, 3), "w"),
                                                                                init(_f32(rng, 4, 1, 1), "k")]),
        "conv_transpose_sub": ([conv, node("Transpose", ["c"], ["t"], perm=[0, 2, 3, 1]),
                                node("Sub", ["k", "t"], ["y"])], x4,
                               [init(_f32(rng, 3, 2, 3, 3), "w"), init(_f32(rng, 2, 1, 1, 1, 3), "k")]),
        # fuse_linear_bias / fuse_matmul_weight_bias: IndexError on a rank-0 constant, rank lost on (1, 1, N).
        "gemm_sum_scalar": ([node("Gemm", ["x2", "w", "b"], ["g"], beta=0.5), node("Sum", ["g", "k", "x1"], ["s"]),
                             node("Squeeze", ["s", "axes"], ["y"])],
                            [tensor_info("x1", [6, 1]), tensor_info("x2", [6, 4])],
                            [init(_f32(rng, 4, 1), "w"), init(np.array(0.03, np.float32), "b"),
                             init(np.array(-0.8, np.float32), "k"), init(np.array([-1], np.int64), "axes")]),
        "matmul_add_rank_grows": ([node("MatMul", ["x", "w"], ["g"]), node("Add", ["g", "k"], ["y"])],
                                  [tensor_info("x", [4, 3])], [init(_f32(rng, 3, 2), "w"), init(_f32(rng, 1, 1, 2), "k")]),
        "gemm_add_rank_grows": ([node("Gemm", ["x", "w", "b"], ["g"]), node("Add", ["g", "k"], ["y"])],
                                [tensor_info("x", [4, 3])], [init(_f32(rng, 3, 2), "w"), init(_f32(rng, 2), "b"),
                                                             init(_f32(rng, 1, 1, 2), "k")]),
        # fuse_elementwise_to_batchnorm on a 1-channel input broadcast to 3 channels.
        "mul_add_channels_grow": ([node("Relu", ["x"], ["r"]), node("Mul", ["r", "g"], ["m"]),
                                   node("Add", ["m", "b"], ["y"])], [tensor_info("x", [1, 1, 3, 3])],
                                  [init(_f32(rng, 1, 3, 1, 1), "g"), init(_f32(rng, 1, 3, 1, 1), "b")]),
        # select_optimization: a constant all-true condition wider than both branches; inf branches
        # rewritten as x + where(cond, -inf, 0), NaN where x is inf or NaN.
        "where_const_cond_wider": ([node("Where", ["cond", "x", "zero"], ["y"])], [tensor_info("x", [3])],
                                   [init(np.ones((2, 3), bool), "cond"), init(np.array(0, np.float32), "zero")]),
        "where_inf_branch": ([node("Where", ["cond", "minf", "x"], ["y"])], [tensor_info("x", [4])],
                             [init(np.array([True, False, True, True]), "cond"),
                              init(np.array(-np.inf, np.float32), "minf")]),
        # The ML Program backend's fuse_pow2_sqrt: pow(sqrt(x), 2) -> x, sqrt(pow(x, 2)) -> x.
        "sqrt_then_pow2": ([node("Sqrt", ["x"], ["s"]), node("Pow", ["s", "two"], ["y"])], [tensor_info("x", [2, 3])],
                           [init(np.array(2, np.float32), "two")]),
        "pow2_then_sqrt": ([node("Pow", ["x", "two"], ["s"]), node("Sqrt", ["s"], ["y"])], [tensor_info("x", [2, 3])],
                           [init(np.array(2, np.float32), "two")]),
        "pow2_broadcast_then_sqrt": ([node("Pow", ["x", "two"], ["s"]), node("Sqrt", ["s"], ["y"])],
                                     [tensor_info("x", [2, 3])], [init(np.full((4, 1, 1), 2, np.float32), "two")]),
    }
    return cases[name]


PASS_CASES = ["const_div_conv", "conv_div_zero", "conv_add_rank_grows", "conv_add_channels_grow", "conv_transpose_sub",
              "gemm_sum_scalar", "matmul_add_rank_grows", "gemm_add_rank_grows", "mul_add_channels_grow",
              "sqrt_then_pow2", "pow2_then_sqrt", "pow2_broadcast_then_sqrt", "where_const_cond_wider",
              "where_inf_branch"]


@pytest.mark.parametrize("name", PASS_CASES)
def test_graph_passes_keep_the_function(name, tmp_path):
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(0)
    nodes, inputs, initializers = _pass_case(name, rng)
    model = _inferred(nodes, inputs, initializers)
    feeds = {i.name: _f32(rng, *[d.dim_value for d in i.type.tensor_type.shape.dim]) for i in model.graph.input}
    if name == "where_inf_branch":
        feeds["x"] = np.array([np.inf, 2.0, np.nan, -1.0], np.float32)
    expected = dict(zip([o.name for o in model.graph.output], ReferenceEvaluator(model).run(None, feeds)))
    got = interpret(save(model, tmp_path / "m.mlpackage"), feeds)
    for out, reference in expected.items():
        assert got[out].shape == reference.shape
        np.testing.assert_allclose(got[out], reference, rtol=1e-4, atol=1e-5, equal_nan=True)


def test_a_channel_scale_and_bias_fused_into_batch_norm_is_exact(tmp_path):
    # coremltools' fuse_elementwise_to_batchnorm kept the batch_norm's default epsilon 1e-5 beside
    # its variance of 1: every x * gamma + beta came out scaled by 1 / sqrt(1 + 1e-5) (fuzz seed 78
    # trial 16859, through InstanceNormalization's scale and bias and a ReduceProd of 15 values).
    rng = np.random.default_rng(3)
    node, init = onnx.helper.make_node, onnx.numpy_helper.from_array
    nodes = [node("Relu", ["x"], ["r"]), node("Mul", ["r", "g"], ["m"]), node("Add", ["m", "b"], ["y"])]
    gamma, beta = rng.uniform(1, 4, (1, 3, 1, 1)).astype(np.float32), np.zeros((1, 3, 1, 1), np.float32)
    model = _inferred(nodes, [tensor_info("x", [1, 3, 4, 4])], [init(gamma, "g"), init(beta, "b")])
    path = save(model, tmp_path / "m.mlpackage")
    import coremltools as ct

    main = ct.utils.load_spec(str(path)).mlProgram.functions["main"]
    ops = [op.type for block in main.block_specializations.values() for op in block.operations]
    assert "batch_norm" in ops and "mul" not in ops  # it did fuse
    x = np.abs(_f32(rng, 1, 3, 4, 4)) + 1
    np.testing.assert_allclose(interpret(path, {"x": x})["y"], x * gamma, rtol=2e-7, atol=0)


@pytest.mark.parametrize("groups, per_group", [(2, 3), (3, 2), (4, 1), (1, 3)])
@pytest.mark.parametrize("after", ["Mul", "Div", "BatchNormalization", "Mul+Add"])
def test_grouped_conv_transpose_keeps_its_channel_factors(groups, per_group, after, tmp_path):
    # fuse_conv_scale / fuse_conv_batchnorm regroup a grouped conv_transpose weight in the wrong
    # channel order and scaled other output channels (onnx's reference evaluator cannot run a
    # grouped ConvTranspose here, so onnxruntime judges).
    rng = np.random.default_rng(groups * 10 + per_group)
    node, init = onnx.helper.make_node, onnx.numpy_helper.from_array
    cin, cout = 2 * groups, per_group * groups
    channel = (1, cout, 1, 1)
    nodes = [node("ConvTranspose", ["x", "w"], ["c"], group=groups, strides=[2, 1])]
    initializers = [init(_f32(rng, cin, per_group, 2, 3), "w")]
    factor = init(rng.uniform(0.5, 3.0, channel).astype(np.float32), "k")
    if after in ("Mul", "Div"):
        nodes.append(node(after, ["c", "k"], ["y"]))
        initializers.append(factor)
    elif after == "Mul+Add":
        nodes += [node("Mul", ["c", "k"], ["m"]), node("Add", ["m", "b"], ["y"])]
        initializers += [factor, init(_f32(rng, *channel), "b")]
    else:
        nodes.append(node("BatchNormalization", ["c", "g", "b", "mean", "var"], ["y"], epsilon=1e-3))
        initializers += [init(rng.uniform(0.5, 2.0, cout).astype(np.float32), n) for n in ("g", "var")]
        initializers += [init(_f32(rng, cout), n) for n in ("b", "mean")]
    model = _inferred(nodes, [tensor_info("x", [1, cin, 3, 4])], initializers)
    feeds = {"x": _f32(rng, 1, cin, 3, 4)}
    expected = ort_run(model, feeds)["y"]
    got = interpret(save(model, tmp_path / "m.mlpackage"), feeds)["y"]
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * float(np.abs(expected).max()))


@pytest.mark.parametrize("chain", [2, 3])
def test_consecutive_relus_that_are_outputs_all_stay_outputs(chain, tmp_path):
    # merge_consecutive_relus replaced relu(relu(x)) by relu(x) even when the inner relu's
    # output was a model output too, and that output vanished.
    names = [f"r{i}" for i in range(chain)]
    nodes = [onnx.helper.make_node("Relu", [src], [dst]) for src, dst in zip(["x"] + names[:-1], names)]
    outputs = [onnx.helper.make_value_info(name, onnx.TypeProto()) for name in reversed(names)]
    model = make_model(nodes, [tensor_info("x", [2, 5])], outputs, opset=17)
    feeds = {"x": np.random.default_rng(chain).standard_normal((2, 5)).astype(np.float32)}
    got = interpret(save(model, tmp_path / "m.mlpackage"), feeds)
    assert sorted(got) == sorted(names)
    assert_close(got, ort_run(model, feeds))


@pytest.mark.parametrize("shape, perms", [([2, 3], [[1, 0], [1, 0]]), ([1, 1], [[1, 0], [1, 0]]),
                                          ([2, 3, 4], [[1, 2, 0], [2, 0, 1]])])
def test_an_output_and_its_double_transpose_both_stay_outputs(shape, perms, tmp_path):
    # Fuzz seed 31: reduce_transposes replaced transpose(transpose(r)) by r while r was an output
    # too, so the program returned one variable twice and the output r vanished.
    node = onnx.helper.make_node
    nodes = [node("Relu", ["x"], ["r"]), node("Transpose", ["r"], ["t1"], perm=perms[0]),
             node("Transpose", ["r"], ["t2"], perm=perms[0]), node("Transpose", ["t2"], ["t3"], perm=perms[1])]
    outputs = [onnx.helper.make_value_info(name, onnx.TypeProto()) for name in ("t1", "t3", "r")]
    model = make_model(nodes, [tensor_info("x", shape)], outputs, opset=17)
    feeds = {"x": np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    got = interpret(save(model, tmp_path / "m.mlpackage"), feeds)
    assert sorted(got) == ["r", "t1", "t3"]
    assert_close(got, ort_run(model, feeds))


def test_interop_pipeline_replaces_the_unsound_passes():
    from interop_coreml.onnx2mil.passes import pass_pipeline

    names = pass_pipeline().passes
    for unsound in ("fuse_conv_scale", "fuse_conv_batchnorm", "fuse_conv_bias", "fuse_linear_bias",
                    "fuse_matmul_weight_bias",
                    "fuse_elementwise_to_batchnorm", "select_optimization", "merge_consecutive_relus",
                    "reduce_transposes"):
        assert f"common::{unsound}" not in names and f"interop::guarded_{unsound}" in names
    assert names[-1] == "interop::keep_pow2_sqrt"


def test_coremltools_failure_in_ct_convert_is_a_clean_refusal(monkeypatch):
    """coremltools' own (unguarded) pipeline raises IndexError in fuse_linear_bias on this graph: exit 3, named."""
    import coremltools as ct

    from interop_coreml.onnx2mil import passes

    monkeypatch.setattr(passes, "pass_pipeline", lambda: ct.PassPipeline.DEFAULT)
    nodes, inputs, initializers = _pass_case("gemm_sum_scalar", np.random.default_rng(0))
    with pytest.raises(UnsupportedModelError) as info:
        convert_model(_inferred(nodes, inputs, initializers))
    assert "Core ML rejected the translated program in coremltools' fuse_linear_bias" in info.value.message
    assert "IndexError" in info.value.message and info.value.exit_code == 3


def test_mil_rejecting_a_node_is_a_clean_refusal_naming_the_node():
    weight = onnx.numpy_helper.from_array(np.ones((2, 2, 1, 1), np.float32), "w")
    node = onnx.helper.make_node("Conv", ["x", "w"], ["y"], name="conv_7")
    model = make_model([node], [tensor_info("x", [1, 3, 4, 4])], [onnx.helper.make_value_info("y", onnx.TypeProto())],
                       [weight])
    with pytest.raises(UnsupportedModelError) as info:
        convert_model(model)
    assert "Conv node 'conv_7' cannot be converted: Core ML's MIL rejects it" in info.value.message
    assert info.value.exit_code == 3


def test_rank0_inputs_and_outputs_are_recorded():
    """Core ML has no rank-0 features: they travel as shape (1,), and the metadata says which ones were scalars."""

    nodes = [onnx.helper.make_node("Mul", ["s", "v"], ["y"]), onnx.helper.make_node("ReduceSum", ["y"], ["total"],
                                                                                     keepdims=0)]
    model = make_model(nodes, [tensor_info("s", []), tensor_info("v", [3])],
                       [tensor_info("y", [3]), tensor_info("total", [])], opset=13)
    mlmodel = convert_model(model)
    assert json.loads(mlmodel.user_defined_metadata[METADATA_SCALAR_IO]) == {"inputs": ["s"], "outputs": ["total"]}
    shapes = {f.name: list(f.type.multiArrayType.shape) for f in mlmodel.get_spec().description.input}
    assert shapes == {"s": [1], "v": [3]}
    assert METADATA_SCALAR_IO not in convert_model(_awkward_names_model()).user_defined_metadata


@pytest.mark.parametrize("rank", [2, 4])
def test_batch_norm_of_a_near_zero_variance_keeps_its_digits(rank, tmp_path):
    # (x - mean) first, as the op is defined: the folded x·a + (bias - mean·a), a = 1/sqrt(eps) for a
    # channel whose variance is 0 (stored statistics of a dead channel), cancelled to ~1e-3 here.
    rng = np.random.default_rng(rank)
    shape = [3, 4] + [5, 5][: rank - 2]
    x = (30.0 + 0.01 * rng.standard_normal(shape)).astype(np.float32)
    stats = {"g": np.ones(4), "b": np.zeros(4), "mean": np.full(4, 30.0), "var": np.array([6e-45, 1e-8, 1e-3, 1.0])}
    nodes = [onnx.helper.make_node("BatchNormalization", ["x", "g", "b", "mean", "var"], ["y"], epsilon=1e-5)]
    model = _inferred(nodes, [tensor_info("x", shape)],
                      [onnx.numpy_helper.from_array(v.astype(np.float32), k) for k, v in stats.items()])
    got = interpret(save(model, tmp_path / "m.mlpackage"), {"x": x})["y"]
    channel = (1, 4) + (1,) * (rank - 2)
    exact = (x.astype(np.float64) - 30.0) / np.sqrt(stats["var"].astype(np.float32).astype(np.float64)
                                                   + np.float64(np.float32(1e-5))).reshape(channel)
    assert np.abs(got - exact).max() < 1e-5 * np.abs(exact).max()
