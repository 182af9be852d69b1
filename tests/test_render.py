"""Markdown in, the sanitised HTML a card field holds out: the cases in fixtures/render.md.

Beside each case lies `img/cat.png` (the bytes `cat`); `img/dog.png` is missing.
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
    (root / "img").mkdir()
    (root / "img" / "cat.png").write_bytes(b"cat")
    env: dict[str, object] = {}
    tokens = RENDERER.md.parse(text, env)
    media, _ = resolve_images(tokens, root / "case.md", root)
    return RENDERER.render(tokens, env, {src: file.name for src, file in media.items()})


@pytest.mark.parametrize(("line", "title", "text", "expected"), CASES, ids=[c[1] for c in CASES])
def test_render(line: int, title: str, text: str, expected: str, tmp_path: Path) -> None:
    """A card field holds exactly this HTML for this Markdown."""
    assert _field(text, tmp_path) == expected.rstrip("\n")
