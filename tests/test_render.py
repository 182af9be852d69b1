"""Markdown in, the sanitised HTML a card field holds out: the cases in fixtures/render.md.

Each case is `case.md` at the root of a source folder that holds `img/cat.png` (a PNG
signature and `cat`), `img/text.png` (text), `img/photo.png` (a JPEG), `img/clean.svg`,
`img/evil.svg` (with a script), `sound/ring.mp3` and `attachments/deep/pasted.png`;
`img/dog.png` is missing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from markdown_it.utils import read_fixture_file

from anki_genai.media import resolve_images
from anki_genai.parse import markdown_parser
from anki_genai.render import Renderer
from tests.conftest import FIXTURES

CASES = read_fixture_file(FIXTURES / "render.md")
RENDERER = Renderer(markdown_parser())


def _field(text: str, root: Path) -> str:
    """Render `text` as cards.make_cards renders a field: images resolved, then sanitised."""
    for folder in ("img", "sound", "attachments/deep"):
        (root / folder).mkdir(parents=True)
    (root / "img" / "cat.png").write_bytes(b"\x89PNG\r\n\x1a\ncat")
    (root / "img" / "text.png").write_text("not a picture", encoding="utf-8")
    (root / "img" / "photo.png").write_bytes(b"\xff\xd8\xff\xe0 a JPEG")
    (root / "img" / "clean.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    (root / "img" / "evil.svg").write_text("<svg><script>alert(1)</script></svg>")
    (root / "sound" / "ring.mp3").write_bytes(b"ID3 a ring")
    (root / "attachments" / "deep" / "pasted.png").write_bytes(b"\x89PNG\r\n\x1a\npasted")
    env: dict[str, object] = {}
    tokens = RENDERER.md.parse(text, env)
    media, _ = resolve_images(tokens, root / "case.md", root)
    return RENDERER.render(tokens, env, {src: file.name for src, file in media.items()})


@pytest.mark.parametrize(("line", "title", "text", "expected"), CASES, ids=[c[1] for c in CASES])
def test_render(line: int, title: str, text: str, expected: str, tmp_path: Path) -> None:
    """A card field holds exactly this HTML for this Markdown."""
    assert _field(text, tmp_path) == expected.rstrip("\n")
