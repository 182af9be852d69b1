"""The preview page in a real browser, and the rebuild-on-save loop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.browser import measured, run_page
from tests.conftest import REFERENCE, REPO, run_cli


def _preview(project: Path) -> Path:
    result = run_cli("preview", project / "source", "-o", project / "build" / "preview.html")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"Wrote {project / 'build' / 'preview.html'}: 30 cards\n"
    return project / "build" / "preview.html"


def test_preview_is_a_self_contained_page_of_every_card(project: Path) -> None:
    """The preview holds every card's front and back, the note type CSS, and no outside links."""
    page = _preview(project).read_text(encoding="utf-8")
    assert page.count('<article class="preview-card"') == 30
    assert page.count('class="label">背面 Back') == 30
    assert ".nightMode .highlight" in page
    assert "http://" not in page.replace("http://www.w3.org", "")
    assert "<script src" not in page and "<link" not in page


def test_preview_images_are_embedded(tmp_path: Path) -> None:
    """Local images are embedded, so the page works when moved or sent."""
    source = tmp_path / "notes.md"
    (tmp_path / "a.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    source.write_text("**题目：** 图？\n\n**答案：** ![图](a.png)\n", encoding="utf-8")
    assert run_cli("preview", source, "-o", tmp_path / "p.html").exit_code == 0
    assert 'src="data:image/png;base64,' in (tmp_path / "p.html").read_text(encoding="utf-8")


def test_preview_night_mode_and_search_in_a_real_browser(project: Path) -> None:
    """In Chromium the page shows all 30 cards, switches to night mode and filters by search."""
    page = _preview(project)
    dom = run_page(page, 1280, screenshot=REPO / "build" / "screenshots" / "preview-light.png")
    assert measured(dom, "shown") == "30"

    night_page = page.with_name("preview-night.html")
    night_page.write_text(
        page.read_text(encoding="utf-8").replace(
            "const hash = new URLSearchParams(location.hash.slice(1));",
            'const hash = new URLSearchParams("night&q=医疗");',
        ),
        encoding="utf-8",
    )
    dom = run_page(
        night_page, 1280, screenshot=REPO / "build" / "screenshots" / "preview-night.png"
    )
    assert measured(dom, "night") == "true"
    assert 'class="nightMode night_mode"' in dom
    assert 0 < int(measured(dom, "shown")) < 30


def _read_until(stream: object, text: str, timeout: float) -> str:
    """Read lines from a child's stdout until one contains `text`."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = stream.readline()  # type: ignore[attr-defined]
        if not line:
            time.sleep(0.05)
            continue
        seen.append(line)
        if text in line:
            return line
    raise AssertionError(f"never saw {text!r}; got {seen!r}")


def test_watch_rebuilds_on_save_and_stops_cleanly_on_ctrl_c(project: Path) -> None:
    """`build --watch` rebuilds after a file is saved and exits 0 on Ctrl-C."""
    command = [sys.executable, "-m", "anki_genai", "build", project / "source"]
    command += ["-o", project / "build", "--watch"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        first = _read_until(child.stdout, "Wrote", 60)
        assert "30 new" in first
        time.sleep(0.5)  # let the watcher settle before the edit
        source = project / "source" / REFERENCE.name
        source.write_text(
            source.read_text(encoding="utf-8").replace("逼真的图像", "逼真的图片"), "utf-8"
        )
        second = _read_until(child.stdout, "Wrote", 60)
        assert "2 changed, 28 unchanged" in second  # the phrase is in two answers
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0
    assert "Stopped watching." in stderr
    assert "Traceback" not in stderr
