"""The report's "latency by runtime" table and best-runtime plot, from records with several
runtimes, precisions and deployed accuracies (fixtures built like test_report's)."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup
from test_report import build_sample_report, first_line

from bench.layout import SuiteLayout
from bench.results import DeployedAccuracy, Latency, RunRecord
from reports.render import render_report

# pp_liteseg_t's fp32 mIoU per seed is 60/62/64 %; int8 loses 0.6, 0.1 and -0.2 pp on
# openvino (paired interval contains 0) and 11-13 pp on onnxruntime (interval below 0).
MS = {("torch", "fp32"): 20.0, ("onnxruntime", "fp32"): 15.0, ("openvino", "int8"): 8.0}
MS[("onnxruntime", "int8")] = 6.0
INT8_LOSS = {"openvino": (0.006, 0.001, -0.002), "onnxruntime": (0.11, 0.12, 0.13)}


def _latency(runtime: str, precision: str) -> Latency:
    median = MS[(runtime, precision)]
    return Latency(
        runtime=runtime,
        runtime_version={"torch": "2.15.0", "onnxruntime": "1.32.0"}.get(runtime, "2026.4.1"),
        precision=precision,
        device="cpu",
        device_name="Test CPU",
        input_size=(512, 1024),
        batch=1,
        threads=2,
        warmup=3,
        repeats=10,
        rounds=5,
        session="s1",
        median_ms=median,
        iqr_ms=0.05 * median,
        fps=1000.0 / median,
        backend={"torch": "eager", "onnxruntime": "CPUExecutionProvider"}.get(runtime, "CPU"),
        bn_folded=True,
        calibration="32 images: camvid train" if precision == "int8" else None,
    )


def _with_runtimes(record: RunRecord) -> RunRecord:
    cost = record.cost.model_copy(update={"latency": [_latency(*key) for key in MS]})
    deployed = [
        DeployedAccuracy(
            runtime=runtime,
            runtime_version="1",
            precision="int8",
            calibration_images=32,
            calibration_source="camvid train",
            metrics=record.metrics.model_copy(
                update={"miou": record.metrics.miou - losses[record.seed]}
            ),
        )
        for runtime, losses in INT8_LOSS.items()
    ]
    return record.model_copy(update={"cost": cost, "deployed": deployed})


@pytest.fixture(scope="module")
def soup(tmp_path_factory) -> BeautifulSoup:
    sample = build_sample_report(tmp_path_factory.mktemp("runtimes"))
    entries = [
        entry
        if entry.variant != "pp_liteseg_t" or entry.record is None
        else type(entry)(
            entry.run_id, entry.variant, entry.seed, entry.status, _with_runtimes(entry.record)
        )
        for entry in sample.entries
    ]
    path = render_report(
        sample.suite, entries, SuiteLayout(sample.suite_dir), suite_file=sample.suite_file
    )
    return BeautifulSoup(path.read_text(encoding="utf-8"), "lxml")


def _rows(soup, variant: str) -> list[dict]:
    """Measurement rows of ``variant`` as {header: cell} (the settings rows left out)."""
    table = soup.find(id="runtime-table")
    headers = [th.get_text(strip=True) for th in table.thead.find_all("th")]
    rows = [
        dict(zip(headers, tr.find_all("td", recursive=False), strict=True))
        for tr in table.tbody.find_all("tr", recursive=False)
        if "settings-row" not in (tr.get("class") or [])
    ]
    return [r for r in rows if first_line(r["Variant"]) == variant]


def test_rows_are_sorted_fastest_first_with_speedups(soup):
    rows = _rows(soup, "pp_liteseg_t")
    assert [(first_line(r["Runtime"]), r["Precision"].get_text()) for r in rows] == [
        ("onnxruntime", "int8"),
        ("openvino", "int8"),
        ("onnxruntime", "fp32"),
        ("torch", "fp32"),
    ]
    assert [r["Speed-up"].get_text() for r in rows] == ["3.33×", "2.50×", "1.33×", "1.00×"]
    assert rows[0]["Median"].get_text() == "6.00 ms" and rows[0]["IQR"].get_text() == "0.30 ms"


def test_accuracy_cost_verdict_and_best_runtime(soup):
    rows = {
        (first_line(r["Runtime"]), r["Precision"].get_text()): r
        for r in _rows(soup, "pp_liteseg_t")
    }
    ort, ov = rows[("onnxruntime", "int8")], rows[("openvino", "int8")]
    assert ort["Accuracy cost (mIoU)"].get_text(" ", strip=True).startswith("-12.00 pp")
    assert ort["Accuracy cost (mIoU)"].find(class_="badge").get_text() == "lower"
    assert ov["Accuracy cost (mIoU)"].find(class_="badge").get_text().startswith("inconclusive")
    badges = {
        key: [b.get_text() for b in row["Variant"].find_all(class_="badge")]
        for key, row in rows.items()
    }
    # the fastest row is shown to lose accuracy, so the best is the openvino int8 row
    assert badges[("onnxruntime", "int8")] == ["fastest"]
    assert badges[("openvino", "int8")] == ["best"]
    assert rows[("torch", "fp32")]["Accuracy cost (mIoU)"].get_text() == "reference"


def test_paper_fps_is_only_beside_the_same_method(soup):
    for row in _rows(soup, "pp_liteseg_t"):
        assert row["Paper"].get_text() == "—"
    text = " ".join(soup.find(id="runtime-table").find_next("p").get_text().split())
    assert "273.6 FPS was timed as tensorrt fp32, engine only" in text


def test_settings_name_version_and_session(soup):
    settings = soup.find(id="runtime-table").find_all("tr", class_="settings-row")
    assert any("openvino 2026.4.1 · CPU · int8" in s.get_text() for s in settings)
    assert all("session s1" in s.get_text() for s in settings[:4])


def test_best_runtime_figure_is_drawn(soup):
    headings = [h.get_text() for h in soup.find_all("h3")]
    assert "Accuracy against latency at each model's best runtime" in headings
