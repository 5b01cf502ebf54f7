"""Whole networks: the onnx wheel's zoo graphs, PyTorch ResNet/MobileNet-style nets, the MLP.

Each is converted once per session, run by the reference interpreter at batch 1
and a larger batch, and compared with onnxruntime at FP32 tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from interop.testing.zoo import ZOO_NAMES, zoo_model

from .conftest import assert_close, interpret, ort_run, save, torch_to_onnx

BATCHES = (1, 2)


@pytest.fixture(scope="session")
def zoo_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("zoo")


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in ("vgg19", "densenet121") else n for n in ZOO_NAMES]
)
def test_zoo_architecture_matches_onnxruntime(name, zoo_dir):
    model = zoo_model(name, seed=0, dynamic_batch=True)
    path = save(model, zoo_dir / f"{name}.mlpackage")
    input_name = model.graph.input[0].name
    for batch in BATCHES:
        x = np.random.default_rng(batch).standard_normal((batch, 3, 224, 224)).astype(np.float32)
        ours, reference = interpret(path, {input_name: x}), ort_run(model, {input_name: x})
        assert_close(ours, reference, rtol=1e-3, atol=1e-4)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class TinyResNet(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        self.layers = nn.Sequential(BasicBlock(16, 16, 1), BasicBlock(16, 32, 2), BasicBlock(32, 64, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.use_residual = stride == 1 and cin == cout
        self.block = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.Hardswish(),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )

    def forward(self, x):
        y = self.block(x)
        return x + y if self.use_residual else y


class TinyMobileNet(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6(),
            InvertedResidual(16, 16, 1, 2), InvertedResidual(16, 24, 2, 4), InvertedResidual(24, 24, 1, 4),
            InvertedResidual(24, 32, 2, 4),
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(32, classes))

    def forward(self, x):
        return torch.softmax(self.head(self.features(x)), dim=1)


def _with_trained_statistics(module: nn.Module) -> nn.Module:
    for sub in module.modules():
        if isinstance(sub, nn.BatchNorm2d):
            sub.running_mean.uniform_(-0.2, 0.2)
            sub.running_var.uniform_(0.5, 1.5)
    return module.eval()


@pytest.mark.parametrize("net", [TinyResNet, TinyMobileNet], ids=["resnet_style", "mobilenet_style"])
def test_torch_cnn_matches_onnxruntime(net, tmp_path):
    torch.manual_seed(0)
    module = _with_trained_statistics(net())
    model = torch_to_onnx(module, torch.randn(2, 3, 32, 32), tmp_path / "net.onnx")
    path = save(model, tmp_path / "net.mlpackage")
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 32, 32)).astype(np.float32)
        assert_close(interpret(path, {"input": x}), ort_run(model, {"input": x}))


class ReferenceMLP(nn.Module):
    """The Iris MLP shape: normalisation baked in, 2 → 64 → 3."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([3.76, 1.2]))
        self.register_buffer("std", torch.tensor([1.76, 0.76]))
        self.fc1 = nn.Linear(2, 64)
        self.fc2 = nn.Linear(64, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1((x - self.mean) / self.std)))


def test_mlp_from_torch_dynamo_exporter(tmp_path):
    import onnx

    torch.manual_seed(0)
    onnx_path = tmp_path / "mlp.onnx"
    torch.onnx.export(ReferenceMLP().eval(), (torch.randn(4, 2),), str(onnx_path), dynamo=True, opset_version=18,
                      input_names=["features"], output_names=["logits"],
                      dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, verbose=False)
    model = onnx.load(str(onnx_path))
    assert model.opset_import[0].version >= 18
    path = save(model, tmp_path / "mlp.mlpackage")
    for batch in (1, 7):
        x = np.random.default_rng(batch).uniform(0.1, 7.0, (batch, 2)).astype(np.float32)
        assert_close(interpret(path, {"features": x}), ort_run(model, {"features": x}))
