"""Helpers for the ONNX -> torch importer tests: real ONNX files, onnxruntime as the reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from interop.testing.zoo import skip_extended_unless_asked, without_final_softmax  # noqa: F401 - shared helpers


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def ort_run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def torch_run(module, feeds: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    import torch

    with torch.no_grad():
        result = module(*[torch.from_numpy(np.asarray(feeds[n], order="C")) for n in names])
    result = result if isinstance(result, tuple) else (result,)
    return [r.numpy() for r in result]


def sgd_step(module, args: list, train: bool = True) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Loss before and after one SGD step on a fixed batch (MSE to a fixed random target).

    The step size is a tenth of the one that would zero the loss to first order, so a
    correct gradient lowers the loss by about 10% whatever the model's scale. Dropout
    draws the same masks in both passes (the generator is reseeded).
    """
    import torch

    if train:
        module.train()
    params = [p for p in module.parameters() if p.requires_grad]
    assert params, "the module has no trainable parameters"

    def loss_of() -> torch.Tensor:
        torch.manual_seed(0)
        outputs = module(*args)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        generator = torch.Generator().manual_seed(1)
        return sum(((o - torch.randn(o.shape, generator=generator)) ** 2).mean() for o in outputs)

    before = loss_of()
    grads = torch.autograd.grad(before, params, allow_unused=True)
    norm = sum(float((g * g).sum()) for g in grads if g is not None)
    assert norm > 0, "no gradient reaches the parameters"
    optimizer = torch.optim.SGD(params, lr=0.1 * before.item() / norm)
    for p, g in zip(params, grads):
        p.grad = g
    optimizer.step()
    with torch.no_grad():
        after = loss_of()
    return before.item(), after.item()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("torch-import")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``extended`` run only under INTEROP_EXTENDED=1 (``make test-extended``)."""
    skip_extended_unless_asked(items)
