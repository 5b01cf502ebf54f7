"""`interop train` inputs: interop's batch order, CSV data and its errors, --init/--reinit checks (issue 11).

Most refusals happen before any framework is imported; the trainings here are short PyTorch
runs of the reference MLP, or the example numpy-mlp plugin (a 1.1-style trainer).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from cli_assertions import assert_refused
from onnx import TensorProto, helper, numpy_helper

import interop
from interop.batch_order import batch_order, epoch_permutation
from interop.datasets import CLASS_NAMES, load_iris
from interop.onnx_weights import onnx_weights, reinitialized


def test_the_batch_order_is_a_seeded_permutation_per_epoch():
    order = batch_order(120, 3, 7)
    assert order.shape == (3, 120) and order.dtype == np.int64
    for row in order:
        assert sorted(row.tolist()) == list(range(120))
    assert not np.array_equal(order[0], order[1])  # a new order every epoch
    assert np.array_equal(order, batch_order(120, 3, 7))
    assert not np.array_equal(order, batch_order(120, 3, 8))
    # The stream is interop's own (SplitMix64 + Fisher-Yates): pinned, so no library update changes it.
    assert epoch_permutation(10, 0, 1) == [4, 2, 8, 1, 9, 3, 0, 6, 7, 5]
    assert epoch_permutation(10, 1, 1) == [1, 6, 3, 2, 4, 5, 9, 8, 0, 7]


def test_every_position_is_equally_likely():
    counts = np.zeros((4, 4))
    for epoch in range(1, 4001):
        for position, sample in enumerate(epoch_permutation(4, 3, epoch)):
            counts[position, sample] += 1
    assert np.all(np.abs(counts - 1000) < 150), counts  # 1000 expected, sd about 27


def _write_iris_csv(path: Path, *, rows: int | None = None, edit=None) -> Path:  # type: ignore[no-untyped-def]
    x, y = load_iris()
    lines = ["length,width,kind,unused"]
    for i, (features, label) in enumerate(zip(x[:rows], y[:rows])):
        cells = [f"{features[0]:g}", f"{features[1]:g}", CLASS_NAMES[label], "z"]
        if edit:
            edit(i, cells)
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_csv_trains_a_model_with_its_own_columns(tmp_path, cli):
    """fixtures/iris.csv, the README's CSV example: all four measurements, so the design is 4 -> 64 -> 3."""
    pytest.importorskip("torch")
    data = Path(__file__).resolve().parents[1] / "fixtures" / "iris.csv"
    columns = ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]
    out = tmp_path / "flowers.pt2"
    result = cli("train", "--framework", "torch", "--data", str(data), "--features", ",".join(columns),
                 "--label", "species", "-o", str(out), "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["data"] == str(data) and len(document["history"]) == 10
    assert document["train_accuracy"] >= 0.93 and document["test_accuracy"] >= 0.90
    import torch

    module = torch.export.load(str(out)).module()
    table = np.genfromtxt(data, delimiter=",", names=True, dtype=None, encoding="utf-8")
    x = np.stack([table[c] for c in columns], axis=1).astype(np.float32)
    # Labels are sorted by name: setosa, versicolor, virginica, the Iris indices.
    y = np.searchsorted(sorted(CLASS_NAMES), table["species"])
    assert float((module(torch.from_numpy(x)).argmax(1).numpy() == y).mean()) >= 0.93
    assert json.loads(result.stdout)["path"] == str(out)


@pytest.mark.parametrize(("case", "needles"), [
    ("missing column", ("no column 'petal'", "in the header")),
    ("not a number", ("row 5, column 'width'", "'wide' is not a finite number")),
    ("empty cell", ("row 5, column 'width'", "'' is not a finite number")),
    ("one class", ("holds a single class",)),
    ("no features", ("--features",)),
])
def test_csv_errors_are_one_line_and_write_nothing(tmp_path, cli, case, needles):
    features = "length,width"
    if case == "missing column":
        features = "length,petal"
        data = _write_iris_csv(tmp_path / "d.csv")
    elif case == "not a number":
        data = _write_iris_csv(tmp_path / "d.csv", edit=lambda i, cells: cells.__setitem__(1, "wide") if i == 3 else 0)
    elif case == "empty cell":
        data = _write_iris_csv(tmp_path / "d.csv", edit=lambda i, cells: cells.__setitem__(1, "") if i == 3 else 0)
    elif case == "one class":
        data = _write_iris_csv(tmp_path / "d.csv", rows=20)
    else:
        data = _write_iris_csv(tmp_path / "d.csv")
    args = ["train", "--framework", "torch", "--data", str(data), "--label", "kind", "-o", str(tmp_path / "m.pt2")]
    if case != "no features":
        args += ["--features", features]
    assert_refused(cli(*args), *needles)
    assert not (tmp_path / "m.pt2").exists()


def _mlp_onnx(path: Path, outputs: int = 3, inputs: int = 2) -> Path:
    """(x - mean) / std -> Gemm -> Relu -> Gemm: the reference MLP's shape, as an exporter writes it."""
    rng = np.random.default_rng(0)
    inits = {"mean": np.full((1, inputs), 3.0), "inv_std": np.full((1, inputs), 0.5),
             "w1": rng.standard_normal((8, inputs)), "b1": rng.standard_normal(8),
             "w2": rng.standard_normal((outputs, 8)), "b2": rng.standard_normal(outputs)}
    nodes = [helper.make_node("Sub", ["x", "mean"], ["c"]), helper.make_node("Mul", ["c", "inv_std"], ["n"]),
             helper.make_node("Gemm", ["n", "w1", "b1"], ["h"], transB=1), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["logits"], transB=1)]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", inputs])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", outputs])],
                              [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_a_label_count_that_does_not_match_the_design_is_refused(tmp_path, cli):
    design = _mlp_onnx(tmp_path / "two.onnx", outputs=2)
    result = cli("train", "--framework", "torch", "--init", str(design), "-o", str(tmp_path / "m.pt2"))
    assert_refused(result, "the design has 2 output(s), the data has 3 label(s)")
    data = _write_iris_csv(tmp_path / "d.csv")
    three = _mlp_onnx(tmp_path / "three.onnx", inputs=3)
    result = cli("train", "--framework", "torch", "--init", str(three), "--data", str(data), "--features",
                 "length,width", "--label", "kind", "-o", str(tmp_path / "m.pt2"))
    assert_refused(result, "the design takes 3 feature(s) per sample, the data has 2")
    assert not (tmp_path / "m.pt2").exists()


def test_a_design_whose_input_is_not_a_feature_vector_is_refused_by_its_shape(tmp_path, cli):
    """An image model cannot train on tabular data: the error names the input's shape, not '1 feature'."""
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("Conv", ["image", "w"], ["c"], kernel_shape=[3, 3]),
             helper.make_node("GlobalAveragePool", ["c"], ["p"]), helper.make_node("Flatten", ["p"], ["logits"])]
    graph = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
                              [numpy_helper.from_array(rng.standard_normal((3, 1, 3, 3)).astype(np.float32), "w")])
    design = tmp_path / "cnn.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(design))
    result = cli("train", "--framework", "torch", "--init", str(design), "-o", str(tmp_path / "m.pt2"))
    assert_refused(result, "'image' has shape (N, 1, 8, 8), not (samples, features)")
    assert not (tmp_path / "m.pt2").exists()


def test_reinit_needs_init_and_a_trainer_that_starts_from_a_model(tmp_path, cli):
    assert_refused(cli("train", "--framework", "torch", "--reinit", "-o", str(tmp_path / "m.pt2")),
                   "--reinit needs --init MODEL")
    design = _mlp_onnx(tmp_path / "mlp.onnx")
    assert_refused(cli("train", "--framework", "numpy-mlp", "--init", str(design), "-o", str(tmp_path / "m.npmlp")),
                   "the numpy-mlp trainer cannot start from a model (--init)")
    assert list(tmp_path.iterdir()) == [design]


def test_reinit_draws_fresh_seeded_weights_and_keeps_the_rest(tmp_path):
    model = onnx.load(str(_mlp_onnx(tmp_path / "mlp.onnx")))
    assert set(onnx_weights(model)) == {"w1", "b1", "w2", "b2"}  # mean and 1/std are input normalisation
    fresh, rules = reinitialized(model, seed=3)
    assert set(rules) == {"w1", "b1", "w2", "b2"}
    before = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    after = {t.name: numpy_helper.to_array(t) for t in fresh.graph.initializer}
    for name in ("mean", "inv_std"):
        assert np.array_equal(before[name], after[name])
    for name, fan_in in (("w1", 2), ("b1", 2), ("w2", 8), ("b2", 8)):
        assert after[name].shape == before[name].shape and after[name].dtype == np.float32
        assert not np.array_equal(after[name], before[name])
        assert np.all(np.abs(after[name]) <= 1 / np.sqrt(fan_in))  # PyTorch's Linear default
    again, _ = reinitialized(model, seed=3)
    assert all(np.array_equal(after[t.name], numpy_helper.to_array(t)) for t in again.graph.initializer)
    other, _ = reinitialized(model, seed=4)
    assert not np.array_equal(after["w1"], numpy_helper.to_array(other.graph.initializer[2]))
    assert [n.op_type for n in fresh.graph.node] == [n.op_type for n in model.graph.node]


def test_reinit_trains_the_design_from_fresh_weights(tmp_path, cli):
    pytest.importorskip("torch")
    design = _mlp_onnx(tmp_path / "mlp.onnx")
    result = cli("train", "--framework", "torch", "--init", str(design), "--reinit", "--seed", "5",
                 "--epochs", "1", "-o", str(tmp_path / "m.pt2"), "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["weights"] == "fresh, seeded" and len(document["history"]) == 1
    import torch

    trained = torch.export.load(str(tmp_path / "m.pt2")).module()
    weights = {name: value.detach().numpy() for name, value in trained.named_parameters()}
    assert len(weights) == 4 and sum(w.size for w in weights.values()) == 8 * 2 + 8 + 3 * 8 + 3
    original = numpy_helper.to_array(onnx.load(str(design)).graph.initializer[2])
    assert not any(w.shape == original.shape and np.allclose(w, original, atol=0.05) for w in weights.values())


def test_a_trainer_written_for_api_1_1_keeps_its_own_shuffling(tmp_path, cli):
    result = cli("train", "--framework", "numpy-mlp", "-o", str(tmp_path / "m.npmlp"), "--epochs", "2", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["batch_order"] == "numpy-mlp's own shuffling" and len(document["history"]) == 2


def test_epochs_zero_saves_the_model_untrained(tmp_path):
    pytest.importorskip("torch")
    result = interop.train("torch", tmp_path / "m.pt2", epochs=0)
    assert result.history == [] and (tmp_path / "m.pt2").exists()
    assert result.train_accuracy < 0.9  # random weights


def test_an_untrained_torch_design_keeps_every_weight_and_trains(tmp_path):
    # A fresh LayerNorm and BatchNorm1d hold equal tensors (weights all ones; biases and running means
    # all zeros; running variances all ones). torch.onnx's optimizer would merge them into one
    # initializer, which the importer must read as one parameter, and training crashed (a running
    # statistic that requires grad). Every weight stays its own initializer and trains on its own.
    torch = pytest.importorskip("torch")
    from torch import nn

    torch.manual_seed(0)
    # (The BatchNorm follows a ReLU: right after a Linear, torch.onnx's optimizer folds it into the Gemm.)
    design = nn.Sequential(nn.Linear(2, 16), nn.LayerNorm(16), nn.GELU(), nn.Linear(16, 16), nn.ReLU(),
                           nn.BatchNorm1d(16), nn.Linear(16, 3)).eval()
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(design, (torch.randn(4, 2),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(tmp_path / "design.pt2"))
    interop.convert(tmp_path / "design.pt2", tmp_path / "design.onnx")
    graph = onnx.load(str(tmp_path / "design.onnx")).graph
    assert set(design.state_dict()) - {"5.num_batches_tracked"} <= {t.name for t in graph.initializer}
    norm_inputs = {n.op_type: list(n.input[1:]) for n in graph.node if n.op_type.endswith("Normalization")}
    assert norm_inputs == {"LayerNormalization": ["1.weight", "1.bias"],
                           "BatchNormalization": ["5.weight", "5.bias", "5.running_mean", "5.running_var"]}

    result = interop.train("torch", tmp_path / "trained.pt2", init=tmp_path / "design.pt2", epochs=2)
    assert len(result.history) == 2 and result.train_accuracy > 0.5
    trained = torch.export.load(str(tmp_path / "trained.pt2"))
    state = {k: v.detach().numpy() for k, v in trained.state_dict.items()}  # layers named after op and index
    ln, bn = "layernormalization_1", "batchnormalization_5"
    assert set(state) == {f"{layer}.{name}" for layer in ("gemm_0", ln, "gemm_3", bn, "gemm_6")
                          for name in ("weight", "bias")} | {f"{bn}.{name}" for name in
                                                            ("running_mean", "running_var", "num_batches_tracked")}
    assert not np.array_equal(state[f"{ln}.weight"], state[f"{bn}.weight"])  # the two norms' scales trained apart
    assert not np.allclose(state[f"{bn}.running_mean"], 0) and int(state[f"{bn}.num_batches_tracked"]) > 0
