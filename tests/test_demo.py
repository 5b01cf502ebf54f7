"""`interop demo` end to end: one real run into a temporary folder, then its files are inspected.

The demo trains with the real frameworks and converts with the real converters;
the run happens once per module (about a minute) and every test reads its output.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
FIGURES = ("decision_boundaries.png", "errors.png")
EXPECTED_FILES = (*FIGURES, "report.md", "check.json", "junit.xml", "figure.json")
FRAMEWORK_TITLES = {"keras": "Keras", "torch": "PyTorch", "mxnet": "MXNet"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, cli) -> tuple[Path, subprocess.CompletedProcess]:
    folder = tmp_path_factory.mktemp("demo") / "out"
    # From the repository root, as `make demo` runs it: that is where .venv-mxnet is looked for.
    result = cli("demo", "-o", str(folder), cwd=REPO)
    return folder, result


@pytest.fixture(scope="module")
def folder(demo) -> Path:
    folder, result = demo
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return folder


@pytest.fixture(scope="module")
def layout(folder: Path) -> dict:
    return json.loads((folder / "figure.json").read_text())


@pytest.fixture(scope="module")
def check_doc(folder: Path) -> dict:
    return json.loads((folder / "check.json").read_text())


def _image(path: Path) -> np.ndarray:
    import matplotlib.image

    return matplotlib.image.imread(str(path))


def _crop(image: np.ndarray, box: list[int], inset: int = 3) -> np.ndarray:
    """The inside of a panel (spines excluded), from a [left, top, right, bottom] pixel box."""
    left, top, right, bottom = box
    return image[top + inset:bottom - inset, left + inset:right - inset, :3]


def test_progress_names_every_stage_with_its_time_and_the_total(demo):
    _, result = demo
    out = result.stdout
    for index in range(1, 5):
        assert f"[{index}/4] " in out, out
    assert out.count("done in ") == 4
    assert "verdict: all equivalent" in out
    total_line = [line for line in out.splitlines() if line.startswith("total: ")]
    assert total_line and total_line[0].endswith(" s")


def test_library_chatter_goes_to_the_log_not_the_terminal(demo, folder: Path):
    _, result = demo
    log = (folder / "libraries.log").read_text(errors="replace")
    # TensorFlow's C++ start-up notes, coremltools' import warnings and pass-pipeline bars:
    # none may land between the demo's progress lines.
    markers = ("absl::", "cudart_stub", "Failed to load _MLModelProxy", "Running MIL")
    terminal = result.stdout + result.stderr
    assert [m for m in markers if m in terminal] == []
    # TensorFlow is imported during the demo and always announces itself here: it went to the log.
    assert any(m in log for m in markers)


def test_every_file_is_written(folder: Path, check_doc: dict):
    for name in EXPECTED_FILES:
        assert (folder / name).is_file() and (folder / name).stat().st_size > 0, name
    frameworks = check_doc["demo"]["frameworks"]
    assert {"keras", "torch"} <= set(frameworks)
    for framework in frameworks:
        copies = [folder / f"iris-{framework}.onnx", folder / f"iris-{framework}.mlpackage"]
        sources = [p for p in folder.glob(f"iris-{framework}.*") if p not in copies]
        assert len(sources) == 1, sources
        assert copies[0].is_file() and (copies[1] / "Manifest.json").is_file()


def test_check_json_says_every_copy_passed(check_doc: dict):
    frameworks = check_doc["demo"]["frameworks"]
    assert check_doc["passed"] is True
    assert check_doc["demo"]["verdict"] == "all equivalent"
    assert len(check_doc["pairs"]) == 2 * len(frameworks)
    assert all(pair["passed"] for pair in check_doc["pairs"])
    # Every copy ran on onnxruntime or the Core ML interpreter, against its own source.
    assert {pair["runtime"] for pair in check_doc["pairs"]} == {"onnxruntime", "coreml-interpreter"}
    for pair in check_doc["pairs"]:
        assert Path(pair["reference"]["path"]).stem == Path(pair["candidate"]["path"]).stem
        (logits,) = pair["outputs"]
        assert logits["argmax_agreement"] == 1.0 and logits["max_abs"] < 1e-4
    # The Iris samples and the whole plotted grid were fed.
    inputs = check_doc["demo"]["inputs"]
    assert inputs["iris_samples"] == 150 and inputs["grid_points"] == 200 * 200
    assert all(group["inputs"]["samples"] == 150 + 200 * 200 for group in check_doc["groups"])


def test_junit_has_one_passing_case_per_pair(folder: Path, check_doc: dict):
    suite = ET.parse(folder / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    assert int(suite.get("tests")) == len(check_doc["pairs"])
    assert int(suite.get("failures")) == 0


def test_pngs_decode_with_the_recorded_layout(folder: Path, layout: dict, check_doc: dict):
    frameworks = check_doc["demo"]["frameworks"]
    for name, key in (("decision_boundaries.png", "decision_boundaries"), ("errors.png", "errors")):
        image = _image(folder / name)
        assert image.shape[:2] == (layout[key]["height"], layout[key]["width"]), name
        for panel in layout[key]["panels"]:
            left, top, right, bottom = panel["box"]
            assert 0 <= left < right <= image.shape[1] and 0 <= top < bottom <= image.shape[0]
    regions = layout["decision_boundaries"]
    assert (regions["rows"], regions["cols"]) == (len(frameworks), 3)
    assert len(regions["panels"]) == 3 * len(frameworks)
    assert layout["errors"]["cols"] == len(frameworks)


def test_panel_titles_name_framework_runtime_and_engine(layout: dict):
    for panel in layout["decision_boundaries"]["panels"]:
        title = panel["title"]
        assert FRAMEWORK_TITLES[panel["framework"]] in title
        assert panel["runtime"] in title and panel["engine"] and panel["engine"] in title
    titles = [p["title"] for p in layout["decision_boundaries"]["panels"]]
    assert any("Core ML" in t and "reference interpreter" in t for t in titles)
    assert any("ONNX" in t and "onnxruntime" in t for t in titles)


def test_panels_of_one_framework_are_identical_and_frameworks_differ(folder: Path, layout: dict):
    image = _image(folder / "decision_boundaries.png")
    by_row: dict[int, list[np.ndarray]] = {}
    for panel in layout["decision_boundaries"]["panels"]:
        by_row.setdefault(panel["row"], []).append(_crop(image, panel["box"]))
    for row, crops in by_row.items():
        first = crops[0]
        # A real plot: the three class regions and the markers give many colours.
        assert len(np.unique(first.reshape(-1, 3), axis=0)) >= 6
        for other in crops[1:]:
            assert other.shape == first.shape
            np.testing.assert_array_equal(other, first, err_msg=f"row {row}: panels differ")
    # Independently trained models draw different boundaries: the comparison above can fail.
    rows = sorted(by_row)
    assert not np.array_equal(by_row[rows[0]][0], by_row[rows[1]][0])


def test_the_keras_design_trained_in_pytorch_draws_the_keras_rows_regions(folder: Path, layout: dict):
    # Issue 11: a design made in Keras, trained in PyTorch through --init from the Keras row's starting
    # weights and interop's batch order, ends where Keras did: the same decision regions, pixel for pixel.
    image = _image(folder / "decision_boundaries.png")
    sources = {p["file"]: _crop(image, p["box"]) for p in layout["decision_boundaries"]["panels"] if p["col"] == 0}
    assert "iris-keras-design-torch.pt2" in sources and (folder / "iris-keras-design.keras").exists()
    np.testing.assert_array_equal(sources["iris-keras-design-torch.pt2"], sources["iris-keras.keras"])
    assert not np.array_equal(sources["iris-keras-design-torch.pt2"], sources["iris-torch.pt2"])
    report = (folder / "report.md").read_text()
    assert "| Keras design → PyTorch | the untrained Keras design iris-keras-design.keras" in report
    assert "| PyTorch | PyTorch's own initialisation (seed 0) |" in report
    assert "so their decision regions are the same" in report
    assert "interop train --framework torch --init" in report


def test_figures_report_and_check_json_show_the_same_numbers(folder: Path, layout: dict, check_doc: dict):
    # One run of every model: errors.png, the decision-boundary titles, report.md and check.json
    # all come from the outputs the check judged.
    by_copy = {Path(pair["candidate"]["path"]).name: pair["outputs"][0] for pair in check_doc["pairs"]}
    plotted = {series["file"]: series for panel in layout["errors"]["panels"] for series in panel["series"]}
    assert set(plotted) == set(by_copy)
    titles = [p["title"] for p in layout["decision_boundaries"]["panels"] if "max |Δ|" in p["title"]]
    assert len(titles) == len(by_copy)
    report = (folder / "report.md").read_text()
    for name, output in by_copy.items():
        series = plotted[name]
        assert series["max_abs"] == output["max_abs"], name
        assert (series["atol"], series["rtol"], series["stat"]) == (output["atol"], output["rtol"], output["stat"])
        assert any(f"max |Δ| {output['max_abs']:.2g}" in t for t in titles), (name, titles)
        row = [line for line in report.splitlines() if f"| {name} |" in line]
        assert row and (f"{output['max_abs']:.2e}" in row[0] or f"{output['max_abs']:.4g}" in row[0]), row
    # One scale for every panel.
    assert layout["errors"]["x_limits"][0] < layout["errors"]["x_limits"][1]


def test_report_gives_verdict_accuracies_engines_and_commands(folder: Path, check_doc: dict):
    text = (folder / "report.md").read_text()
    assert "**Verdict: all equivalent**" in text
    for framework in check_doc["demo"]["frameworks"]:
        assert f"| {FRAMEWORK_TITLES[framework]} |" in text
        assert f"interop train --framework {framework} -o" in text
    assert "interop check" in text and "--dataset iris-grid" in text
    assert "coreml (reference interpreter)" in text
    if sys.platform != "darwin":
        # Apple's runtime is named, with its reason, and so is what replaced it.
        assert "**coreml** cannot run on this machine" in text and "macOS" in text
    for package in ("onnxruntime", "numpy"):
        assert package in text
    assert "total" in text and "Target: under 60 s" in text


def test_second_run_without_force_refuses_and_keeps_the_files(folder: Path, cli):
    before = (folder / "report.md").read_text()
    result = cli("demo", "-o", str(folder), cwd=REPO)
    assert result.returncode == 2
    assert "--force" in result.stderr
    assert (folder / "report.md").read_text() == before


def test_demo_help_imports_no_framework_and_no_matplotlib():
    heavy = ("tensorflow", "keras", "torch", "coremltools", "onnxruntime", "tf2onnx", "matplotlib")
    probe = (
        "import sys, runpy\n"
        "sys.argv = ['interop', 'demo', '--help']\n"
        "try:\n    runpy.run_module('interop', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        f"print('HEAVY:' + ','.join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert "-o, --output" in result.stdout
    assert [line for line in result.stderr.splitlines() if line.startswith("HEAVY:")] == ["HEAVY:"]


def _result_with(pair_verdicts: list[bool], copies: int):
    """The two things the verdict reads: the lineages' copies and the check's pairs."""
    from types import SimpleNamespace

    lineage = SimpleNamespace(copies=[object()] * copies)
    pairs = [SimpleNamespace(passed=ok) for ok in pair_verdicts]
    return SimpleNamespace(lineages=[lineage], check=SimpleNamespace(pairs=pairs))


@pytest.mark.parametrize(("verdicts", "copies", "expected"), [
    ([True, True], 2, "all equivalent"),
    ([True, False], 2, "NOT all equivalent: 1 of 2 copies differ from their source"),
    ([True], 2, "NOT all equivalent: only 1 of 2 copies were checked"),
])
def test_verdict_names_what_failed(verdicts, copies, expected):
    from interop.demo.markdown import verdict

    assert verdict(_result_with(verdicts, copies)) == expected
