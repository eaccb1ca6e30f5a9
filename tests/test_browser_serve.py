"""End to end in a real browser: headless Chromium (Debian's, driven by Playwright) uses the page served by
``blipkit serve`` to caption, tag and ask about an uploaded image, and to search an index.

Needs /usr/bin/chromium (``scripts/install_browser.sh``) and the ``playwright`` package; skipped otherwise.
Set BLIPKIT_SCREENSHOT_DIR to keep the screenshots.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from test_serve_support import build_tiny_model, make_image, serving

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "images"
CHROMIUM = os.environ.get("BLIPKIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}"),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A server with a tiny model and an index of six images; yields (url, photo folder)."""
    pytest.importorskip("lancedb")
    from blipkit.index.builder import add_images, open_for

    root = tmp_path_factory.mktemp("browser")
    blip = build_tiny_model(root / "model")
    photos = root / "photos"
    photos.mkdir()
    # the repository's sample photos (so the screenshots show real pictures), topped up to six
    for sample in sorted(EXAMPLES.glob("*.jpg"))[:6]:
        shutil.copy(sample, photos / sample.name)
    for i in range(len(list(photos.iterdir())), 6):
        make_image(300 + i, (160, 120)).save(photos / f"photo{i}.jpg", quality=90)
    add_images(open_for(blip, str(root / "db"), create=True), blip, [str(photos)])
    with serving(blip, index=root / "db") as running:
        yield running.url, photos


@pytest.fixture()
def page(tmp_path: Path) -> Any:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1200, "height": 900},
        )
        problems: list[str] = []
        page = context.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.problems = problems  # type: ignore[attr-defined]
        try:
            yield page
        finally:
            context.close()


def keep_screenshot(page: Any, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    keep = os.environ.get("BLIPKIT_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / name)
    return path


def test_caption_tags_question_and_search_in_the_browser(site: Any, page: Any, tmp_path: Path) -> None:
    url, photos = site
    upload = sorted(photos.glob("*.jpg"))[2]
    files = [("images", (upload.name, upload.read_bytes(), "image/jpeg"))]
    expected = httpx.post(url + "/v1/caption", files=files, timeout=60).json()["results"][0]["caption"]

    page.goto(url + "/")
    page.wait_for_selector("#server-status:has-text('Model:')")
    assert "6 images" in page.inner_text("#server-status")

    # describe: upload through the (keyboard-reachable) file input
    page.focus("#file")
    assert page.evaluate("() => document.activeElement.id") == "file"
    page.set_input_files("#file", str(upload))
    page.wait_for_function("() => document.querySelector('#caption').textContent.includes('confidence')")
    caption_text = page.inner_text("#caption")
    assert caption_text.startswith(expected)
    assert page.get_attribute("#preview", "alt") == expected
    page.wait_for_function("() => document.querySelectorAll('#tags li').length > 0")
    assert 1 <= page.locator("#tags li").count() <= 8

    # ask, submitted with the Enter key
    page.fill("#question", "what is in the picture?")
    page.fill("#choices", "dog, cat")
    page.press("#question", "Enter")
    page.wait_for_selector("#answers li strong")
    assert page.inner_text("#answers li strong") in ("dog", "cat")

    # search: results are a grid of thumbnails whose alt text is the stored caption
    page.fill("#query", "a photo of a dog")
    page.press("#query", "Enter")
    page.wait_for_function("() => document.querySelectorAll('#results li').length > 0")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#results img')].every(i => i.complete && i.naturalWidth > 0)")
    cards = page.locator("#results li")
    assert cards.count() == 6
    alts = [cards.nth(i).locator("img").get_attribute("alt") for i in range(cards.count())]
    assert all(alt and alt != "Image without a caption" for alt in alts)
    assert "6 results" in page.inner_text("#search-status")
    for region in ("#caption", "#tags", "#answers", "#search-status"):
        assert page.get_attribute(region, "aria-live") == "polite"
    for field in ("file", "question", "choices", "query"):
        assert page.locator(f"label[for='{field}']").count() == 1

    shot = keep_screenshot(page, tmp_path, "blipkit-page.png")
    assert shot.stat().st_size > 10_000
    assert page.problems == []  # no script errors, no CSP violations


def test_page_asks_for_the_api_key(site: Any, page: Any, tmp_path: Path) -> None:
    from test_serve_support import serving as serve_again

    key = "browser-key-42"
    _, photos = site
    blip = build_tiny_model(photos.parent / "model")
    with serve_again(blip, api_key=key, index=photos.parent / "db") as running:
        page.goto(running.url + "/")
        page.wait_for_selector("#key-section:not([hidden])")
        page.fill("#api-key", key)
        page.press("#api-key", "Enter")
        page.wait_for_selector("#server-status:has-text('Model:')")
        assert page.is_hidden("#key-section")
        page.fill("#query", "dog")
        page.press("#query", "Enter")
        # thumbnails need the key too: the page fetches them with it and shows blobs
        page.wait_for_function(
            "() => document.querySelectorAll('#results img').length > 0 && [...document.querySelectorAll("
            "'#results img')].every(i => i.src.startsWith('blob:') && i.complete && i.naturalWidth > 0)")
        keep_screenshot(page, tmp_path, "blipkit-page-key.png")
    # the 401 of the first /v1/info call is logged by the browser as a failed resource load; nothing else
    assert all("401" in p for p in page.problems), page.problems
