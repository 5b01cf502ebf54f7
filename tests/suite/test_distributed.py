"""`interop suite --scheduler`: the same results on a Dask cluster (two local worker processes) as with --jobs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")


@pytest.fixture
def project(tmp_path: Path, npmlp: Path) -> Path:
    for name in ("iris", "other"):
        shutil.copytree(npmlp, tmp_path / f"{name}.npmlp")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "petal.npz", petal=rng.uniform([1, 0.1], [7, 2.5], size=(5, 2)).astype(np.float32))
    (tmp_path / "interop.toml").write_text(
        'to = ["onnx"]\ndataset = "iris"\n'
        '[[models]]\npath = "iris.npmlp"\ngolden = "golden/{stem}.npz"\n'
        '[[models]]\npath = "other.npmlp"\nto = ["onnx", "strict"]\ninputs = "petal.npz"\n'
        '[targets.strict]\nformat = "onnx"\natol = 0.0\nrtol = 0.0\n')  # numpy and onnxruntime differ by ~1e-6
    return tmp_path


@pytest.mark.slow
def test_cluster_gives_the_results_of_local_jobs(project: Path, cluster, cli, differences):
    # Golden files travel to the workers too; crashes and timeouts on a cluster: test_suite_models.py.
    assert cli("suite", "--update-golden", "-k", "golden", cwd=project).returncode == 0
    local = cli("suite", "--no-cache", "--jobs", "2", "--json", cwd=project)
    assert local.returncode == 1, local.stderr
    local_doc = json.loads(local.stdout)
    assert [(e["id"], e["status"]) for e in local_doc["entries"]] == [
        ("iris.npmlp[onnx]", "passed"), ("iris.npmlp[golden]", "passed"), ("other.npmlp[onnx]", "passed"),
        ("other.npmlp[strict]", "failed")]
    assert local_doc["entries"][2]["check"]["inputs"]["samples"] == 5  # from petal.npz, sent to the workers too
    failure = local_doc["entries"][3]["check"]["pairs"][0]["outputs"][0]["failure_file"]
    assert failure.endswith("failures/strict--logits.npz") and Path(failure).is_file()
    for extra in ([], ["--shared-path"]):
        remote = cli("suite", "--no-cache", "--scheduler", cluster.scheduler_address, "--json", *extra, cwd=project)
        assert remote.returncode == 1, remote.stderr
        remote_doc = json.loads(remote.stdout)
        assert remote_doc["executor"] == f"dask {cluster.scheduler_address}"
        assert not differences(remote_doc, local_doc)


def test_workers_unlike_this_machine_are_refused_before_any_work(project: Path, cluster, cli):
    # Here the suite-faults plugin is not installed; on the workers it is.
    (project / "interop.toml").write_text('to = ["onnx"]\n[[models]]\npath = "iris.npmlp"\n')
    result = cli("suite", "--scheduler", cluster.scheduler_address, cwd=project, env={"PYTHONPATH": ""})
    assert result.returncode == 2, result.stderr
    assert "workers differ from this machine" in result.stderr
    assert "plugins suite-faults: here not installed, there interop-suite-faults 0.1" in result.stderr
    assert not (project / ".interop-cache" / "entries").exists()


def test_unreachable_scheduler_is_exit_2(project: Path, cli):
    (project / "interop.toml").write_text('to = ["onnx"]\n[[models]]\npath = "iris.npmlp"\n')
    result = cli("suite", "--scheduler", "tcp://127.0.0.1:9", cwd=project)
    assert result.returncode == 2 and "cannot reach the Dask scheduler" in result.stderr

