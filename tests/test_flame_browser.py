"""The flamegraph SVG in real headless Chromium (Debian's `chromium`, driven by Playwright): hover, click to zoom,
search with its matched share, the state kept in the URL across a reload. `make test-browser` installs both and
runs these; a screenshot is kept in .artifacts/."""

from __future__ import annotations

import os

import pytest

from conftest import REPO
from test_render import memory_run, rendered

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    svg = tmp_path_factory.mktemp("flame") / "flame.svg"
    svg.write_text(rendered("flame", memory_run(threads=2)))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 260})
        page.goto(svg.as_uri())
        yield page
        browser.close()


def frame(page, name: str):
    return page.locator(f'g.f[data-n="{name}"]')


def width(page, name: str) -> float:
    return float(frame(page, name).locator("rect").get_attribute("width"))


def test_hovering_a_frame_outlines_it_and_carries_its_details(page):
    frame(page, "parse").hover()
    rect = frame(page, "parse").locator("rect")
    assert rect.evaluate("r => getComputedStyle(r).strokeWidth") == "0.5px"
    details = frame(page, "parse").locator("title").text_content()
    assert "total 6.00 ms (46.15% of the run), self 4.00 ms, 2 calls" in details


def test_clicking_zooms_and_the_url_keeps_it_across_a_reload(page):
    full, lex = width(page, "parse"), width(page, "lex")
    frame(page, "parse").click()
    assert width(page, "parse") == pytest.approx(1199.5)
    assert width(page, "lex") == pytest.approx(lex * 1200 / (full + 0.5), rel=0.01)  # children scale with it
    assert not frame(page, "worker").is_visible()  # another thread: outside the zoomed frame
    assert frame(page, "main").is_visible()  # its caller stays, drawn as an ancestor
    assert "zoom=" in page.url
    page.reload()
    assert width(page, "parse") == pytest.approx(1199.5) and not frame(page, "worker").is_visible()
    page.locator("#reset").click()
    assert width(page, "parse") == pytest.approx(full) and "zoom=" not in page.url


def test_search_highlights_matches_reports_their_share_and_survives_a_reload(page):
    page.once("dialog", lambda dialog: dialog.accept("^(lex|worker)$"))
    page.locator("#search").click()
    assert "match" in frame(page, "lex").get_attribute("class")
    assert "match" not in frame(page, "parse").get_attribute("class")
    # lex 2 ms and worker 3 ms of the run's 13 ms
    assert page.locator("#status").text_content().startswith("matched 38.46% (2 frames)")
    page.reload()
    assert "match" in frame(page, "worker").get_attribute("class")
    os.makedirs(os.path.join(REPO, ".artifacts"), exist_ok=True)
    page.screenshot(path=os.path.join(REPO, ".artifacts", "flame-search.png"))
    page.keyboard.press("Escape")
    assert page.locator("#status").text_content() == "" and "s=" not in page.url
