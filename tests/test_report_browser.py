"""The report opened in headless Chromium: tables render and every embedded image decodes."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_report import build_sample_report

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WINDOW_WIDTH = 1500

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
        reason=f"needs {CHROMIUM} and {CHROMEDRIVER} (apt install chromium chromium-driver)",
    ),
]


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    profile = tempfile.mkdtemp(prefix="liteseg-report-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        f"--user-data-dir={profile}",
        f"--window-size={WINDOW_WIDTH},1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def page(browser, tmp_path_factory):
    sample = build_sample_report(tmp_path_factory.mktemp("browser"))
    browser.get(sample.html_path.as_uri())
    return browser


def test_tables_render_with_their_headers(page):
    tables = page.execute_script(
        "return Array.from(document.querySelectorAll('table')).map(t => t.id || t.className)"
    )
    assert tables.count("ablation-table") == 2
    for table_id in ("provenance-table", "main-table", "runs-table", "samples-table"):
        assert table_id in tables
    headers = page.execute_script(
        "return Array.from(document.querySelectorAll('#main-table thead th'))"
        ".map(th => th.innerText)"
    )
    assert headers[:5] == [
        "Variant / model",
        "Params",
        "GFLOPs",
        "Latency / FPS",
        "mIoU (%) ± 95 % CI",
    ]
    widths = page.execute_script(
        "return Array.from(document.querySelectorAll('#main-table > tbody > tr'))"
        ".map(tr => tr.getBoundingClientRect().width)"
    )
    assert len(widths) == 3 and len(set(widths)) == 1


def test_claims_section_comes_first_with_visible_intervals_and_verdicts(page):
    first_section = page.execute_script("return document.querySelector('h2').id")
    assert first_section == "claims"
    rows = page.execute_script(
        "return Array.from(document.querySelectorAll('#claims-table tr.claim')).map(tr => ["
        "tr.dataset.verdict, tr.querySelector('.claim-interval').innerText,"
        "tr.querySelector('.claim-interval').getBoundingClientRect().height])"
    )
    assert [verdict for verdict, _, _ in rows] == ["supports", "supports", "inconclusive"]
    for verdict, interval, height in rows[:2]:
        assert interval.startswith("[") and height > 0, (verdict, interval)
    claims_top, provenance_top = page.execute_script(
        "return ['claims', 'provenance'].map(id => "
        "document.getElementById(id).getBoundingClientRect().top)"
    )
    assert claims_top < provenance_top


def test_a_cell_spanning_its_row_is_as_wide_as_the_row(page):
    """Settings lines under the runtime table's rows span all columns (no block-level cell)."""
    spans = page.execute_script(
        "return Array.from(document.querySelectorAll('td[colspan]')).map(td => "
        "[td.getBoundingClientRect().width, td.parentElement.getBoundingClientRect().width])"
    )
    assert spans, "the sample report has rows of settings"
    for cell, row in spans:
        assert abs(cell - row) <= 2, (cell, row)


def test_every_image_decoded(page):
    images = page.execute_script(
        "return Array.from(document.images).map(img => [img.alt, img.complete, img.naturalWidth])"
    )
    assert len(images) == 13
    broken = [alt for alt, complete, width in images if not (complete and width > 0)]
    assert broken == []


def test_no_injected_script_ran(page):
    assert page.execute_script("return document.scripts.length") == 0
    assert page.title == "liteseg-bench report: report-test"


def test_screenshot_is_a_nontrivial_png(page, tmp_path):
    path = tmp_path / "report.png"
    assert page.save_screenshot(str(path))
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[1] >= WINDOW_WIDTH - 20 and image.shape[0] > 500
    assert np.unique(image.reshape(-1, 3), axis=0).shape[0] > 50
