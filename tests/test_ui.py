"""The playground at ``/ui/``: static files served by the service, and round trips in a real headless Chromium.

The browser is Debian's ``/usr/bin/chromium`` (``make install-system``) driven by
Playwright. The screenshot lands in ``test-artifacts/playground.png``; with
``UPDATE_SCREENSHOT=1`` (``make screenshot``) it is also written to ``docs/playground.png``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from service.models_app import UI_DIR

from .conftest import OUT, ROOT, Server

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SENTENCE = "I liked this product at first. But the battery dies after an hour, the screen scratches easily and the support never answered my emails."
SOURCE = "A man in a blue shirt is riding a bike."


def test_static_files_are_served(server: Server) -> None:
    r = httpx.get(f"{server.url}/ui/", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "<title>LSTM playground</title>" in r.text
    r = httpx.get(f"{server.url}/ui", timeout=10)
    assert r.status_code == 307 and r.headers["location"].endswith("/ui/")
    for name, ctype in (("app.js", "javascript"), ("style.css", "text/css")):
        r = httpx.get(f"{server.url}/ui/{name}", timeout=10)
        assert r.status_code == 200 and ctype in r.headers["content-type"]
        assert r.text == (UI_DIR / name).read_text()
    assert httpx.get(f"{server.url}/ui/missing.js", timeout=10).status_code == 404
    assert httpx.get(f"{server.url}/models", timeout=10).status_code == 200  # the mount at / still serves its own route


def test_nothing_is_loaded_from_the_internet() -> None:
    for path in UI_DIR.iterdir():
        text = path.read_text()
        # The only absolute URL is the SVG namespace, an identifier that is never fetched.
        assert re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"')]*", text.replace("http://www.w3.org/2000/svg", "")) == [], path.name
        assert re.findall(r"""(?:src|href|url)\s*[=(]\s*["']?(?:[a-z][\w+.-]*:|//)""", text) == [], path.name  # relative links only


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert shutil.which(CHROMIUM), f"{CHROMIUM} not found: `make install-system` installs Debian's chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, device_scale_factor=1)
    page = context.new_page()
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{server.url}/ui/")
    yield page
    context.close()
    assert errors == []
    assert [u for u in requests if not u.startswith(server.url + "/")] == []  # same origin only


def test_sentiment_round_trip_renders_heat_and_trajectory(page: Page, server: Server) -> None:
    expected = httpx.post(f"{server.url}/sentiment", json={"texts": [SENTENCE], "explain": True}, timeout=30).json()[0]
    expl = expected["explanation"]
    n = len(expl["tokens"])
    page.fill("#sentiment-text", SENTENCE)
    page.click("#sentiment-run")
    page.wait_for_selector("#sentiment-result[data-state=done]", timeout=30_000)
    assert page.inner_text("#sentiment-label") == expected["label"]
    assert page.locator("#tokens .tok").all_inner_texts() == expl["tokens"]
    assert page.locator("#trajectory svg circle.dot").count() == n
    assert page.locator("#trajectory svg path.line").get_attribute("d").count("L") == n - 1  # type: ignore[union-attr]
    assert page.locator("#sentiment-table tbody tr").count() == n
    # The most influential token gets the strongest colour; its tooltip carries the exact number.
    top = max(range(n), key=lambda i: abs(expl["occlusion"][i]))
    title = page.locator("#tokens .tok").nth(top).get_attribute("title") or ""
    assert f"occlusion {expl['occlusion'][top]:+.3f}" in title

    # Keyboard: Ctrl+Enter in the text box runs it again.
    page.fill("#sentiment-text", "a gorgeous, witty, seductive movie.")
    page.focus("#sentiment-text")
    page.keyboard.press("Control+Enter")
    page.wait_for_function("document.querySelectorAll('#tokens .tok').length === 8", timeout=30_000)
    assert page.inner_text("#sentiment-label") == "positive"


def test_translation_round_trip_renders_the_attention_heatmap(page: Page, server: Server) -> None:
    body = {"texts": [SOURCE], "target": "de", "beam_size": 4, "alignment": True}
    expected = httpx.post(f"{server.url}/translate", json=body, timeout=30).json()[0]
    al = expected["alignment"]
    page.fill("#translate-text", SOURCE)
    page.select_option("#target", "de")
    page.focus("#translate-text")
    page.keyboard.press("Enter")
    page.wait_for_selector("#translate-result[data-state=done]", timeout=30_000)
    assert page.inner_text("#translation") == expected["translation"]
    cells = page.locator("#heatmap svg rect.cell")
    assert cells.count() == len(al["target_tokens"]) * len(al["source_tokens"])
    assert [o["value"] for o in page.eval_on_selector_all("#target option", "os => os.map(o => ({value: o.value}))")] == ["de", "fr"]


def test_playground_screenshot(page: Page, server: Server) -> None:
    """Both panels filled in and the live stats, saved as a test artifact (and as docs/playground.png on request)."""
    page.click("#sentiment-run")
    page.wait_for_selector("#sentiment-result[data-state=done]", timeout=30_000)
    page.click("#translate-run")
    page.wait_for_selector("#translate-result[data-state=done]", timeout=30_000)
    # The stats panel polls /metrics every 2 s; wait until it has counted this page's requests and measured a rate.
    count = "Number(document.getElementById('stat-{}-requests').textContent.replace(/,/g, ''))"
    page.wait_for_function(f"{count.format('sentiment')} >= 1 && {count.format('translate')} >= 1", timeout=15_000)
    page.wait_for_function("document.getElementById('stat-rate').textContent !== '–'", timeout=15_000)
    assert page.get_attribute("#stats", "data-state") == "live"
    assert re.fullmatch(r"[\d.]+ ms · [\d.]+ texts", page.inner_text("#stat-translate-batch"))
    OUT.mkdir(exist_ok=True)
    shot = OUT / "playground.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        shutil.copy(shot, ROOT / "docs" / "playground.png")
    assert Path(shot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
