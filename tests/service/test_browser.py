"""The web page in a real headless Chromium (Debian's `chromium`, driven by Playwright; no
browser download): it loads from the service alone, compares two uploaded images and shows
the verdict the API gives, with the score on the scale; with a gallery, a probe's top-k
identities with their thumbnails."""

from __future__ import annotations

import shutil

import pytest
from conftest import extra

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    sync_api = extra("playwright.sync_api")
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} missing (apt-get install chromium; .ci/run installs it)") \
            if not _required() else pytest.fail(f"{CHROMIUM} missing")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _required() -> bool:
    import os

    return os.environ.get("SIAMESE_REQUIRE_EXTRAS") == "1"


def test_the_page_verifies_and_identifies(served, browser):
    server, _, root, _ = served
    page = browser.new_page()
    outside = []
    page.on("request", lambda r: outside.append(r.url)
            if not r.url.startswith(f"http://127.0.0.1:{server.port}/") and
            not r.url.startswith("blob:") else None)
    page.goto(f"http://127.0.0.1:{server.port}/")
    page.wait_for_selector("body[data-ready='1']")
    for a, b in (("class0/000.png", "class0/001.png"), ("class0/000.png", "class1/001.png")):
        api = server.call("POST", "/v1/verify", files={"left": (root / a).read_bytes(),
                                                       "right": (root / b).read_bytes()})[2]
        page.set_input_files("#left", str(root / a))
        page.set_input_files("#right", str(root / b))
        page.click("#verify-button")
        page.wait_for_function("document.getElementById('verdict').dataset.score !== undefined "
                               "&& !document.getElementById('verdict').textContent"
                               ".startsWith('comparing')")
        verdict = page.inner_text("#verdict")
        assert verdict.startswith("same" if api["same"] else "different"), verdict
        assert f"{api['score']:.4f}" in verdict and f"{api['threshold']:.4f}" in verdict
        assert page.is_visible("#scale") and page.is_visible("#scale-threshold")
        page.evaluate("delete document.getElementById('verdict').dataset.score")
    page.set_input_files("#probe", str(root / "class2/005.png"))
    page.click("#identify-button")
    page.wait_for_selector("#candidates li img")
    assert page.inner_text("#identity") == "class2"
    rows = page.locator("#candidates li")
    assert rows.count() == 4 and rows.first.inner_text().startswith("class2")
    page.wait_for_function("Array.from(document.querySelectorAll('#candidates img'))"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    assert not outside, outside  # nothing fetched from anywhere else
    page.close()
