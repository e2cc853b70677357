"""The HTML report: built from synthetic records, parsed back and checked against them."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import statistics
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from bs4 import BeautifulSoup
from scipy import stats as scipy_stats

from architectures import model_meta
from bench.claims import Claim, ClaimTest
from bench.config import Expected, ProtocolSpec, SuiteSpec, VariantSpec
from bench.layout import SuiteLayout
from bench.results import (
    Cost,
    Curves,
    DatasetInfoRecord,
    Environment,
    FlopCount,
    Latency,
    Metrics,
    ParamCount,
    RunRecord,
    Training,
)
from reports import formatting as fmt
from reports.render import ReportEntry, render_report
from reports.summary import SeedStat, pareto_front
from reports.tables import expected_cell

CLASSES = ["road", "sky", "car", "tree"]
PALETTE = [(128, 64, 128), (70, 130, 180), (0, 0, 142), (107, 142, 35)]
XSS_VARIANT = "<script>alert(1)</script>"
NASTY_DESCRIPTION = 'uses <i>italics</i> & "quotes"'
OOM_ERROR = "RuntimeError: out of memory <allocating 2 GiB> & gave up"
SAMPLE_INDICES = (0, 1)
IMAGE_SHAPE = (48, 64)

# variant -> {seed: mIoU fraction, or a status for runs without a result}
OUTCOMES: dict[str, dict[int, float | str]] = {
    "pp_liteseg_t": {0: 0.60, 1: 0.62, 2: 0.64},
    "pp_liteseg_b": {0: 0.70, 1: 0.71, 2: "failed"},
    "liteseg_mobilenet": {0: 0.55},
    XSS_VARIANT: {0: 0.61, 1: 0.62, 2: 0.63},
    "fusion_add": {0: 0.50, 1: 0.51, 2: 0.52},
    "no_sppm": {0: 0.69},
    "never_ran": {0: "partial", 1: "missing"},
}
LATENCY_MS = {
    "pp_liteseg_t": 20.0,
    "pp_liteseg_b": 30.0,
    XSS_VARIANT: 21.0,
    "fusion_add": 18.0,
    "no_sppm": 28.0,
}
PARAMS = {"pp_liteseg_t": (8_141_600, 8_028_320), "pp_liteseg_b": (12_366_464, 12_234_752)}
# Each variant's per-round medians are its median times this pattern (its own per variant,
# so the paired log ratios vary from round to round).
ROUND_PATTERN = {
    "pp_liteseg_t": (1.0, 1.02, 0.98, 1.01, 0.99),
    XSS_VARIANT: (1.0, 0.99, 1.01, 1.0, 1.0),
}
DEFAULT_ROUND_PATTERN = (1.0, 1.01, 0.99, 1.0, 1.0)
# Claims judged in the sample report: one decided on mIoU, one on latency, one untestable.
CLAIMS = (
    Claim(
        id="test.attention-accuracy",
        paper="Test paper",
        source="Table 1",
        statement="attention fusion raises mIoU over add",
        metric="miou",
        paper_effect=0.45,
        paper_setting="test setting",
        tests=(ClaimTest(suite="report-test", better="pp_liteseg_t", than="fusion_add"),),
    ),
    Claim(
        id="test.channel-latency",
        paper="Test paper",
        source="Section 3",
        statement="spatial attention is faster than channel attention",
        metric="latency",
        paper_setting="not measured",
        tests=(ClaimTest(suite="report-test", better="pp_liteseg_t", than=XSS_VARIANT),),
    ),
    Claim(
        id="test.b-vs-sppm",
        paper="Test paper",
        source="Table 2",
        statement="SPPM raises mIoU",
        metric="miou",
        paper_effect=0.3,
        paper_setting="test setting",
        tests=(ClaimTest(suite="report-test", better="pp_liteseg_b", than="no_sppm"),),
    ),
)


def round_medians(variant: str) -> list[float]:
    pattern = ROUND_PATTERN.get(variant, DEFAULT_ROUND_PATTERN)
    return [LATENCY_MS[variant] * factor for factor in pattern]


def make_suite() -> SuiteSpec:
    """Three main models and two ablation groups, with paper numbers and expected results."""
    variants = [
        VariantSpec(
            name="pp_liteseg_t",
            model="pp_liteseg_t",
            paper="cityscapes-val-512x1024",
            expected=Expected(miou=60.0, tolerance=5.0),
        ),
        VariantSpec(
            name="pp_liteseg_b",
            model="pp_liteseg_b",
            paper="cityscapes-val-512x1024",
            expected=Expected(miou=80.0, tolerance=2.0),
        ),
        VariantSpec(name="liteseg_mobilenet", model="liteseg_mobilenet", seeds=(0,)),
        VariantSpec(
            name=XSS_VARIANT,
            model="pp_liteseg_t",
            overrides={"fusion": "channel"},
            group="fusion",
            reference="pp_liteseg_t",
            description=NASTY_DESCRIPTION,
        ),
        VariantSpec(
            name="fusion_add",
            model="pp_liteseg_t",
            overrides={"fusion": "add"},
            group="fusion",
            reference="pp_liteseg_t",
        ),
        VariantSpec(
            name="no_sppm",
            model="pp_liteseg_b",
            overrides={"sppm": False},
            seeds=(0,),
            group="sppm",
            reference="pp_liteseg_b",
        ),
        VariantSpec(
            name="never_ran",
            model="pp_liteseg_b",
            overrides={"decoder_channels": 96},
            seeds=(0, 1),
            group="sppm",
            reference="pp_liteseg_b",
        ),
    ]
    protocol = ProtocolSpec.model_validate({"data": {"dataset": "synthetic"}})
    return SuiteSpec(
        name="report-test",
        description="Synthetic suite for the report tests",
        seeds=(0, 1, 2),
        protocol_note="Short schedule & tiny images <for tests>",
        protocol=protocol,
        variants=tuple(variants),
    )


def make_cost(variant: str) -> Cost:
    """Params, two FLOP counters and one latency for a variant."""
    total, inference = PARAMS.get(variant, (4_000_000, 3_900_000))
    median = LATENCY_MS[variant]
    return Cost(
        params=ParamCount(total=total, trainable=total, inference=inference, per_module={}),
        flops=[
            FlopCount(
                counter="fvcore",
                convention="1 per multiply-add",
                input_size=(512, 1024),
                gflops=11.4,
                unsupported_ops={"aten::sigmoid": 3},
            ),
            FlopCount(
                counter="torch.utils.flop_counter",
                convention="2 per multiply-add",
                input_size=(512, 1024),
                gflops=22.8,
            ),
        ],
        latency=[
            Latency(
                device="cpu",
                device_name="Test CPU",
                runtime_version="2.15.0",
                precision="fp32",
                input_size=(512, 1024),
                batch=1,
                threads=2,
                warmup=3,
                repeats=10,
                session="one-session",  # all architectures timed side by side
                rounds=5,
                round_medians_ms=round_medians(variant),
                median_ms=median,
                iqr_ms=0.05 * median,
                fps=1000.0 / median,
            )
        ],
    )


def make_record(variant: VariantSpec, seed: int, outcome: float | str) -> RunRecord:
    """A done record with metrics (``outcome`` = mIoU) or a failed one without."""
    done = not isinstance(outcome, str)
    miou = outcome if done else None
    metrics = None
    if done:
        per_class = {"road": miou + 0.1, "sky": miou + 0.05, "car": miou - 0.15, "tree": None}
        metrics = Metrics(
            miou=miou,
            pixel_acc=miou + 0.2,
            macc=miou + 0.05,
            per_class_iou=per_class,
            per_class_recall=per_class,
            miou_paddleseg=miou * 3 / 4,  # "tree" counts as 0 among four classes
            absent_classes=["tree"],
            num_images=8,
        )
    steps = list(range(0, 100, 10))
    return RunRecord(
        suite="report-test",
        variant=variant.name,
        group=variant.group,
        reference=variant.reference,
        model=variant.model,
        overrides=dict(variant.overrides),
        seed=seed,
        run_id=run_id(variant.name, seed),
        config={},
        status="done" if done else "failed",
        error=None if done else OOM_ERROR,
        dataset=DatasetInfoRecord(
            name="synthetic",
            train_split="train",
            val_split="val",
            num_classes=len(CLASSES),
            ignore_index=255,
            class_names=CLASSES,
            palette=PALETTE,
        ),
        metrics=metrics,
        cost=make_cost(variant.name) if done and variant.name in LATENCY_MS else None,
        training=Training(
            iters=100,
            wall_time_s=42.0,
            images_per_s=10.0,
            final_loss=0.3,
            curves=Curves(
                step=steps,
                loss=[2.0 / (1 + s / 10) for s in steps],
                lr=[0.01] * len(steps),
                val_step=[50, 99] if done else [],
                val_miou=[miou / 2, miou] if done else [],
            ),
        ),
        environment=Environment(
            python="3.12.0",
            torch="2.15.0",
            torchvision="0.30.0",
            platform="Linux-test",
            device="cpu",
            device_name="Test CPU",
            threads=2,
            git_commit="abc123",
        ),
        predictions={i: f"predictions/val_{i}.png" for i in SAMPLE_INDICES} if done else {},
    )


def run_id(variant: str, seed: int) -> str:
    """A stable fake run id."""
    return hashlib.sha256(f"{variant}/{seed}".encode()).hexdigest()[:12]


def write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


def band_labels(rng: np.random.Generator, noise: float) -> np.ndarray:
    """One horizontal band per class, a fraction ``noise`` of pixels set to a random class."""
    labels = np.repeat(np.arange(len(CLASSES), dtype=np.uint8), IMAGE_SHAPE[0] // len(CLASSES))
    labels = np.repeat(labels[:, None], IMAGE_SHAPE[1], axis=1)
    flip = rng.random(IMAGE_SHAPE) < noise
    labels[flip] = rng.integers(0, len(CLASSES), int(flip.sum()), dtype=np.uint8)
    return labels


def write_images(suite_dir: Path, entries: list[ReportEntry]) -> None:
    """Sample images, labels (with ignore pixels) and each done run's predictions."""
    rng = np.random.default_rng(0)
    for index in SAMPLE_INDICES:
        label = band_labels(rng, noise=0.0)
        image = np.asarray(PALETTE, dtype=np.uint8)[label][..., ::-1]
        write_png(suite_dir / "samples" / f"{index}_image.png", image)
        label[:4] = 255
        write_png(suite_dir / "samples" / f"{index}_label.png", label)
    for entry in entries:
        if entry.record is None:
            continue
        for relative in entry.record.predictions.values():
            write_png(suite_dir / "runs" / entry.run_id / relative, band_labels(rng, noise=0.1))


def make_entries(suite: SuiteSpec) -> list[ReportEntry]:
    """One entry per (variant, seed) of :data:`OUTCOMES`."""
    entries = []
    for variant in suite.variants:
        for seed, outcome in OUTCOMES[variant.name].items():
            record = (
                None if outcome in ("partial", "missing") else make_record(variant, seed, outcome)
            )
            status = outcome if isinstance(outcome, str) else "done"
            entries.append(
                ReportEntry(run_id(variant.name, seed), variant.name, seed, status, record)
            )
    return entries


@dataclass(frozen=True)
class SampleReport:
    suite: SuiteSpec
    entries: list[ReportEntry]
    suite_dir: Path
    suite_file: Path
    html_path: Path


def build_sample_report(root: Path) -> SampleReport:
    """Write a synthetic suite's files under ``root`` and render its report."""
    suite = make_suite()
    entries = make_entries(suite)
    suite_dir = root / "outputs" / suite.name
    write_images(suite_dir, entries)
    suite_file = root / "report-test.toml"
    suite_file.write_text('name = "report-test"\n', encoding="utf-8")
    html_path = render_report(
        suite, entries, SuiteLayout(suite_dir), suite_file=suite_file, claims=CLAIMS
    )
    return SampleReport(suite, entries, suite_dir, suite_file, html_path)


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> SampleReport:
    return build_sample_report(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def soup(sample) -> BeautifulSoup:
    return BeautifulSoup(sample.html_path.read_text(encoding="utf-8"), "lxml")


def table_rows(table) -> list[dict[str, object]]:
    """Rows of an HTML table as {header: cell} (header row from <thead> or the first row)."""
    own_rows = [tr for tr in table.find_all("tr") if tr.find_parent("table") is table]
    headers = [th.get_text(strip=True) for th in own_rows[0].find_all("th", recursive=False)]
    rows = []
    for tr in own_rows[1:]:
        cells = tr.find_all(["td", "th"], recursive=False)
        rows.append(dict(zip(headers, cells, strict=True)))
    return rows


def main_table(soup) -> dict[str, dict]:
    """Rows of the main table by variant name."""
    rows = table_rows(soup.find(id="main-table"))
    return {first_line(row["Variant / model"]): row for row in rows}


def first_line(cell) -> str:
    """A cell's own text, without the ``.detail`` lines under it."""
    return "".join(cell.find_all(string=True, recursive=False)).strip()


def percents(variant: str) -> list[float]:
    return [100 * v for v in OUTCOMES[variant].values() if not isinstance(v, str)]


def expected_mean_ci(variant: str) -> str:
    """Mean ± half-width of the 95 % t-interval over seeds (scipy)."""
    values = percents(variant)
    if len(values) < 2:
        return f"{statistics.fmean(values):.1f} ± —"
    low, high = scipy_stats.ttest_1samp(values, 0.0).confidence_interval(0.95)
    return f"{statistics.fmean(values):.1f} ± {(high - low) / 2:.2f}"


def test_report_files_are_written(sample):
    report_dir = sample.suite_dir / "report"
    assert sample.html_path == report_dir / "report.html"
    assert {p.name for p in report_dir.iterdir()} == {"report.html", "results.csv", "results.json"}


def test_provenance_names_code_suite_and_versions(soup, sample):
    table = soup.find(id="provenance-table")
    values = {
        row.th.get_text(strip=True): row.td.get_text(" ", strip=True)
        for row in table.find_all("tr")
    }
    assert values["suite"].startswith("report-test")
    assert (
        values["suite file SHA-256"] == hashlib.sha256(sample.suite_file.read_bytes()).hexdigest()
    )
    assert re.fullmatch(
        r"([0-9a-f]{40}|unknown.*) uncommitted changes: (yes|no|unknown)",
        values["git commit (rendering checkout)"],
    )
    for package in (
        "python",
        "torch",
        "torchvision",
        "numpy",
        "albumentations",
        "fvcore",
        "liteseg-bench",
    ):
        assert values[package]
    assert "torch threads" in values["rendering machine"]
    environments = table_rows(soup.find(id="environments-table"))
    assert len(environments) == 1
    assert environments[0]["device"].get_text(" ", strip=True) == "cpu Test CPU"
    assert environments[0]["threads"].get_text(strip=True) == "2"
    done_or_failed = sum(e.record is not None for e in sample.entries)
    assert environments[0]["runs"].get_text(strip=True) == str(done_or_failed)


def test_main_table_has_main_variants_with_mean_and_interval_over_seeds(soup):
    rows = table_rows(soup.find(id="main-table"))
    assert [first_line(r["Variant / model"]) for r in rows] == [
        "pp_liteseg_t",
        "pp_liteseg_b",
        "liteseg_mobilenet",
    ]
    by_name = {first_line(r["Variant / model"]): r for r in rows}
    for name, row in by_name.items():
        assert first_line(row["mIoU (%) ± 95 % CI"]) == expected_mean_ci(name)
        n = len(percents(name))
        assert (
            row["mIoU (%) ± 95 % CI"].find(class_="detail").get_text()
            == f"n={n} seed{'s' if n > 1 else ''}"
        )
    assert first_line(by_name["liteseg_mobilenet"]["mIoU (%) ± 95 % CI"]).endswith("± —")
    pixel_acc = statistics.fmean(p + 20 for p in percents("pp_liteseg_t"))
    assert first_line(by_name["pp_liteseg_t"]["Pixel acc. (%) ± 95 % CI"]).startswith(
        f"{pixel_acc:.1f} ± "
    )


def test_main_table_cost_paper_and_expected_columns(soup):
    row = main_table(soup)["pp_liteseg_t"]
    assert first_line(row["Params"]) == "8.03 M"
    assert "total 8.14 M" in row["Params"].get_text()
    grid = [
        [c.get_text() for c in tr.find_all(["th", "td"])] for tr in row["GFLOPs"].find_all("tr")
    ]
    assert grid == [["", "fvcore, 1/MAC", "flop_counter, 2/MAC"], ["512×1024", "11.40", "22.80"]]
    latency = row["Latency / FPS"].get_text(" ", strip=True)
    assert latency.startswith("20.0 ms · 50.0 FPS")
    assert (
        "cpu (Test CPU) · torch 2.15.0 · eager · fp32 · end-to-end · 512×1024 · batch 1 · 2 threads"
        in latency
    )
    assert "one measurement, shared by 3 runs" in latency  # seeds share the cached profile
    paper = model_meta("pp_liteseg_t").result("cityscapes-val-512x1024")
    text = row["Paper"].get_text(" ", strip=True)
    assert text.startswith(f"{paper.miou:.1f} mIoU · {paper.fps:.1f} FPS at 512×1024")
    assert "Cityscapes val, 512×1024" in text
    assert paper.method in text and paper.hardware in text and paper.training in text
    delta = statistics.fmean(percents("pp_liteseg_t")) - paper.miou
    assert row["Δ paper (pp)"].get_text(strip=True) == f"{delta:+.1f}"
    assert row["Expected"].find(class_="badge").get_text() == "pass"
    assert row["Runs"].get_text(strip=True) == "3/3 done"


def test_how_the_papers_measured_comes_from_the_metadata(soup):
    items = [item.get_text(" ", strip=True) for item in soup.select("#paper-methods li")]
    paper = model_meta("pp_liteseg_t").result("cityscapes-val-512x1024")
    assert len(items) == 1  # T and B quote the same paper, measured the same way
    assert items[0].startswith("PP-LiteSeg (Peng et al.")
    assert f"{paper.speed_setup}; FPS at 512×1024." in items[0]


def test_main_table_marks_failed_seed_and_failed_expectation(soup):
    rows = main_table(soup)
    assert rows["pp_liteseg_b"]["Expected"].find(class_="badge").get_text() == "fail"
    assert rows["pp_liteseg_b"]["Runs"].get_text(strip=True) == "2/3 done · 1 failed"
    no_cost = rows["liteseg_mobilenet"]
    assert first_line(no_cost["Params"]) == "—"
    assert no_cost["GFLOPs"].get_text(strip=True) == "—"
    assert no_cost["Latency / FPS"].get_text(strip=True) == "—"


def ablation_rows(soup) -> dict[str, dict]:
    return {
        first_line(row["Variant"]): row
        for table in soup.find_all("table", class_="ablation-table")
        for row in table_rows(table)
    }


def test_ablation_tables_per_group(soup):
    groups = [h3.get_text() for h3 in soup.find(id="ablations").find_next_siblings("h3", limit=2)]
    assert groups == ["Group: fusion", "Group: sppm"]
    assert set(ablation_rows(soup)) == {XSS_VARIANT, "fusion_add", "no_sppm", "never_ran"}


def paired_interval(first: list[float], second: list[float]) -> tuple[float, float]:
    """The textbook paired t-interval (scipy), independent of bench.stats."""
    result = scipy_stats.ttest_rel(first, second).confidence_interval(0.95)
    return result.low, result.high


@pytest.mark.parametrize(
    ("variant", "reference", "verdict", "timing"),
    [
        # paired differences +1, 0, -1 pp; 21 vs 20 ms in every round (5 %, tight rounds)
        (XSS_VARIANT, "pp_liteseg_t", "inconclusive", "slower"),
        # paired differences -10, -11, -12 pp; 18 vs 20 ms
        ("fusion_add", "pp_liteseg_t", "lower", "faster"),
    ],
)
def test_ablation_effect_is_seed_paired_with_a_t_interval(
    soup, variant, reference, verdict, timing
):
    row = ablation_rows(soup)[variant]
    ours, ref = percents(variant), percents(reference)
    low, high = paired_interval(ours, ref)
    assert row["Reference"].get_text() == reference
    assert (
        first_line(row["ΔmIoU (pp) [95 % CI]"])
        == f"{statistics.fmean(ours) - statistics.fmean(ref):+.2f} pp"
    )
    assert f"[{low:+.2f}, {high:+.2f}] pp" in row["ΔmIoU (pp) [95 % CI]"].get_text()
    assert row["Verdict"].get_text().startswith(verdict)
    ref_ms, our_ms = LATENCY_MS[reference], LATENCY_MS[variant]
    assert row["Latency ref → variant"].get_text() == f"{ref_ms:.1f} ms → {our_ms:.1f} ms"
    logs = paired_interval(
        list(np.log(round_medians(variant))), list(np.log(round_medians(reference)))
    )
    expected = [100 * math.expm1(value) for value in logs]
    assert f"[{expected[0]:+.1f}, {expected[1]:+.1f}] %" in row["ΔLatency [95 % CI]"].get_text()
    assert row["ΔLatency [95 % CI]"].find(class_="badge").get_text() == timing


def test_ablation_with_one_seed_pair_has_no_interval(soup):
    row = ablation_rows(soup)["no_sppm"]
    assert first_line(row["ΔmIoU (pp) [95 % CI]"]) == f"{69.0 - 70.0:+.2f} pp"
    assert row["Verdict"].get_text() == "inconclusive: one pair, no interval"


def claim_rows(soup) -> dict[str, dict]:
    return {
        row["Claim"].find("code").get_text(): row
        for row in table_rows(soup.find(id="claims-table"))
    }


def test_claims_come_first_with_effect_interval_and_verdict(soup):
    assert soup.find("h2").get("id") == "claims"
    rows = claim_rows(soup)
    assert set(rows) == {claim.id for claim in CLAIMS}
    accuracy = rows["test.attention-accuracy"]
    low, high = paired_interval(percents("pp_liteseg_t"), percents("fusion_add"))
    assert f"[{low:+.2f}, {high:+.2f}] pp" in accuracy["Ours: effect [95 % CI]"].get_text()
    assert accuracy["Verdict"].get_text() == "supports"
    assert first_line(accuracy["Paper: effect and setting"]) == "+0.45 pp"
    latency = rows["test.channel-latency"]
    assert latency["Verdict"].get_text() == "supports"
    assert first_line(latency["Paper: effect and setting"]) == "not found"
    untestable = rows["test.b-vs-sppm"]
    assert untestable["Verdict"].get_text() == "inconclusive"
    assert "one has no interval" in untestable["To resolve"].get_text()


def test_ablation_without_result(soup):
    rows = ablation_rows(soup)
    assert rows["never_ran"]["Verdict"].get_text() == "no seed finished on both sides"
    assert rows["never_ran"]["Runs"].get_text(strip=True) == "0/2 done · 1 partial · 1 missing"


def test_comparison_rule_is_documented(soup):
    text = " ".join(soup.find(id="ablations").find_next("p").get_text(" ").split())
    assert "t-interval with n − 1 degrees of freedom" in text
    assert "bootstrap over val images" in text


def test_run_list_shows_every_entry_with_status_and_error(soup, sample):
    rows = table_rows(soup.find(id="runs-table"))
    assert len(rows) == len(sample.entries)
    listed = {(r["Run id"].get_text(), r["Status"].get_text()) for r in rows}
    assert listed == {(e.run_id, e.status) for e in sample.entries}
    failed = [r for r in rows if r["Status"].get_text() == "failed"]
    assert [r["Error"].get_text() for r in failed] == [OOM_ERROR]


def test_measurement_section_uses_record_values(soup):
    section = soup.find(id="measurement")
    text = " ".join(" ".join(section.find_all_next(string=True)).split())
    assert "8 images of the val split of synthetic" in text
    assert "tree :" in text or "tree:" in text
    assert "images are evaluated at full resolution, fp32" in text
    rows = table_rows(soup.find(id="convention-table"))
    first = rows[0]
    ours, theirs = (
        float(first["ours (zero union left out)"].get_text()),
        float(first["PaddleSeg (zero union = 0)"].get_text()),
    )
    assert theirs == pytest.approx(ours * 3 / 4, abs=0.1)
    assert "PaddleSeg" in text and "TensorRT FP32" in text
    assert "eager PyTorch" not in text  # the suite quotes no LiteSeg result
    flops = table_rows(soup.find(id="flops-table"))
    assert [r["Counter"].get_text() for r in flops] == ["fvcore", "torch.utils.flop_counter"]
    assert flops[0]["Operators skipped (count)"].get_text() == "aten::sigmoid ×3"
    latency = table_rows(soup.find(id="latency-table"))
    columns = ("Warm-up calls per round", "Timed calls", "Interleaved rounds")
    assert [tuple(r[c].get_text() for c in columns) for r in latency] == [("3", "10", "5")]


def png_images(soup) -> list[bytes]:
    data = []
    for img in soup.find_all("img"):
        prefix, _, payload = img["src"].partition(",")
        assert prefix == "data:image/png;base64"
        data.append(base64.b64decode(payload, validate=True))
    return data


def test_every_image_is_an_embedded_png(soup, sample):
    images = png_images(soup)
    main_variants = 3
    figures = 3
    assert len(images) == figures + len(SAMPLE_INDICES) * (2 + main_variants)
    for png in images:
        decoded = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and decoded is not None and decoded.size > 0


def test_qualitative_grid_has_image_ground_truth_and_each_main_model(soup):
    headers = [th.get_text() for th in soup.find(id="samples-table").thead.find_all("th")]
    assert headers == [
        "val #",
        "image",
        "ground truth",
        "pp_liteseg_t",
        "pp_liteseg_b",
        "liteseg_mobilenet",
    ]
    legend = [li.get_text(strip=True) for li in soup.select("ul.legend li")]
    assert legend == CLASSES


def test_no_external_resources_or_scripts(sample, soup):
    assert soup.find_all(["script", "link", "iframe", "object", "embed"]) == []
    for tag in soup.find_all(src=True) + soup.find_all(href=True):
        url = tag.get("src") or tag.get("href")
        assert not re.match(r"(https?:)?//", url)
    assert "url(" not in sample.html_path.read_text(encoding="utf-8")


def test_user_strings_are_escaped(sample, soup):
    html = sample.html_path.read_text(encoding="utf-8")
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert soup.find_all("i") == []
    assert first_line(soup.find("table", class_="ablation-table").find("td")) == XSS_VARIANT
    assert "ONNX -&gt; TensorRT" in html  # the papers' notes come from the metadata, escaped
    assert NASTY_DESCRIPTION in soup.find("table", class_="ablation-table").get_text()
    assert OOM_ERROR in soup.find(id="runs-table").get_text()


def test_results_csv_has_one_row_per_planned_run(sample):
    frame = pd.read_csv(sample.suite_dir / "report" / "results.csv")
    assert len(frame) == len(sample.entries)
    assert sorted(frame["status"]) == sorted(e.status for e in sample.entries)
    done = frame[frame["variant"] == "pp_liteseg_t"].sort_values("seed")
    assert done["miou"].tolist() == pytest.approx([0.60, 0.62, 0.64])
    assert done["iou[road]"].tolist() == pytest.approx([0.70, 0.72, 0.74])
    assert done["iou[tree]"].isna().all()
    assert frame.loc[frame["status"] == "failed", "error"].tolist() == [OOM_ERROR]


def test_results_json_holds_every_record(sample):
    items = json.loads((sample.suite_dir / "report" / "results.json").read_text(encoding="utf-8"))
    records = [RunRecord.model_validate(item) for item in items]
    assert {r.run_id for r in records} == {e.run_id for e in sample.entries if e.record is not None}


def render_subset(tmp_path: Path, keep) -> BeautifulSoup:
    suite = make_suite()
    entries = [e for e in make_entries(suite) if keep(e)]
    suite_file = tmp_path / "suite.toml"
    suite_file.write_text("", encoding="utf-8")
    path = render_report(suite, entries, SuiteLayout(tmp_path / "out"), suite_file=suite_file)
    pd.read_csv(path.parent / "results.csv")
    return BeautifulSoup(path.read_text(encoding="utf-8"), "lxml")


def test_renders_without_any_run(tmp_path):
    soup = render_subset(tmp_path, lambda entry: False)
    assert soup.find(id="runs-table") is None
    assert all(
        first_line(r["mIoU (%) ± 95 % CI"]) == "—" for r in table_rows(soup.find(id="main-table"))
    )
    assert soup.find_all("img") == []
    assert "Not drawn: no variant has both" in soup.get_text()


def test_renders_with_only_failed_runs(tmp_path):
    soup = render_subset(tmp_path, lambda entry: entry.status == "failed")
    rows = table_rows(soup.find(id="runs-table"))
    assert [r["Error"].get_text() for r in rows] == [OOM_ERROR]
    main = main_table(soup)
    assert main["pp_liteseg_b"]["Runs"].get_text(strip=True) == "0/1 done · 1 failed"
    assert main["pp_liteseg_t"]["Runs"].get_text(strip=True) == "no runs planned"


def test_renders_records_without_cost(tmp_path):
    soup = render_subset(tmp_path, lambda entry: entry.variant == "liteseg_mobilenet")
    assert "No run recorded a latency." in soup.get_text()
    row = main_table(soup)["liteseg_mobilenet"]
    assert first_line(row["mIoU (%) ± 95 % CI"]) == "55.0 ± —"


def test_missing_sample_files_show_as_not_available(tmp_path):
    sample = build_sample_report(tmp_path)
    (sample.suite_dir / "samples" / "1_image.png").unlink()
    prediction = next(e for e in sample.entries if e.variant == "liteseg_mobilenet")
    (sample.suite_dir / "runs" / prediction.run_id / "predictions" / "val_0.png").unlink()
    path = render_report(
        sample.suite, sample.entries, SuiteLayout(sample.suite_dir), suite_file=sample.suite_file
    )
    rows = table_rows(
        BeautifulSoup(path.read_text(encoding="utf-8"), "lxml").find(id="samples-table")
    )
    missing = [
        (row["val #"].get_text(), column)
        for row in rows
        for column, cell in row.items()
        if cell.get_text() == "not available"
    ]
    assert missing == [("0", "liteseg_mobilenet"), ("1", "image")]


def test_pareto_front_keeps_only_undominated_points():
    points = [(10.0, 60.0), (20.0, 70.0), (15.0, 55.0), (30.0, 70.0), (5.0, 40.0)]
    assert pareto_front(points) == [True, True, False, False, True]


@pytest.mark.parametrize(("mean", "verdict"), [(65.0, "pass"), (55.0, "pass"), (65.01, "fail")])
def test_expected_result_tolerance_is_inclusive(mean, verdict):
    cell = expected_cell(Expected(miou=60.0, tolerance=5.0), SeedStat(mean, None, 1))
    assert cell["verdict"] == verdict


@pytest.mark.parametrize(
    ("function", "value", "text"),
    [
        (fmt.millions, 8_028_320, "8.03 M"),
        (fmt.gflops, 4.314, "4.31"),
        (fmt.gflops, 103.09, "103.1"),
        (fmt.milliseconds, 3.456, "3.46 ms"),
        (fmt.milliseconds, 123.45, "123.5 ms"),
        (fmt.fps, 273.61, "273.6 FPS"),
        (fmt.mean_ci, SeedStat(67.84, None, 1), "67.8 ± —"),
        (fmt.mean_ci, SeedStat(67.84, 1.0, 2), "67.8 ± 8.98"),
        (fmt.mean_ci, None, "—"),
    ],
)
def test_number_formats(function, value, text):
    assert function(value) == text


def test_protocol_tables_compare_each_variant_with_its_recipe(tmp_path):
    from bench.config import load_suite
    from bench.plan import plan_suite
    from reports.render import entries_from_plan

    suite = load_suite("camvid-quick")
    layout = SuiteLayout(tmp_path / "camvid-quick")
    entries = entries_from_plan(plan_suite(suite, layout))
    path = render_report(suite, entries, layout, suite_file=tmp_path / "camvid-quick.toml")
    soup = BeautifulSoup(path.read_text(encoding="utf-8"), "lxml")
    tables = soup.find_all("table", class_="protocol-table")
    assert tables, "one table per recipe outcome"
    text = soup.find(id="protocol").find_next("div").get_text(" ", strip=True)
    rows = table_rows(tables[0])
    by_item = {row["Item"].get_text(strip=True): row for row in rows}
    iterations = by_item["training iterations"]
    assert iterations["Paper / official"].get_text().startswith("10000")
    assert iterations["Ours"].get_text(strip=True) == "180"
    assert "deviation" in iterations["Status"].get_text() and "CPU budget" in text
    assert "undeclared" not in soup.find(id="protocol").parent.get_text()
