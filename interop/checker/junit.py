"""JUnit XML for CI: one test case per pair and output, failures carrying the numbers.

Pair-level problems (inputs that differ) are a failing test case named
``(inputs)``; a model skipped for want of a runtime is a skipped test case.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from interop.checker.report import OutputResult, PairResult, Report
from interop.output_files import atomic_output


def _numbers(out: OutputResult) -> str:
    lines = []
    if out.tolerance is not None:
        lines.append(f"atol={out.tolerance.atol:g} rtol={out.tolerance.rtol:g} ({out.tolerance.source})")
    if out.metrics is not None:
        for key, value in out.metrics.to_dict().items():
            lines.append(f"{key}={value}")
    if out.oracle is not None:
        judgement = out.oracle
        lines.append(f"fp64 oracle: reference error {judgement.reference_error:.3g}, candidate error "
                     f"{judgement.candidate_error:.3g} of the output's scale ({judgement.samples} samples): "
                     f"{judgement.verdict}")
    if out.failure_file:
        lines.append(f"failure_file={out.failure_file}")
    if out.reproduce:
        lines.append(f"reproduce: {out.reproduce}")
    return "\n".join(lines)


def _case(suite: ET.Element, pair: PairResult, name: str, seconds: float) -> ET.Element:
    return ET.SubElement(suite, "testcase", {
        "classname": f"interop.check.{pair.reference.label} vs {pair.candidate.label}",
        "name": name,
        "time": f"{seconds:.3f}",
    })


def build(report: Report) -> ET.ElementTree:
    """The JUnit document of ``report``."""
    cases = sum(len(p.outputs) + (1 if p.problems else 0) for p in report.pairs) + len(report.skipped)
    failures = len(report.failures)
    root = ET.Element("testsuites", {"name": "interop check", "tests": str(cases),
                                     "failures": str(failures), "errors": "0"})
    suite = ET.SubElement(root, "testsuite", {
        "name": "interop check", "tests": str(cases), "failures": str(failures), "errors": "0",
        "skipped": str(len(report.skipped)), "time": f"{report.seconds:.3f}",
    })
    properties = ET.SubElement(suite, "properties")
    for package, version in report.versions.items():
        ET.SubElement(properties, "property", {"name": f"version.{package}", "value": str(version)})
    per_case = report.seconds / cases if cases else 0.0
    for pair in report.pairs:
        if pair.problems:
            case = _case(suite, pair, "(inputs)", per_case)
            failure = ET.SubElement(case, "failure", {"message": pair.problems[0], "type": "mismatch"})
            failure.text = "\n".join(pair.problems)
        for out in pair.outputs:
            case = _case(suite, pair, out.name, per_case)
            ET.SubElement(case, "system-out").text = (
                f"engine: {pair.candidate.engine} vs {pair.reference.engine} [{pair.precision}]\n{_numbers(out)}"
            )
            if not out.passed:
                failure = ET.SubElement(case, "failure", {"message": out.message, "type": "mismatch"})
                failure.text = _numbers(out)
                if pair.located is not None:
                    failure.text += "\n" + "\n".join(line.strip() for line in pair.located.lines())
    for skipped in report.skipped:
        case = ET.SubElement(suite, "testcase", {"classname": "interop.check.skipped",
                                                 "name": skipped["model"], "time": "0"})
        ET.SubElement(case, "skipped", {"message": skipped["reason"]})
    ET.indent(root)
    return ET.ElementTree(root)


def write(report: Report, path: Path) -> None:
    """Write the JUnit XML of ``report`` at ``path`` atomically; a directory or a link there is refused (exit 2)."""
    tree = build(report)
    with atomic_output(Path(path), force=True) as tmp:
        tree.write(tmp, encoding="utf-8", xml_declaration=True)
