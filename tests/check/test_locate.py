"""`interop check --locate`: the first op whose output diverges, across ONNX, Core ML, PyTorch and Keras.

A fault is injected into one op of a converted ResNet-style model by editing the saved
file (the ML Program inside the .mlpackage, or one ONNX node), never by changing a
converter; --locate must name exactly that op.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from . import faults


@pytest.fixture(scope="module")
def resnet(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small pre-activation ResNet with a Concat, as .pt2 -> .onnx -> .mlpackage (BatchNorms survive both)."""
    import torch
    from torch import nn

    import interop
    from interop_torch.loading import save_program

    class Block(nn.Module):
        def __init__(self, channels: int) -> None:
            super().__init__()
            self.bn1, self.conv1 = nn.BatchNorm2d(channels), nn.Conv2d(channels, channels, 3, padding=1)
            self.bn2, self.conv2 = nn.BatchNorm2d(channels), nn.Conv2d(channels, channels, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv1(torch.relu(self.bn1(x)))
            return x + self.conv2(torch.relu(self.bn2(y)))

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, padding=1)
            self.block1, self.block2, self.block3 = Block(8), Block(8), Block(16)
            self.bn, self.fc = nn.BatchNorm2d(16), nn.Linear(16, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a = self.block1(self.stem(x))
            joined = torch.cat([a, self.block2(a)], dim=1)
            return self.fc(torch.relu(self.bn(self.block3(joined))).mean((2, 3)))

    torch.manual_seed(0)
    net = Net()
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
    folder = tmp_path_factory.mktemp("resnet")
    program = torch.export.export(net.eval(), (torch.randn(2, 3, 12, 12),),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    paths = {"pt2": folder / "net.pt2", "onnx": folder / "net.onnx", "mlpackage": folder / "net.mlpackage"}
    save_program(program, paths["pt2"], ["image"], ["logits"])
    interop.convert(paths["pt2"], paths["onnx"])
    interop.convert(paths["onnx"], paths["mlpackage"])
    return paths


def _located(run_cli, *args) -> dict:
    code, out, err = run_cli("check", *args, "--locate", "--samples", "8", "--batch-sizes", "1,7", "--json")
    assert code == 1, err
    pair = json.loads(out)["pairs"][-1]
    assert pair["passed"] is False
    return pair["located"]


def test_a_wrong_epsilon_in_one_core_ml_batch_norm_is_named(resnet, run_cli, tmp_path) -> None:
    batch_norms = faults.mil_ops(resnet["mlpackage"], "batch_norm")
    assert len(batch_norms) >= 3  # the pre-activation ones are not fused into a convolution
    target = batch_norms[len(batch_norms) // 2]
    bad = faults.edit_mil(resnet["mlpackage"], tmp_path / "bad.mlpackage", target, faults.set_epsilon(0.5))
    located = _located(run_cli, resnet["onnx"], bad)
    assert located["status"] == "located", located["message"]
    assert (located["candidate_op_type"], located["candidate_op_name"]) == ("batch_norm", target)
    assert located["op_type"] == "BatchNormalization" and located["paired_by"] == "recorded by the converter"
    assert located["error_before"]["margin"] <= 1.0 < located["error_after"]["margin"]
    assert located["reference_stats"]["shape"] == located["candidate_stats"]["shape"]


def test_swapped_inputs_of_the_core_ml_concat_are_named(resnet, run_cli, tmp_path) -> None:
    (concat,) = faults.mil_ops(resnet["mlpackage"], "concat")
    bad = faults.edit_mil(resnet["mlpackage"], tmp_path / "bad.mlpackage", concat, faults.swap_concat_values)
    located = _located(run_cli, resnet["onnx"], bad)
    assert (located["status"], located["candidate_op_name"], located["op_type"]) == ("located", concat, "Concat")


def test_a_pt2_to_onnx_pair_names_the_wrong_onnx_node(resnet, run_cli, tmp_path) -> None:
    bad = tmp_path / "bad.onnx"
    node = faults.edit_onnx_node(resnet["onnx"], bad, "Concat", 0, faults.swap_node_inputs)
    located = _located(run_cli, resnet["pt2"], bad)
    assert located["status"] == "located", located["message"]
    assert (located["candidate_op_type"], located["candidate_op_name"]) == ("Concat", node)
    assert located["op_type"] == "aten.cat.default"
    # and a BatchNormalization the exporter kept, given a wrong epsilon
    bad_bn = tmp_path / "bad_bn.onnx"

    def wrong_epsilon(node) -> None:  # type: ignore[no-untyped-def]
        for attribute in node.attribute:
            if attribute.name == "epsilon":
                attribute.f = 0.5

    node = faults.edit_onnx_node(resnet["onnx"], bad_bn, "BatchNormalization", 1, wrong_epsilon)
    located = _located(run_cli, resnet["pt2"], bad_bn)
    assert (located["status"], located["candidate_op_name"]) == ("located", node), located["message"]
    assert "batch_norm" in located["op_type"]


def test_reports_carry_the_located_op(resnet, run_cli, tmp_path) -> None:
    (concat,) = faults.mil_ops(resnet["mlpackage"], "concat")
    bad = faults.edit_mil(resnet["mlpackage"], tmp_path / "bad.mlpackage", concat, faults.swap_concat_values)
    junit = tmp_path / "junit.xml"
    code, out, err = run_cli("check", resnet["onnx"], bad, "--locate", "--samples", "1", "--junit", junit)
    assert code == 1
    assert f"first divergence at Concat" in out and f"concat {concat!r}" in out
    assert "error before:" in out
    failure = ET.parse(junit).getroot().find(".//failure")
    assert "first divergence at Concat" in failure.text
    code, out, _ = run_cli("check", resnet["onnx"], bad, "--locate", "--samples", "1", "-q")
    assert any(line.startswith("LOCATE ") and concat in line for line in out.splitlines())


def test_faithful_copies_need_no_locating(resnet, run_cli) -> None:
    code, out, err = run_cli("check", resnet["pt2"], resnet["onnx"], resnet["mlpackage"], "--locate",
                             "--samples", "4", "--json")
    assert code == 0, err
    assert all(pair["located"] is None for pair in json.loads(out)["pairs"])


def test_keras_layers_pair_with_tf2onnx_names(keras_mlp: Path, keras_onnx: Path, tmp_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    import interop

    model = onnx.load(str(keras_onnx))
    bias = next(init for init in model.graph.initializer if "hidden" in init.name and "BiasAdd" in init.name)
    values = numpy_helper.to_array(bias).copy()
    values[3] += 0.5
    bias.CopyFrom(numpy_helper.from_array(values, bias.name))
    bad = tmp_path / "bad.onnx"
    onnx.save(model, str(bad))
    report = interop.check(keras_mlp, [bad], locate=True, project_config=False, samples=4)
    located = report.pairs[0].located
    assert located.status == "located", located.message
    assert (located.op_name, located.op_type) == ("hidden", "Dense")
    assert located.candidate_op_type == "Relu" and "hidden" in located.candidate_op_name


class _Recording:
    """A real session that records how many values each run_intermediates call asks for."""

    def __init__(self, session) -> None:  # type: ignore[no-untyped-def]
        self._session = session
        self.calls: list[int] = []
        self.engine, self.inputs = session.engine, session.inputs

    def intermediates(self):  # type: ignore[no-untyped-def]
        return self._session.intermediates()

    def run_intermediates(self, feeds, names):  # type: ignore[no-untyped-def]
        self.calls.append(len(names))
        return self._session.run_intermediates(feeds, names)


def _chain(path: Path, nodes: int, fault_at: int | None = None) -> Path:
    """x -> (Mul by 1.0001, Add 0.001) repeated: ``nodes`` values; one Add adds 0.5 instead at ``fault_at``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph_nodes, name = [], "x"
    for index in range(nodes):
        op = "Mul" if index % 2 == 0 else "Add"
        constant = "scale" if op == "Mul" else ("bad" if index == fault_at else "shift")
        graph_nodes.append(helper.make_node(op, [name, constant], [f"v{index}"], name=f"n{index}"))
        name = f"v{index}"
    graph = helper.make_graph(
        graph_nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 256])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", 256])],
        initializer=[numpy_helper.from_array(np.array(v, dtype=np.float32), n)
                     for n, v in (("scale", 1.0001), ("shift", 0.001), ("bad", 0.5))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_a_model_with_1200_values_is_compared_chunk_by_chunk(tmp_path) -> None:
    from interop.checker.locate import CHUNK, locate
    from interop.checker.models import open_model, parse_model_arg
    from interop.checker.tolerances import Tolerance
    from interop.plugin_registry import get_registry

    registry = get_registry()
    sessions = [_Recording(open_model(parse_model_arg(str(path), registry), {}, registry).session)
                for path in (_chain(tmp_path / "good.onnx", 1200), _chain(tmp_path / "bad.onnx", 1200, 1001))]
    x = np.linspace(-1, 1, 256, dtype=np.float32)[None]
    located = locate(*sessions, lambda session: {"x": x}, Tolerance(1e-5, 1e-4, "test"))
    assert (located.status, located.op_name, located.op_type) == ("located", "n1001", "Add")
    assert located.paired == 1200 and located.compared == 1002
    for recording in sessions:
        assert max(recording.calls) <= CHUNK and sum(recording.calls) <= 1002 + CHUNK


def test_a_golden_reference_or_a_runtime_without_intermediates_says_so(linear_onnx, tmp_path) -> None:
    import interop

    ref = linear_onnx("ref.onnx")
    golden = tmp_path / "golden.npz"
    interop.check(ref, [], save_golden=golden, project_config=False)
    report = interop.check(None, [linear_onnx("bad.onnx", weight_delta=0.1)], golden=golden, locate=True,
                           project_config=False)
    assert report.pairs[0].located.status == "unsupported"
    assert "golden file holds no intermediate values" in report.pairs[0].located.message
