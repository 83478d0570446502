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
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(browser, tmp_path_factory):
    svg = tmp_path_factory.mktemp("flame") / "flame.svg"
    svg.write_text(rendered("flame", memory_run(threads=2)))
    page = browser.new_page(viewport={"width": 1200, "height": 260})
    page.goto(svg.as_uri())
    yield page
    page.close()


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


THREADS = """
    #include <pthread.h>
    #include <unistd.h>
    volatile long sink;
    __attribute__((noinline)) void leaf(int x) { for (int i = 0; i < x; i++) sink += i; }
    __attribute__((noinline)) void mid(int n) { for (int i = 0; i < n; i++) leaf(50 + i); }
    __attribute__((noinline)) void nap(void) { usleep(3000); }
    void *worker(void *arg) { for (int i = 0; i < 40; i++) mid(20); nap(); return arg; }
    int main(void) {
        pthread_t thread;
        pthread_create(&thread, 0, worker, 0);
        for (int i = 0; i < 100; i++) mid(10);
        nap();
        pthread_join(thread, 0);
        return 0;
    }
"""


@pytest.fixture(scope="module")
def chart_page(browser, tmp_path_factory):
    """The flamechart of a real traced run of a two-thread program."""
    from conftest import Project

    project = Project(str(tmp_path_factory.mktemp("chart")))
    project.write("prog.c", THREADS)
    assert project.cprof("profile", "--trace", "prog.c", "--", "-O2", "-pthread").returncode == 0
    drawn = project.cprof("flame", "--chart", "-o", "chart.svg")
    assert drawn.returncode == 0, drawn.stderr
    page = browser.new_page(viewport={"width": 1200, "height": 260})
    page.goto("file://" + os.path.join(project.root, "chart.svg"))
    yield page
    page.close()


def axis_labels(page) -> list[str]:
    return page.locator("#axis text").all_text_contents()


def test_the_chart_draws_a_time_axis_and_hovering_a_call_gives_when_and_how_long(chart_page):
    labels = axis_labels(chart_page)
    assert 5 <= len(labels) <= 60 and all(label.split()[-1] in ("s", "ms", "us", "ns") for label in labels)
    nap = chart_page.locator('g.f[data-n="nap"][data-l="0"]')
    nap.hover()
    details = nap.locator("title").text_content()
    assert details.startswith("nap  ") and " for 3." in details and " ms (as recorded" in details


def test_clicking_a_call_zooms_time_on_every_lane_and_the_url_keeps_it(chart_page):
    before = axis_labels(chart_page)
    nap = chart_page.locator('g.f[data-n="nap"][data-l="0"]')
    nap.click()
    assert float(nap.locator("rect").get_attribute("width")) == pytest.approx(1199.5)
    after = axis_labels(chart_page)
    assert after != before and any(label.endswith(" us") or label.endswith(" ms") for label in after)
    # the other thread's lane stays: whatever of it lies in the zoomed span is drawn
    assert chart_page.locator('g.f[data-l="1"]').count() > 0
    assert "zoom=" in chart_page.url
    chart_page.reload()
    assert float(nap.locator("rect").get_attribute("width")) == pytest.approx(1199.5)
    assert axis_labels(chart_page) == after
    chart_page.locator("#reset").click()
    assert axis_labels(chart_page) == before and "zoom=" not in chart_page.url


def test_search_in_the_chart_highlights_every_lane(chart_page):
    chart_page.once("dialog", lambda dialog: dialog.accept("^nap$"))
    chart_page.locator("#search").click()
    assert chart_page.locator("g.match").count() == 2
    assert chart_page.locator("#status").text_content().startswith("matched ")
    os.makedirs(os.path.join(REPO, ".artifacts"), exist_ok=True)
    chart_page.screenshot(path=os.path.join(REPO, ".artifacts", "chart-search.png"))
    chart_page.keyboard.press("Escape")


def test_pictures_of_the_real_drawings(browser, tmp_path):
    """The README's pictures: the bundled example's flamegraph, its flamechart (traced) and a differential
    flamegraph of two runs, as Chromium draws them. Kept in .artifacts/, and where CPROF_PICTURES names a folder
    (`make readme-pictures`: docs/images) there too."""
    import shutil

    from conftest import Project

    project = Project(str(tmp_path))
    example = os.path.join(REPO, "examples", "wordfreq")
    sources = [os.path.join(example, name) for name in ("wordfreq.c", "table.c")]
    assert project.cprof("profile", *sources, "--args", "20000", "--tag", "small").returncode == 0
    profiled = project.cprof("profile", "--trace", *sources, "--args", "60000", "--tag", "large")
    assert profiled.returncode == 0, profiled.stderr
    drawings = {"flame": ("flame", "large", "-o", "flame.svg"),
                "chart": ("flame", "--chart", "large", "-o", "chart.svg"),
                "flame-diff": ("flame", "--diff", "small", "large", "-o", "flame-diff.svg")}
    places = [os.path.join(REPO, ".artifacts")] + ([os.environ["CPROF_PICTURES"]] if "CPROF_PICTURES" in os.environ
                                                   else [])
    for name, command in drawings.items():
        drawn = project.cprof(*command)
        assert drawn.returncode == 0, drawn.stderr
        svg = os.path.join(project.root, command[-1])
        with open(svg) as handle:
            text = handle.read()
        assert 'data-n="table_add"' in text and 'data-n="make_word"' in text
        height = int(text.split('height="', 1)[1].split('"', 1)[0])
        page = browser.new_page(viewport={"width": 1200, "height": min(height, 900)})
        page.goto("file://" + svg)
        # a picture with a frame outlined, as a user sees it: the widest, since a chart's first call may be a
        # sliver a pointer cannot land on
        frames = frame(page, "table_add")
        widths = frames.evaluate_all("elements => elements.map(e => parseFloat(e.dataset.w))")
        frames.nth(widths.index(max(widths))).hover()
        picture = os.path.join(project.root, f"{name}.png")
        page.screenshot(path=picture)
        page.close()
        assert os.path.getsize(picture) > 10_000
        for place in places:
            os.makedirs(place, exist_ok=True)
            shutil.copy(picture, place)
