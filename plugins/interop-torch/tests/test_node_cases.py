"""ONNX's backend node test cases through the importer, compared with their expected outputs.

A case either converts and matches, or is refused with UnsupportedModelError naming why;
it never crashes and never computes something else. `make test` runs the first two cases
of every op the importer registers; `make test-extended` runs every importable case.
"""

from __future__ import annotations

import collections

import pytest

from interop_torch.onnx_import.coverage import ERROR, MISMATCH, PASS, importable_cases, run_case

# Building the cases runs numpy reference code that divides by zero on purpose (empty reductions).
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

#: Cases whose expected outputs the importer deliberately does not reproduce, with the reason.
KNOWN = {
    "test_reduce_max_empty_set": "torch cannot reduce an empty dim (ONNX gives -inf)",
    "test_reduce_max_empty_set_bool": "torch cannot reduce an empty dim",
    "test_reduce_min_empty_set": "torch cannot reduce an empty dim (ONNX gives +inf)",
    "test_top_k_uint64": "torch has no uint64 sort",
    "test_training_dropout": "Dropout in training mode draws random masks; torch draws other ones",
    "test_training_dropout_default": "Dropout in training mode draws random masks; torch draws other ones",
}


@pytest.fixture(scope="module")
def cases():  # type: ignore[no-untyped-def]
    return importable_cases()


def _problems(results) -> list[str]:  # type: ignore[no-untyped-def]
    return [f"{r.case}: {r.status}: {r.reason}" for r in results
            if r.status in (ERROR, MISMATCH) and r.case not in KNOWN]


def test_first_cases_of_every_op(cases):
    by_op: dict[str, list] = collections.defaultdict(list)
    for case in sorted(cases, key=lambda c: c.name):
        ops = {n.op_type for n in case.model.graph.node}
        if len(ops) == 1 and "_expanded" not in case.name:
            by_op[next(iter(ops))].append(case)
    results = [run_case(case) for group in by_op.values() for case in group[:2]]
    assert len(by_op) > 120  # op types with a converter and a node case
    assert not _problems(results), "\n".join(_problems(results))
    assert sum(r.status == PASS for r in results) > 0.8 * len(results)


@pytest.mark.extended
def test_every_importable_case(cases):
    results = [run_case(case) for case in cases]
    assert not _problems(results), "\n".join(_problems(results))
    assert sum(r.status == PASS for r in results) >= 1095  # 1,099 of 1,386 importable cases at the last count
