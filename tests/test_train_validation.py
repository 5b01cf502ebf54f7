"""`interop train` refuses hyper-parameters and output names it cannot honour, before any training (exit 2)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from cli_assertions import assert_refused

import interop
from interop.plugin_api import InteropError
from interop.plugin_registry import get_registry
from interop.training import MAX_SEED, check_output_extension


@pytest.mark.parametrize(("args", "needle"), [
    (("--lr", "nan"), "--lr must be a finite number above 0, got nan"),
    (("--lr", "inf"), "--lr must be a finite number above 0, got inf"),
    (("--lr", "-0.1"), "--lr must be a finite number above 0"),
    (("--lr", "0"), "--lr must be a finite number above 0"),
    (("--epochs", "-1"), "--epochs must be at least 0"),
    (("--batch-size", "-2"), "--batch-size must be at least 1"),
    (("--seed", "-1"), "--seed must be between 0 and"),
    (("--seed", str(MAX_SEED + 1)), "--seed must be between 0 and"),
])
def test_bad_hyper_parameters_on_the_command_line(tmp_path, cli, args, needle):
    out = tmp_path / "model.pt2"
    assert_refused(cli("train", "--framework", "torch", "-o", str(out), *args), needle)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("options", [
    {"lr": math.nan}, {"lr": -1.0}, {"lr": "0.1"}, {"lr": True}, {"epochs": -1}, {"epochs": 2.5},
    {"epochs": True}, {"batch_size": 0}, {"seed": -5}, {"seed": 2**40},
])
def test_bad_hyper_parameters_through_the_api(tmp_path, options):
    with pytest.raises(InteropError) as info:
        interop.train("torch", tmp_path / "model.pt2", **options)
    assert info.value.exit_code == 2
    assert next(iter(options)).replace("_", "-") in info.value.message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("framework", "name", "right"), [
    ("torch", "model.onnx", "model.pt2"),
    ("keras", "model.pt2", "model.keras"),
    ("keras", "model", "model.keras"),
])
def test_output_extension_must_match_the_trainers_format(tmp_path, cli, framework, name, right):
    result = cli("train", "--framework", framework, "-o", str(tmp_path / name))
    assert_refused(result, name, f"the {framework} trainer writes a {framework} model")
    assert f"hint: use -o {tmp_path / right}" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_every_extension_of_the_format_is_accepted():
    registry = get_registry()
    keras = registry.trainers["keras"].item
    for name in ("m.keras", "M.KERAS", "m.h5", "m.hdf5"):
        check_output_extension(Path(name), keras, registry)
    with pytest.raises(InteropError, match="whose name ends with .keras or .h5 or .hdf5"):
        check_output_extension(Path("m.onnx"), keras, registry)
