"""The suite's results: one per entry, as a JSON document, a summary table and JUnit XML.

Each entry result keeps the check report's own JSON document (``check``) and the
conversion's route and hops, so a CI job can read every number without parsing
40 files. JUnit has one test case per (model, target, output): a mismatch is a
``<failure>``, a conversion error, crash or timeout an ``<error>``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interop.output_files import atomic_output

#: Version of the JSON document of ``interop suite --json`` (see interop/schemas/suite.schema.json).
SUITE_SCHEMA = 1
#: Entry statuses; only the first passes.
STATUSES = ("passed", "failed", "error", "crashed", "timeout")


@dataclass
class EntryResult:
    """What happened to one entry (``status`` is one of :data:`STATUSES`)."""

    id: str
    model: str
    target: str
    format: str | None
    route: list[str]
    status: str
    cached: bool = False
    seconds: float = 0.0
    error: dict[str, Any] | None = None
    conversion: dict[str, Any] | None = None
    check: dict[str, Any] | None = None
    artifact: str | None = None
    folder: str | None = None
    key: str | None = None

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def outputs(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Every (pair, output) of the entry's check."""
        pairs = (self.check or {}).get("pairs", [])
        return [(pair, out) for pair in pairs for out in pair.get("outputs", [])]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "model": self.model, "target": self.target, "format": self.format,
            "route": list(self.route), "status": self.status, "passed": self.passed, "cached": self.cached,
            "seconds": round(self.seconds, 3), "artifact": self.artifact, "folder": self.folder, "key": self.key,
            "error": self.error, "conversion": self.conversion, "check": self.check,
        }


@dataclass
class SuiteResult:
    """Every entry's result, in manifest order."""

    manifest: str
    entries: list[EntryResult] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    executor: str = "local"
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(entry.passed for entry in self.entries)

    def counts(self) -> dict[str, int]:
        counts = {status: 0 for status in STATUSES}
        for entry in self.entries:
            counts[entry.status] = counts.get(entry.status, 0) + 1
        counts["cached"] = sum(entry.cached for entry in self.entries)
        counts["entries"] = len(self.entries)
        counts["comparisons"] = sum(len(entry.outputs()) for entry in self.entries)
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SUITE_SCHEMA,
            "passed": self.passed,
            "manifest": self.manifest,
            "summary": self.counts(),
            "executor": self.executor,
            "environment": self.environment,
            "entries": [entry.to_dict() for entry in self.entries],
            "seconds": round(self.seconds, 3),
        }

    # ------------------------------------------------------------------ table

    def format_table(self) -> str:
        rows = [["entry", "route", "engine", "outputs", "max_abs", "status", "time"]]
        for entry in self.entries:
            outputs = entry.outputs()
            engines = sorted({pair.get("engine", "?") for pair, _ in outputs}) or ["-"]
            worst = max(metric(out, "max_abs") or 0.0 for _, out in outputs) if outputs else None
            good = sum(bool(out.get("passed")) for _, out in outputs)
            rows.append([
                entry.id, " -> ".join(entry.route) or "-", ", ".join(engines),
                f"{good}/{len(outputs)}" if outputs else "-",
                f"{worst:.2e}" if worst is not None else "-",
                entry.status.upper() if entry.status != "passed" else "PASS",
                "cached" if entry.cached else f"{entry.seconds:.1f}s",
            ])
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        details = self.failure_details()
        if details:
            lines += ["", *details]
        lines += ["", self.verdict()]
        return "\n".join(lines)

    def failure_details(self) -> list[str]:
        lines = []
        for entry in self.entries:
            if entry.passed:
                continue
            if entry.error:
                lines.append(f"{entry.id}: {entry.status}: {entry.error.get('message')}")
                if entry.error.get("hint"):
                    lines.append(f"  hint: {entry.error['hint']}")
                if entry.folder:
                    lines.append(f"  log: {Path(entry.folder) / 'worker.log'}")
                continue
            for pair in (entry.check or {}).get("pairs", []):
                for problem in pair.get("problems", []):
                    lines.append(f"{entry.id}: {problem}")
                for out in pair.get("outputs", []):
                    if not out.get("passed"):
                        lines.append(f"{entry.id}: output {out.get('name')}: {out.get('message')}")
                        if out.get("reproduce"):
                            lines.append(f"  reproduce: {out['reproduce']}")
        return lines

    def verdict(self) -> str:
        counts = self.counts()
        problems = [f"{counts[s]} {s}" for s in STATUSES[1:] if counts[s]]
        head = "PASSED" if self.passed else "FAILED"
        return (f"{head}: {counts['entries']} entries, {counts['passed']} passed"
                + (", " + ", ".join(problems) if problems else "")
                + f"; {counts['comparisons']} output comparison(s); {counts['cached']} from the cache; "
                f"{self.seconds:.1f} s")

    # ------------------------------------------------------------------ JUnit

    def junit(self) -> ET.ElementTree:
        """One test case per (model, target, output); an entry without outputs is one case."""
        root = ET.Element("testsuites", {"name": "interop suite"})
        suite = ET.SubElement(root, "testsuite", {"name": "interop suite", "time": f"{self.seconds:.3f}"})
        properties = ET.SubElement(suite, "properties")
        ET.SubElement(properties, "property", {"name": "manifest", "value": self.manifest})
        for name, version in sorted((self.environment.get("packages") or {}).items()):
            ET.SubElement(properties, "property", {"name": f"version.{name}", "value": str(version)})
        tests = failures = errors = 0
        for entry in self.entries:
            outputs = entry.outputs()
            per_case = entry.seconds / max(1, len(outputs))
            classname = f"interop.suite.{entry.model}"
            if entry.error is not None or entry.check is None:
                tests += 1
                case = ET.SubElement(suite, "testcase", {"classname": classname, "name": entry.target,
                                                         "time": f"{entry.seconds:.3f}"})
                if entry.error is not None:
                    errors += 1
                    error = ET.SubElement(case, "error", {"message": str(entry.error.get("message")),
                                                          "type": entry.status})
                    error.text = "\n".join(filter(None, [entry.error.get("hint"), entry.error.get("log_tail")]))
                continue
            pairs = (entry.check or {}).get("pairs", [])
            for pair in pairs:
                if pair.get("problems"):
                    tests += 1
                    failures += 1
                    case = ET.SubElement(suite, "testcase", {"classname": classname,
                                                             "name": f"{entry.target} (inputs)", "time": "0"})
                    ET.SubElement(case, "failure", {"message": pair["problems"][0], "type": "mismatch"}).text = \
                        "\n".join(pair["problems"])
            for pair, out in outputs:
                tests += 1
                case = ET.SubElement(suite, "testcase", {"classname": classname,
                                                         "name": f"{entry.target}: {out.get('name')}",
                                                         "time": f"{per_case:.3f}"})
                reference_engine = (pair.get("reference") or {}).get("engine")
                text = (f"engine: {pair.get('engine')} vs {reference_engine} [{pair.get('precision')}]\n"
                        + _numbers(out))
                ET.SubElement(case, "system-out").text = text
                if not out.get("passed"):
                    failures += 1
                    ET.SubElement(case, "failure", {"message": str(out.get("message")), "type": "mismatch"}).text = \
                        _numbers(out)
            if not outputs and not any(pair.get("problems") for pair in pairs):
                tests += 1  # a golden file written: one passing case
                ET.SubElement(suite, "testcase", {"classname": classname, "name": entry.target,
                                                  "time": f"{entry.seconds:.3f}"})
        for element in (root, suite):
            element.set("tests", str(tests))
            element.set("failures", str(failures))
            element.set("errors", str(errors))
        ET.indent(root)
        return ET.ElementTree(root)

    def write_junit(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path, force=True) as tmp:
            self.junit().write(tmp, encoding="utf-8", xml_declaration=True)


def _numbers(out: dict[str, Any]) -> str:
    """Every number of one output of a check report's JSON, one ``key=value`` per line."""
    lines = []
    flat = {**{k: v for k, v in out.items() if k != "metrics"}, **(out.get("metrics") or {})}
    for key, value in flat.items():
        if key in ("name", "passed", "message", "reproduce") or isinstance(value, (dict, list)) or value is None:
            continue
        lines.append(f"{key}={value}")
    if out.get("reproduce"):
        lines.append(f"reproduce: {out['reproduce']}")
    return "\n".join(lines)


def metric(out: dict[str, Any], name: str) -> Any:
    """A metric of one output, wherever the check report's schema keeps it."""
    if name in out:
        return out[name]
    return (out.get("metrics") or {}).get(name)
