"""Token slices -> the HTML that goes into a card's fields."""

from __future__ import annotations

import html
from collections.abc import Sequence

from markdown_it import MarkdownIt
from markdown_it.token import Token

from anki_genai.parse import markdown_parser


class Renderer:
    """Renders token slices of documents parsed by the shared parser.

    Built once per build: creating a parser and its rule chains per field costs more than
    rendering the field.
    """

    def __init__(self, md: MarkdownIt | None = None) -> None:
        self.md = md or markdown_parser()
        self.md.add_render_rule("html_block", _render_raw_html)
        self.md.add_render_rule("html_inline", _render_raw_html)

    def render(self, tokens: Sequence[Token], env: dict[str, object]) -> str:
        """Return the HTML of `tokens`, a slice of a document parsed with `env`.

        A lone paragraph is returned without its `<p>`, so a one-line question reads as plain
        text in Anki's browser and in the card.
        """
        if len(tokens) == 3 and tokens[0].type == "paragraph_open":
            tokens = tokens[1:2]
        return str(self.md.renderer.render(list(tokens), self.md.options, env)).strip()


def _render_raw_html(
    self: object, tokens: Sequence[Token], idx: int, options: object, env: object
) -> str:
    # Raw HTML is shown as text, never run: cards live in a web view that executes scripts.
    content = tokens[idx].content
    if content.lstrip().startswith("<!--"):
        return ""
    return html.escape(content, quote=False)
