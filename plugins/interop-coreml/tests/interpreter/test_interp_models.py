"""Core ML models that interop did not make, run by the interpreter and compared with their PyTorch source.

Each model is traced in PyTorch, converted by coremltools' own PyTorch
frontend to an ML Program, saved as an .mlpackage in a temporary directory and
read back from disk by the interpreter.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

ct = pytest.importorskip("coremltools")
torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from interop_coreml.interpreter import load_program  # noqa: E402


class SmallCNN(nn.Module):
    """Conv + BatchNorm + ReLU, max and average pooling, a concatenation and a residual add."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.branch_a = nn.Conv2d(8, 4, 1)
        self.branch_b = nn.Sequential(nn.Conv2d(8, 4, 3, padding=1, groups=2), nn.BatchNorm2d(4))
        self.pool = nn.MaxPool2d(2)
        self.avg = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        x = self.stem(x)
        y = torch.cat([self.branch_a(x), self.branch_b(x)], dim=1)
        x = torch.relu(x + y)
        x = self.avg(self.pool(x))
        return self.head(x.mean(dim=(2, 3)))


class TinyTransformerBlock(nn.Module):
    """LayerNorm, exact GELU, tanh-approximated GELU, a matmul-based attention and softmax."""

    def __init__(self, width=16):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 32), nn.GELU(), nn.Linear(32, width), nn.GELU(approximate="tanh"))

    def forward(self, x):
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        attention = torch.softmax(q @ k.transpose(1, 2) / 4.0, dim=-1)
        x = x + attention @ v
        return x + self.mlp(self.norm2(x))


def _randomize_batch_norms(model: nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)


def _convert_and_save(model, example, path, precision):
    traced = torch.jit.trace(model.eval(), example)
    mlmodel = ct.convert(
        traced,
        inputs=[ct.TensorType(name="x", shape=tuple(example.shape))],
        convert_to="mlprogram",
        compute_precision=precision,
    )
    mlmodel.save(str(path))
    return mlmodel


def _run_both(model, example, path, precision=None):
    precision = precision or ct.precision.FLOAT32
    _convert_and_save(model, example, path, precision)
    program = load_program(path)
    with torch.no_grad():
        expected = model(example).numpy()
    (output,) = program.outputs
    got = program.run({"x": example.numpy()})[output.name]
    return program, got, expected


@pytest.fixture(scope="module")
def torch_seed():
    torch.manual_seed(0)


def test_traced_mlp_matches_pytorch(tmp_path, torch_seed):
    model = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 16), nn.Tanh(), nn.Linear(16, 3), nn.Softmax(-1))
    example = torch.randn(10, 4)
    program, got, expected = _run_both(model, example, tmp_path / "mlp.mlpackage")
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_cnn_with_batchnorm_pooling_concat_residual_matches_pytorch(tmp_path, torch_seed):
    model = SmallCNN()
    _randomize_batch_norms(model, 1)
    example = torch.randn(2, 3, 16, 16)
    program, got, expected = _run_both(model, example, tmp_path / "cnn.mlpackage")
    op_types = {record.op_type for record in program.ops}
    assert {"conv", "max_pool", "avg_pool", "concat", "add"} <= op_types
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_layernorm_gelu_network_matches_pytorch(tmp_path, torch_seed):
    model = TinyTransformerBlock()
    example = torch.randn(2, 6, 16)
    program, got, expected = _run_both(model, example, tmp_path / "block.mlpackage")
    op_types = {record.op_type for record in program.ops}
    assert {"layer_norm", "gelu", "softmax"} <= op_types
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_fp16_conversion_shows_bounded_fp16_error(tmp_path, torch_seed):
    model = SmallCNN()
    _randomize_batch_norms(model, 2)
    example = torch.randn(2, 3, 16, 16)
    program, got, expected = _run_both(model, example, tmp_path / "cnn16.mlpackage", ct.precision.FLOAT16)
    error = np.abs(got - expected).max()
    scale = np.abs(expected).max()
    # float16 storage shows up as a visible but small error, well above float32 round-off.
    assert 1e-5 * scale < error < 2e-2 * scale
    fp16_vars = [name for record in program.ops if record.op_type == "conv" for name in record.outputs]
    captured = program.run({"x": example.numpy()}, capture=fp16_vars)
    assert all(captured[name].dtype == np.float16 for name in fp16_vars)


def test_capture_returns_intermediate_values_in_program_order(tmp_path, torch_seed):
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    example = torch.randn(3, 4)
    program, _, _ = _run_both(model, example, tmp_path / "capture.mlpackage")
    relu_record = next(record for record in program.ops if record.op_type == "relu")
    assert relu_record.outputs[0] in program.var_names()
    results = program.run({"x": example.numpy()}, capture=[relu_record.outputs[0]])
    with torch.no_grad():
        expected_hidden = model[1](model[0](example)).numpy()
    np.testing.assert_allclose(results[relu_record.outputs[0]], expected_hidden, rtol=1e-5, atol=1e-6)
    with pytest.raises(KeyError, match="no variable"):
        program.run({"x": example.numpy()}, capture=["not_a_variable"])


def test_runtime_session_uses_recorded_onnx_names(tmp_path, torch_seed):
    from interop_coreml.runtime import INTERPRETER_ENGINE, load_interpreter

    model = nn.Sequential(nn.Linear(4, 3))
    example = torch.randn(5, 4)
    path = tmp_path / "named.mlpackage"
    mlmodel = _convert_and_save(model, example, path, ct.precision.FLOAT32)
    coreml_output = mlmodel.get_spec().description.output[0].name
    mlmodel.user_defined_metadata["interop.io_names"] = json.dumps(
        {"inputs": {"x": "input.1"}, "outputs": {coreml_output: "logits"}}
    )
    mlmodel.save(str(path))
    session = load_interpreter(path)
    assert session.engine == INTERPRETER_ENGINE
    assert [spec.name for spec in session.inputs] == ["input.1"]
    assert [spec.name for spec in session.outputs] == ["logits"]
    assert session.inputs[0].shape == (5, 4) and session.inputs[0].dtype == "float32"
    assert "coremltools" in session.versions
    with torch.no_grad():
        expected = model(example).numpy()
    np.testing.assert_allclose(session.run({"input.1": example.numpy()})["logits"], expected, rtol=1e-5, atol=1e-6)


def test_native_runtime_describes_flexible_inputs_like_the_interpreter(tmp_path, torch_seed):
    """The macOS session's input description comes from the spec; it must agree with the interpreter's."""
    from interop_coreml.runtime import _feature_spec, load_interpreter

    model = nn.Sequential(nn.Linear(4, 3))
    traced = torch.jit.trace(model.eval(), torch.randn(2, 4))
    path = tmp_path / "flexible.mlpackage"
    ct.convert(traced, inputs=[ct.TensorType(name="x", shape=(ct.RangeDim(1, 64, default=2), 4))],
               convert_to="mlprogram", compute_precision=ct.precision.FLOAT32).save(str(path))
    described = _feature_spec("x", ct.models.MLModel(str(path), skip_model_load=True).get_spec().description.input[0])
    interpreted = load_interpreter(path).inputs[0]
    assert described.shape == interpreted.shape == (None, 4)
    assert described.dtype == interpreted.dtype == "float32"
    session = load_interpreter(path)
    for batch in (1, 5):
        x = torch.randn(batch, 4)
        with torch.no_grad():
            expected = model(x).numpy()
        (got,) = session.run({"x": x.numpy()}).values()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


class ManyOps(nn.Module):
    """A grab-bag of layers coremltools' frontend maps to many different MIL ops."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, padding=2, dilation=2)
        self.group_norm = nn.GroupNorm(2, 8)
        self.instance_norm = nn.InstanceNorm2d(8, affine=True)
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2)
        self.prelu = nn.PReLU(4)
        self.depthwise = nn.Conv2d(4, 4, 3, padding=1, groups=4)

    def forward(self, x):
        y = self.instance_norm(nn.functional.hardswish(self.group_norm(self.conv(x))))
        y = self.prelu(self.up(y))
        y = nn.functional.interpolate(y, scale_factor=0.5, mode="bilinear", align_corners=False)
        y = nn.functional.elu(self.depthwise(y)) + torch.sigmoid(x) * nn.functional.softplus(x)
        pooled = nn.functional.adaptive_avg_pool2d(nn.functional.pixel_shuffle(y, 2), 3)
        z = torch.flatten(pooled, 1)
        top_values, _ = torch.topk(z, 5, dim=1)
        return torch.cat([torch.clamp(z, -0.5, 0.5), top_values.sum(dim=1, keepdim=True).tanh(),
                          torch.cumsum(z, dim=1)[:, -1:] / z.abs().amax(dim=1, keepdim=True)], dim=1)


def test_model_with_many_op_kinds_matches_pytorch(tmp_path, torch_seed):
    model = ManyOps()
    example = torch.randn(2, 4, 10, 10)
    program, got, expected = _run_both(model, example, tmp_path / "many.mlpackage")
    assert len({record.op_type for record in program.ops}) >= 20
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
