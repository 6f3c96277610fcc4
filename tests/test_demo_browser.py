"""The demo page in a real browser (Debian's Chromium through Playwright), as a person uses it.

Protects: a photo uploaded on the page is classified and every variant that runs gets a row;
the variants that cannot run are listed with their reason; a bad upload shows its reason in
an error toast. Saves ``artifacts/demo_screenshot.png``.

Needs ``/usr/bin/chromium`` (``apt-get install -y chromium``) and the ``playwright`` Python
package; no browser is downloaded. Without either the test fails: it must not pass silently.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from demo.runtimes import demo_variants

pytest_plugins = ["demo_fixtures"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOT = Path(__file__).resolve().parents[1] / "artifacts" / "demo_screenshot.png"
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's Chromium with "
            "`apt-get update && apt-get install -y chromium` (no Playwright browser download)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright Python package is missing: pip install playwright")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def photo_and_rows(demo_server, cls: str) -> tuple[Path, list[tuple[str, str, str]]]:
    """A held-out photo of ``cls`` the model gets right, and (runtime, folded, device) of every
    variant the server runs, both asked through the server's API."""
    from demo_fixtures import local_client
    from gradio_client import handle_file

    client = local_client(demo_server.url)
    for photo_cls, photo in demo_server.artifacts.test_photos():
        if photo_cls != cls:
            continue
        label, table, _, _ = client.predict(handle_file(str(photo)), 1, api_name="/classify")
        if label["label"] == cls:
            return photo, [(r[0], r[1], r[2].split(" ")[0]) for r in table["data"]]
    raise AssertionError(f"the model gets no held-out photo of class {cls} right")


def test_a_photo_uploaded_on_the_page_gets_a_row_per_variant(browser, demo_server, tmp_path):
    from playwright.sync_api import expect

    cls = "100"
    photo, rows = photo_and_rows(demo_server, cls)
    assert {(b, f) for b, f, d in rows if d == "CPU"} == {
        ("PyTorch eager", "no"),
        ("PyTorch eager", "yes"),
        ("ONNX Runtime", "no"),
        ("ONNX Runtime", "yes"),
        ("ONNX Runtime", "yes, int8"),
    }
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if "127.0.0.1" not in r.url else None)
    page.goto(demo_server.url, wait_until="networkidle")

    page.locator("#photo input[type=file]").set_input_files(str(photo))
    page.locator("#classify-btn").click()
    table_rows = page.locator("#variants-table [role=row]")
    expect(table_rows).to_have_count(1 + len(rows))  # the header, then one row per variant
    shown = set()
    for i in range(1, 1 + len(rows)):
        cells = table_rows.nth(i).locator("[role=gridcell]").all_inner_texts()
        shown.add((cells[0].strip(), cells[1].strip(), cells[2].strip().split(" ")[0]))
        assert cells[3].strip() == cls, cells
    assert shown == set(rows)
    expect(page.locator("#prediction [data-testid=label-output-value]")).to_have_text(cls)
    unavailable = page.locator("#unavailable").inner_text()
    total = len(demo_variants())
    if len(rows) < total:
        assert f"({total - len(rows)} of {total})" in unavailable
    page.wait_for_timeout(500)  # let the bar chart finish drawing before the picture
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    bad = tmp_path / "broken.jpg"
    bad.write_bytes(photo.read_bytes()[:2000])
    page.locator("#photo input[type=file]").set_input_files(str(bad))
    page.locator("#classify-btn").click()
    expect(page.get_by_text("corrupt or truncated").first).to_be_visible()

    assert not errors, errors
    assert not outside, f"the page fetched from outside this machine: {outside}"
    page.close()
