"""The playground page end to end in headless Chromium: completion, fill-in-the-middle and chat tabs
stream into the page, on a server with an API key (the browser answers the Basic challenge).

Needs Debian's /usr/bin/chromium and the `playwright` package (never `playwright install`: it
downloads browsers); skips with the reason otherwise. Screenshots are written to pytest's tmp dir,
or to $CODELM_SCREENSHOT_DIR when set.
"""

import os
import shutil
from pathlib import Path

import httpx
import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
KEY = "browser-key"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
    )
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def greedy(url: str, body: dict, path: str = "/v1/completions") -> dict:
    r = httpx.post(url + path, json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]


def test_playground_streams_into_the_page(browser, server, tmp_path):
    url = server("llama", api_key=KEY).url
    context = browser.new_context(
        http_credentials={"username": "me", "password": KEY}, viewport={"width": 1200, "height": 800}
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    outside = []
    page.on("request", lambda r: None if r.url.startswith(url) else outside.append(r.url))
    page.goto(url + "/")
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    assert page.text_content("#model-name") == "llama"
    assert "context 1024 tokens" in page.text_content("#model-info")
    page.fill("#temperature", "0")
    page.fill("#max-tokens", "12")

    # completion tab
    page.fill("#prompt", "import os\n")
    page.click("#run-completion")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('done')", timeout=60_000)
    want = greedy(url, {"prompt": "import os\n", "max_tokens": 12, "temperature": 0, "top_p": 0.95})
    assert page.text_content("#completion-gen") == want["text"] != ""
    assert page.text_content("#completion-prompt") == "import os\n"

    # fill-in-the-middle tab
    page.click("[data-tab=fim]")
    page.fill("#prefix", "def add(a, b):\n    return ")
    page.fill("#suffix", "\n")
    page.click("#run-fim")
    page.wait_for_function("document.getElementById('fim-middle').textContent.length > 0", timeout=60_000)
    page.wait_for_function("document.getElementById('status').textContent.startsWith('done')", timeout=60_000)
    body = {
        "prompt": "def add(a, b):\n    return ",
        "suffix": "\n",
        "max_tokens": 12,
        "temperature": 0,
        "top_p": 0.95,
    }
    assert page.text_content("#fim-middle") == greedy(url, body)["text"]
    _screenshot(page, tmp_path, "playground-fim.png")

    # chat tab, two turns
    page.click("[data-tab=chat]")
    for turn, text in enumerate(["Reverse a string.", "Now in C."]):
        page.fill("#chat-input", text)
        page.click("#run-chat")
        page.wait_for_function(
            f"document.querySelectorAll('#chat-log .assistant').length === {turn + 1} && "
            "document.getElementById('status').textContent.startsWith('done')",
            timeout=60_000,
        )
    replies = page.locator("#chat-log .assistant .content").all_text_contents()
    messages = [{"role": "user", "content": "Reverse a string."}]
    first = greedy(
        url, {"messages": messages, "max_tokens": 12, "temperature": 0, "top_p": 0.95}, "/v1/chat/completions"
    )
    assert replies[0] == first["message"]["content"] and len(replies) == 2
    shot = _screenshot(page, tmp_path, "playground-chat.png")
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank image
    assert not errors, errors
    assert not outside, f"the page reached outside the server: {outside}"
    context.close()


def _screenshot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("CODELM_SCREENSHOT_DIR"):
        shutil.copy(path, Path(os.environ["CODELM_SCREENSHOT_DIR"]) / name)
    return path


def test_playground_shows_a_reasoning_models_thinking_apart(browser, own_engine, start_server):
    """A scripted reasoning reply: thinking in its own muted block, the answer alone in the content."""
    from codelm.models.tiny import script_tokens
    from codelm.serve.engine_client import LocalEngineClient

    engine = own_engine("llama")
    tok = engine.tokenizer
    script_tokens(engine.model, [*tok("<think>\nplan\n</think>\n\nx = 1")["input_ids"], tok.eos_token_id])
    url = start_server(LocalEngineClient(engine), "llama").url
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    page.goto(url + "/")
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    page.fill("#temperature", "0")
    page.fill("#max-tokens", "60")
    page.click("[data-tab=chat]")
    page.fill("#chat-input", "Set x.")
    page.click("#run-chat")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('done')", timeout=60_000)
    assert page.text_content("#chat-log .assistant .thinking") == "plan"
    assert page.text_content("#chat-log .assistant .content") == "x = 1"
    context.close()
