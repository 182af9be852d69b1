"""Cards look right everywhere: code, math, tables, images and safe HTML, as Anki stores them."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import zlib
from pathlib import Path

import pytest

from anki_genai.preview import card_page, card_sides
from tests.browser import framed_page, measured, run_page
from tests.conftest import FIXTURES, REPO, AnkiCollection, run_cli


def _png(rgb: tuple[int, int, int]) -> bytes:
    """Return a valid 2x2 PNG of one colour."""
    row = b"\x00" + bytes(rgb) * 2
    raw = zlib.compress(row * 2)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


@pytest.fixture
def rich(tmp_path: Path) -> Path:
    """A source tree with the rich fixture, two different images both named diagram.png."""
    source = tmp_path / "source"
    (source / "img").mkdir(parents=True)
    (source / "other" / "img").mkdir(parents=True)
    shutil.copy(FIXTURES / "rich.md", source / "rich.md")
    (source / "img" / "diagram.png").write_bytes(_png((255, 0, 0)))
    (source / "other" / "img" / "diagram.png").write_bytes(_png((0, 0, 255)))
    (tmp_path / "outside.png").write_bytes(_png((0, 255, 0)))
    return source


def _build(source: Path) -> tuple[Path, str]:
    package = source.parent / "build" / "rich.apkg"
    result = run_cli("build", source, "-o", package)
    assert result.exit_code == 0, result.output
    return package, result.stderr


def _fields(anki: AnkiCollection, question_start: str) -> dict[str, str]:
    (fields,) = [
        f
        for f in anki.notes().values()
        if re.sub(r"<[^>]+>", "", f["Question"]).startswith(question_start)
    ]
    return fields


def test_images_become_hashed_media_the_fields_refer_to(rich: Path, anki: AnkiCollection) -> None:
    """Local images land in Anki's media folder under content-hash names used by the fields."""
    package, _ = _build(rich)
    anki.import_package(package)
    answer = _fields(anki, "两张同名图片")["Answer"]
    names = re.findall(r'<img src="([^"]+)"', answer)
    red, blue = names[0], names[1]
    assert red != blue and names[2] == red
    media_folder = Path(anki.col.media.dir())
    assert (media_folder / red).read_bytes() == (rich / "img" / "diagram.png").read_bytes()
    assert (media_folder / blue).read_bytes() == (
        rich / "other" / "img" / "diagram.png"
    ).read_bytes()
    assert not red.startswith("_") and re.fullmatch(r"[0-9a-f]{20}\.png", red)
    assert '<a href="https://example.com/remote.png">远程</a>' in answer
    assert "outside.png" not in "".join(os.listdir(media_folder))


def test_image_problems_are_reported_with_file_and_line(rich: Path) -> None:
    """Missing, remote and escaping images are named with path:line and what to do."""
    _, stderr = _build(rich)
    lines = (rich / "rich.md").read_text(encoding="utf-8").splitlines()

    def line_of(text: str) -> int:
        return next(i for i, line in enumerate(lines, 1) if text in line)

    source = rich / "rich.md"
    assert f"{source}:{line_of('missing.png')}: warning: image img/missing.png not found" in stderr
    assert f"{source}:{line_of('remote.png')}: warning: remote image" in stderr
    assert (
        f"{source}:{line_of('outside.png')}: warning: image ../outside.png is outside the source"
        in stderr
    )


def test_edited_image_gets_a_new_name_and_reaches_anki(rich: Path, anki: AnkiCollection) -> None:
    """Changing an image's content renames it, so Anki takes the new picture."""
    package, _ = _build(rich)
    anki.import_package(package)
    before = _fields(anki, "两张同名图片")["Answer"]
    (rich / "img" / "diagram.png").write_bytes(_png((0, 128, 0)))
    package, _ = _build(rich)
    log = anki.import_package(package)
    after = _fields(anki, "两张同名图片")["Answer"]
    assert log.updated == 2 and before != after  # both notes that show this image
    new_name = re.findall(r'<img src="([^"]+)"', after)[0]
    assert (Path(anki.col.media.dir()) / new_name).read_bytes() == _png((0, 128, 0))


def test_no_script_survives_in_any_field(rich: Path, anki: AnkiCollection) -> None:
    """Scripts, event handlers, javascript: URLs, iframes and styles never reach a card."""
    package, _ = _build(rich)
    anki.import_package(package)
    everything = json.dumps(anki.notes(), ensure_ascii=False).lower()
    for forbidden in (
        "<script",
        "onerror",
        "onclick",
        "javascript:",
        "<iframe",
        "<style",
        "alert(",
    ):
        assert forbidden not in everything
    fields = _fields(anki, "哪些 HTML 可以留下")
    assert "<kbd>Ctrl</kbd>" in fields["Question"] and "H<sub>2</sub>O" in fields["Question"]
    assert "<details><summary>提示</summary>" in fields["Answer"]
    assert "<span>安全的文本</span><br>" in fields["Answer"]


def test_math_becomes_mathjax_with_the_tex_unchanged(rich: Path, anki: AnkiCollection) -> None:
    """`$…$` and `$$…$$` become \\(…\\) and \\[…\\], TeX byte for byte; prices stay text."""
    package, _ = _build(rich)
    anki.import_package(package)
    fields = _fields(anki, "写出")
    assert r"\(E = mc^2\)" in fields["Question"]
    assert r"\(\sum_{i=1}^{n} a_i * b_i\)" in fields["Question"]
    assert "价格 $5 and $10 不是公式" in fields["Question"]
    assert r"\(\{x \mid x &gt; 0\}\)" in fields["Answer"]
    assert r"\(50\%\)" in fields["Answer"] and r"\(|x|\)" in fields["Answer"]
    assert r"\[P(A|B) = \frac{P(B|A)P(A)}{P(B)}\]" in fields["Answer"]
    assert "<code>$HOME</code>" in _fields(anki, "下面的 Python")["Question"]


def test_code_is_highlighted_and_both_palettes_are_in_the_css(
    rich: Path, anki: AnkiCollection
) -> None:
    """Fenced code carries Pygments classes; the note type CSS has light and night colours."""
    package, _ = _build(rich)
    anki.import_package(package)
    fields = _fields(anki, "下面的 Python")
    assert (
        '<pre class="highlight"><code class="language-python"><span class="k">def</span>'
        in (fields["Question"])
    )
    assert '<code class="language-unknown-language">x &lt;- y &amp;&amp; z' in fields["Answer"]
    css = anki.note_type()["css"]
    assert ".highlight .k {" in css
    assert ".nightMode .highlight .k, .night_mode .highlight .k {" in css


def test_tables_lists_and_text_that_looks_like_tags(rich: Path, anki: AnkiCollection) -> None:
    """GFM tables, nested lists, strikethrough, quotes and links render; List<T> stays visible."""
    package, _ = _build(rich)
    anki.import_package(package)
    fields = _fields(anki, "比较 TCP 与 UDP")
    assert "List&lt;T&gt;" in fields["Question"]
    answer = fields["Answer"]
    assert "<table>" in answer and "<th>协议</th>" in answer
    assert answer.count("<ul>") == 3 and "<s>删除线</s>" in answer
    assert "<blockquote>" in answer and '<a href="https://www.rfc-editor.org/rfc/rfc793">' in answer


CARD_CASES = [(360, False), (360, True), (1280, False), (1280, True)]


@pytest.mark.parametrize(
    ("width", "night"), CARD_CASES, ids=["phone", "phone-night", "desktop", "desktop-night"]
)
def test_card_backs_fit_the_screen_in_a_real_browser(
    rich: Path, tmp_path: Path, anki: AnkiCollection, width: int, night: bool
) -> None:
    """No card's back, wide code and tables included, makes the page scroll sideways."""
    package, _ = _build(rich)
    anki.import_package(package)
    media = Path(anki.col.media.dir())
    backs = [card_sides(f)[1] for f in sorted(anki.notes().values(), key=lambda f: f["Source"])]
    # The page sits in the media folder's place, as cards do in Anki, so images resolve.
    base = f'<head><base href="{media.as_uri()}/">'
    cards = [card_page(back, night=night).replace("<head>", base) for back in backs]
    page = tmp_path / "cards.html"
    page.write_text(framed_page(cards, width), encoding="utf-8")
    mode = "night" if night else "light"
    shot = REPO / "build" / "screenshots" / f"cards-{width}-{mode}.png"

    dom = run_page(page, max(width, 500), height=900 * len(cards), screenshot=shot)

    sizes = json.loads(measured(dom, "overflow"))
    assert len(sizes) == len(cards) == 5
    for size in sizes:
        assert size["clientWidth"] == width
        assert size["scrollWidth"] <= width, size
    assert shot.stat().st_size > 0
