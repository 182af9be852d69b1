"""Headless Chromium for tests: load a page, read back what its scripts measured, screenshot it."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

REQUIRE_ENV = "ANKI_GENAI_REQUIRE_BROWSER"
_FLAGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--allow-file-access-from-files",
]


def chromium_or_skip() -> str:
    """Return the Chromium executable; skip (or fail, where CI demands a browser) without one."""
    found = next(
        (
            p
            for name in ("chromium", "chromium-browser", "google-chrome")
            if (p := shutil.which(name))
        ),
        None,
    )
    if found is None:
        reason = "headless Chromium is not installed (apt-get install chromium)"
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{reason}, and {REQUIRE_ENV} is set")
        pytest.skip(reason)
    return found


# No host resolves and every request goes to a closed port: a page that needs the network
# shows what it looks like without it.
_OFFLINE = ["--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9"]


def run_page(
    page: Path,
    width: int,
    height: int = 900,
    screenshot: Path | None = None,
    offline: bool = False,
    wait_ms: int | None = None,
) -> str:
    """Load `page` at the given window size; return the DOM after its scripts ran (and, with
    `wait_ms`, after that much page time more, for scripts that finish after loading)."""
    browser = chromium_or_skip()
    with tempfile.TemporaryDirectory() as profile:
        command = [
            browser,
            *_FLAGS,
            *(_OFFLINE if offline else []),
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            *([f"--virtual-time-budget={wait_ms}"] if wait_ms else []),
        ]
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [*command, f"--screenshot={screenshot}", page.as_uri()],
                check=True,
                capture_output=True,
                timeout=120,
            )
        done = subprocess.run(
            [*command, "--dump-dom", page.as_uri()],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
    return done.stdout


def measured(dom: str, name: str) -> str:
    """Return the value a page's script stored in `data-NAME` on its body."""
    match = re.search(rf'data-{name}="([^"]*)"', dom)
    assert match, f"the page did not report {name}"
    return html.unescape(match.group(1))


def framed_page(pages: list[str], width: int) -> str:
    """Show each page in its own frame exactly `width` pixels wide, and measure overflow.

    Headless Chromium will not make a window narrower than 500 px, so a phone's 360 px
    viewport is given to each card by a frame of that width.
    """
    frames = "".join(
        f'<iframe srcdoc="{html.escape(page, quote=True)}"></iframe>' for page in pages
    )
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8">
<style>body {{ margin: 0 }} iframe {{ border: 0; width: {width}px; height: 880px;
display: block; border-bottom: 20px solid #888 }}</style>
</head><body>{frames}
<script>
window.addEventListener("load", () => {{
  const sizes = [...document.querySelectorAll("iframe")].map((frame) => {{
    const root = frame.contentDocument.documentElement;
    return {{ scrollWidth: root.scrollWidth, clientWidth: root.clientWidth }};
  }});
  document.body.dataset.overflow = JSON.stringify(sizes);
}});
</script></body></html>"""
