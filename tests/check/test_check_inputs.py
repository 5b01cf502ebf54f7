"""Generated inputs: per-input ranges, shapes for dynamic dimensions, embedding index ranges."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from interop.checker.inputs import parse_range_options, parse_shape_options, random_inputs, shape_batch_size
from interop.plugin_api import InteropError, TensorSpec

TEXT = [TensorSpec("input_ids", "int64", ("batch", "sequence")),
        TensorSpec("attention_mask", "int64", ("batch", "sequence")),
        TensorSpec("pixel", "float32", ("batch", 3, "height", "width"))]


def test_range_options_every_input_and_per_input() -> None:
    assert parse_range_options(["-2,2", "input_ids=0,999"]) == ((-2.0, 2.0), {"input_ids": (0.0, 999.0)})
    assert parse_range_options("0,1") == ((0.0, 1.0), {})
    assert parse_range_options((0, 1)) == ((0.0, 1.0), {})
    assert parse_range_options({"x": (1, 2)}) == (None, {"x": (1.0, 2.0)})
    assert parse_range_options(None) == (None, {})
    with pytest.raises(InteropError, match="LOW must be smaller"):
        parse_range_options(["ids=5,1"])
    with pytest.raises(InteropError, match="NAME=LOW,HIGH"):
        parse_range_options(["=0,1"])


def test_shape_options() -> None:
    assert parse_shape_options(["x=1,3,224,224"]) == {"x": (1, 3, 224, 224)}
    assert parse_shape_options({"x": [2, 5]}) == {"x": (2, 5)}
    for bad in (["x"], ["x=1,a"], ["x=1,0"]):
        with pytest.raises(InteropError, match="--input-shape"):
            parse_shape_options(bad)


def test_shapes_fill_named_dimensions_and_ranges_apply_by_precedence() -> None:
    inputs = random_inputs(
        TEXT, samples=6, batch_sizes=(2,), max_batch=2, input_shapes={"input_ids": (2, 17), "pixel": (2, 3, 5, 4)},
        input_ranges={"input_ids": (0, 999)}, value_range=(-3.0, 3.0),
        index_ranges={"input_ids": (0, 49), "attention_mask": (0, 9)},
    )
    assert inputs.plan == [2, 2, 2]
    assert inputs.arrays["input_ids"].shape == (6, 17)
    assert inputs.arrays["attention_mask"].shape == (6, 17)  # 'sequence' is named alike
    assert inputs.arrays["pixel"].shape == (6, 3, 5, 4)
    ids, mask, pixel = (inputs.arrays[n] for n in ("input_ids", "attention_mask", "pixel"))
    assert ids.min() >= 0 and ids.max() <= 999 and ids.max() > 49   # NAME=LOW,HIGH beats the index range
    assert mask.min() >= 0 and mask.max() <= 9                      # the index range beats a plain range
    assert pixel.min() >= -3 and pixel.max() <= 3 and pixel.min() < -1
    assert inputs.describe()["inputs"]["attention_mask"]["range"] == [0.0, 9.0]


def test_integer_inputs_without_a_range_are_0_1_and_the_check_says_how_to_set_it() -> None:
    inputs = random_inputs(TEXT[:2], samples=3)
    assert set(np.unique(inputs.arrays["input_ids"])) <= {0, 1}
    assert any("--range input_ids=LOW,HIGH" in note for note in inputs.notes)
    assert any("sequence" not in note and "--input-shape input_ids=" in note for note in inputs.notes)


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"input_shapes": {"nope": (1, 2)}}, "not an input of the model"),
    ({"input_ranges": {"nope": (0, 1)}}, "not an input of the model"),
    ({"input_shapes": {"input_ids": (1, 2, 3)}}, "rank 3"),
])
def test_bad_input_options_are_usage_errors(kwargs, needle) -> None:
    with pytest.raises(InteropError, match=needle) as info:
        random_inputs(TEXT, **kwargs)
    assert info.value.exit_code == 2


def test_fixed_dimensions_and_batch_sizes_must_agree() -> None:
    fixed = [TensorSpec("x", "float32", (None, 3, 8))]
    with pytest.raises(InteropError, match="axis 1 is fixed at 3"):
        random_inputs(fixed, input_shapes={"x": (1, 4, 8)})
    with pytest.raises(InteropError, match="different sizes of axis 0"):
        shape_batch_size(TEXT, {"input_ids": (2, 5), "pixel": (3, 3, 4, 4)})
    assert shape_batch_size(TEXT, {"input_ids": (4, 5)}) == 4


@pytest.fixture(scope="module")
def embedding_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """ids (batch, sequence) -> Embedding(50, 8) -> mean -> Linear(8, 3), as .pt2, .onnx and .mlpackage."""
    import torch

    import interop
    from interop_torch.loading import save_program

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = torch.nn.Embedding(50, 8)
            self.fc = torch.nn.Linear(8, 3)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.fc(self.embedding(ids).mean(1))

    folder = tmp_path_factory.mktemp("embedding")
    torch.manual_seed(0)
    program = torch.export.export(Model().eval(), (torch.randint(0, 50, (2, 5)),),
                                  dynamic_shapes=({0: torch.export.Dim("batch"), 1: torch.export.Dim("sequence")},))
    pt2 = folder / "emb.pt2"
    save_program(program, pt2, ["ids"], ["y"])
    onnx_path, mlpackage = folder / "emb.onnx", folder / "emb.mlpackage"
    interop.convert(pt2, onnx_path)
    interop.convert(onnx_path, mlpackage)
    return pt2, onnx_path, mlpackage


def test_every_runtime_declares_the_embedding_index_range(embedding_models) -> None:
    from interop.checker.models import open_model, parse_model_arg
    from interop.plugin_api import input_index_ranges
    from interop.plugin_registry import get_registry

    registry = get_registry()
    for path in embedding_models:
        session = open_model(parse_model_arg(str(path), registry), {}, registry).session
        assert input_index_ranges(session) == {"ids": (0.0, 49.0)}, path


def test_check_feeds_valid_token_ids_at_the_given_shape(embedding_models, run_cli) -> None:
    pt2, onnx_path, mlpackage = embedding_models
    code, out, err = run_cli("check", pt2, onnx_path, mlpackage, "--input-shape", "ids=3,11", "--samples", "6",
                             "--json")
    assert code == 0, err
    document = json.loads(out)
    described = document["inputs"]["inputs"]["ids"]
    assert described["shape"] == [6, 11] and described["range"] == [0.0, 49.0]
    assert document["inputs"]["runs"] == [3, 3]
    assert "indexes a table of 50 rows" in err
    code, out, err = run_cli("check", pt2, onnx_path, "--range", "ids=0,9", "--input-shape", "ids=2,4", "--json")
    assert code == 0 and json.loads(out)["inputs"]["inputs"]["ids"]["range"] == [0.0, 9.0]


def test_inputs_that_fix_axis_0_to_different_sizes_are_one_sample() -> None:
    """x: (4,) and w: (3, 4) share no batch axis (a fuzzer's repro): one feed, as given or as declared."""
    from interop.checker.inputs import from_arrays

    specs = [TensorSpec("x", "float32", (4,)), TensorSpec("w", "float32", (3, 4))]
    given = from_arrays({"x": np.ones(4, np.float32), "w": np.zeros((3, 4), np.float32)}, specs, "inputs file")
    assert given.plan == [] and given.arrays["w"].shape == (3, 4)
    generated = random_inputs(specs)
    assert generated.plan == [] and generated.arrays["x"].shape == (4,) and generated.arrays["w"].shape == (3, 4)
    with pytest.raises(InteropError, match="expects"):
        from_arrays({"x": np.ones(4, np.float32), "w": np.zeros((3, 5), np.float32)}, specs, "inputs file")


def test_a_keras_embedding_declares_its_index_range(tmp_path: Path) -> None:
    """Keras: the Embedding's input_dim, for the input the layer reads; other integer inputs get none."""
    import keras

    from interop.checker.models import open_model, parse_model_arg
    from interop.plugin_api import input_index_ranges
    from interop.plugin_registry import get_registry

    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    other = keras.Input(shape=(4,), dtype="int32", name="counts")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(50, 8, name="embedding")(ids))
    joined = keras.layers.Concatenate()([pooled, keras.ops.cast(other, "float32")])
    path = tmp_path / "emb.keras"
    keras.Model([ids, other], keras.layers.Dense(3)(joined)).save(str(path))
    registry = get_registry()
    session = open_model(parse_model_arg(str(path), registry), {}, registry).session
    assert input_index_ranges(session) == {"ids": (0.0, 49.0)}


def test_outputs_are_joined_along_the_sample_axis_as_the_runs_come(linear_onnx) -> None:
    """A real onnxruntime session fed in runs of 1, 7, 64, ...: the joined outputs are those of one big run."""
    from interop.checker.models import open_model, parse_model_arg
    from interop.checker.runner import run_session
    from interop.plugin_registry import get_registry

    registry = get_registry()
    model = open_model(parse_model_arg(str(linear_onnx("ref.onnx")), registry), {}, registry)
    input_set = random_inputs(model.session.inputs, samples=300)
    assert len(input_set.plan) > 3
    joined = run_session(model, input_set)
    whole = model.session.run(dict(input_set.arrays))
    assert set(joined) == set(whole)
    for name, value in whole.items():
        np.testing.assert_array_equal(joined[name], value)
        assert joined[name].dtype == value.dtype


def test_joining_falls_back_to_separate_runs_for_values_without_a_batch_axis() -> None:
    from interop.checker.runner import ModelRunError, _Joined

    plan = [1, 2, 3]
    batches = [np.arange(size * 2, dtype=np.float32).reshape(size, 2) + start
               for size, start in zip(plan, (0, 10, 20))]
    joined = _Joined(plan)
    for value in batches:
        joined.add(value)
    np.testing.assert_array_equal(joined.result("m", "y"), np.concatenate(batches))

    # A later run of another dtype: the runs so far are kept and numpy's concatenation decides the dtype.
    mixed = _Joined(plan)
    for value in batches[:2] + [batches[2].astype(np.float64)]:
        mixed.add(value)
    result = mixed.result("m", "y")
    assert result.dtype == np.float64
    np.testing.assert_array_equal(result, np.concatenate(batches))

    # The same value each run (no sample axis): stacked.
    same = _Joined(plan)
    for _ in plan:
        same.add(np.array([1.0, 2.0]))
    assert same.result("m", "y").shape == (3, 2)

    # Axis 0 grows with the run without being its sample count (batch x sequence flattened by a
    # reshape): joined run after run, as the other model's runs are.
    flattened = _Joined(plan)
    runs = [np.full((size * 4, 6), size, np.float32) for size in plan]
    for value in runs:
        flattened.add(value)
    np.testing.assert_array_equal(flattened.result("m", "y"), np.concatenate(runs))

    # Runs whose other dims differ cannot be joined: refused.
    broken = _Joined(plan)
    broken.add(batches[0])
    broken.add(np.zeros((5, 2), np.float32))
    broken.add(np.zeros((3, 4), np.float32))
    with pytest.raises(ModelRunError, match="changes shape from run to run"):
        broken.result("m", "y")

    # An output only the first two runs returned: not padded out with unset samples.
    partial = _Joined(plan)
    for value in batches[:2]:
        partial.add(value)
    np.testing.assert_array_equal(partial.result("m", "y"), np.concatenate(batches[:2]))
