"""The preview page in a real browser, and the rebuild-on-save loop."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import webbrowser
from pathlib import Path
from typing import IO

import pytest

from anki_genai.lock import build_lock, lock_path
from anki_genai.preview import typeset_math
from tests.browser import measured, run_page
from tests.conftest import REFERENCE, REPO, build_project, run_cli


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


def test_preview_after_a_build_shows_the_same_cards(project: Path) -> None:
    """After a build, preview takes the cards from the build's cache (their HTML included);
    the page is the one made from the sources alone."""
    from_sources = _preview(project).read_text(encoding="utf-8")
    assert build_project(project).exit_code == 0
    assert _preview(project).read_text(encoding="utf-8") == from_sources


def test_preview_open_without_a_browser_says_where_the_page_is(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`preview --open` where no browser can be started still writes the page, and says
    where it is rather than nothing."""
    monkeypatch.setattr(webbrowser, "open", lambda url: False)  # as on a server
    output = project / "build" / "preview.html"
    result = run_cli("preview", project / "source", "-o", output, "--open")
    assert result.exit_code == 0, result.output
    assert result.stderr == f"No web browser to open it in; open {output.resolve()} yourself.\n"
    assert output.is_file()


def test_preview_leaves_math_in_code_as_written() -> None:
    """Like Anki's MathJax, the preview typesets \\(…\\) in text but not inside code."""
    side = r"<p>\(x^2\)</p><code>\(y\)</code><pre><code>\[z\]</code></pre>"
    shown = typeset_math(side)
    assert shown.startswith('<p><math xmlns="http://www.w3.org/1998/Math/MathML" display="inline">')
    assert shown.endswith(r"</p><code>\(y\)</code><pre><code>\[z\]</code></pre>")


class _Output:
    """A child's output stream, read by a thread: waiting for a line times out, never hangs."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put(None)  # the end

    def until(self, text: str, timeout: float = 60) -> str:
        """The next line holding `text`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                raise AssertionError(f"never saw {text!r}; got {self.seen!r}")
            self.seen.append(line)
            if text in line:
                return line

    def rest(self, timeout: float = 30) -> str:
        """Everything up to the end of the stream."""
        with contextlib.suppress(AssertionError):
            self.until("\0never printed\0", timeout)
        return "".join(self.seen)


def _watch(project: Path) -> tuple[subprocess.Popen[str], _Output, _Output]:
    command = [sys.executable, "-m", "anki_genai", "build", project / "source"]
    command += ["-o", project / "build", "--watch"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert child.stdout is not None and child.stderr is not None
    return child, _Output(child.stdout), _Output(child.stderr)


def _stop(child: subprocess.Popen[str], stdout: _Output, stderr: _Output) -> str:
    """Ctrl-C the watching child; return all it wrote to stderr."""
    child.send_signal(signal.SIGINT)
    try:
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        stdout.rest()
        errors = stderr.rest()
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
    return errors


def test_watch_rebuilds_on_save_and_stops_cleanly_on_ctrl_c(project: Path) -> None:
    """`build --watch` rebuilds after a file is saved and exits 0 on Ctrl-C."""
    child, stdout, stderr = _watch(project)
    try:
        first = stdout.until("Wrote")
        assert "30 new" in first
        time.sleep(0.5)  # let the watcher settle before the edit
        source = project / "source" / REFERENCE.name
        source.write_text(
            source.read_text(encoding="utf-8").replace("逼真的图像", "逼真的图片"), "utf-8"
        )
        second = stdout.until("Wrote")
        assert "2 changed, 28 unchanged" in second  # the phrase is in two answers
    finally:
        errors = _stop(child, stdout, stderr)
    assert child.returncode == 0
    assert "Stopped watching." in errors and "KeyboardInterrupt" not in errors
    assert "Traceback" not in errors


def test_watch_follows_edits_to_the_settings_file(project: Path) -> None:
    """While watching, a broken anki-genai.toml is reported and watching goes on; once it is
    fixed, the next build uses the new settings."""
    settings = project / "source" / "anki-genai.toml"
    child, stdout, stderr = _watch(project)
    try:
        stdout.until("Wrote")
        time.sleep(0.5)  # let the watcher settle before the edit
        settings.write_text('colour = "blue"\n', encoding="utf-8")
        error = stderr.until("unknown setting 'colour'")
        assert error.startswith(f"Error: {settings}")
        settings.write_text('deck = "复习"\n', encoding="utf-8")
        rebuilt = stdout.until("Wrote")
        assert f"{project / 'build' / '复习.apkg'}: 1 file, 30 notes" in rebuilt
    finally:
        errors = _stop(child, stdout, stderr)
    assert child.returncode == 0
    assert "Traceback" not in errors


def test_ctrl_c_during_a_watch_rebuild_stops_cleanly(project: Path) -> None:
    """Ctrl-C while a rebuild is under way (here: waiting for another build's lock) stops
    watching as cleanly as Ctrl-C between builds, and leaves the last package as it was."""
    child, stdout, stderr = _watch(project)
    lock = lock_path(project / "source")
    try:
        stdout.until("Wrote")
        (package,) = (project / "build").glob("*.apkg")
        before = package.read_bytes()
        time.sleep(0.5)  # let the watcher settle before the edit
        with build_lock(lock, timeout=5):  # another build is running
            source = project / "source" / REFERENCE.name
            source.write_text(source.read_text(encoding="utf-8") + "\n", "utf-8")
            stderr.until("waiting")
            child.send_signal(signal.SIGINT)
            child.wait(timeout=30)
    finally:
        errors = _stop(child, stdout, stderr)  # no second Ctrl-C if it has already ended
    assert child.returncode == 0, errors
    assert "Stopped watching." in errors and "KeyboardInterrupt" not in errors
    assert "Aborted!" not in errors and "Traceback" not in errors
    assert package.read_bytes() == before
