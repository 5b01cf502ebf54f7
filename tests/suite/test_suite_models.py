"""The suite over real models — the reference MLPs, zoo architectures, a Keras Application — with --jobs 2
and on a two-worker Dask cluster: identical results; an injected crash and a timeout fail alone."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("distributed")

MANIFEST = '''
seed = 0
timeout = 600

[[models]]
path = "models/iris.keras"
to = ["coreml"]             # keras -> onnx -> coreml: two hops
dataset = "iris"

[[models]]
path = "models/iris.pt2"
to = ["onnx"]
dataset = "iris"

[[models]]
path = "models/squeezenet.onnx"
to = ["coreml", "crashing"] # the second converter segfaults
samples = 2
batch_sizes = [1, 1]
atol = 1e-4
rtol = 1e-3

[[models]]
path = "models/mobilenetv2.keras"
to = ["onnx"]
samples = 3
batch_sizes = [1, 2]
atol = 1e-4
rtol = 1e-3

[[models]]
path = "models/squeezenet.onnx"
name = "squeezenet-hang"
to = ["hanging"]            # this converter never returns
timeout = 5
'''

BUILD = '''
import sys
import keras
from interop_keras.applications import randomize_batchnorm

keras.utils.set_random_seed(0)
net = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), include_top=False, pooling="avg")
randomize_batchnorm(net)
net.save(sys.argv[1])
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, keras_model: Path, torch_model: Path) -> Path:
    import onnx

    from interop.testing.zoo import zoo_model

    folder = tmp_path_factory.mktemp("suite-models")
    models = folder / "models"
    models.mkdir()
    shutil.copy(keras_model, models / "iris.keras")
    shutil.copy(torch_model, models / "iris.pt2")
    onnx.save(zoo_model("squeezenet", seed=0, dynamic_batch=True), str(models / "squeezenet.onnx"))
    # A Keras Application (random weights) built in its own process: this one need not import TensorFlow.
    subprocess.run([sys.executable, "-c", BUILD, str(models / "mobilenetv2.keras")], check=True,
                   capture_output=True, timeout=600)
    (folder / "interop.toml").write_text(MANIFEST)
    return folder


@pytest.mark.slow
def test_real_models_locally_and_on_a_cluster(project: Path, cluster, cli, differences):
    local = cli("suite", "--jobs", "2", "--no-cache", "--json", "--junit", "junit.xml", cwd=project)
    assert local.returncode == 1, local.stderr
    document = json.loads(local.stdout)
    statuses = {entry["id"]: entry["status"] for entry in document["entries"]}
    assert statuses == {
        "models/iris.keras[coreml]": "passed", "models/iris.pt2[onnx]": "passed",
        "models/squeezenet.onnx[coreml]": "passed", "models/squeezenet.onnx[crashing]": "crashed",
        "models/mobilenetv2.keras[onnx]": "passed", "squeezenet-hang[hanging]": "timeout",
    }
    routes = {entry["id"]: entry["route"] for entry in document["entries"]}
    assert routes["models/iris.keras[coreml]"] == ["keras", "onnx", "coreml"]
    engines = {entry["id"]: entry["check"]["pairs"][0]["engine"] for entry in document["entries"] if entry["check"]}
    assert engines["models/iris.keras[coreml]"] == "coreml (reference interpreter)"
    assert engines["models/mobilenetv2.keras[onnx]"].startswith("onnxruntime")

    remote = cli("suite", "--scheduler", cluster.scheduler_address, "--no-cache", "--json", cwd=project)
    assert remote.returncode == 1, remote.stderr
    assert not differences(json.loads(remote.stdout), document)
