"""Token slices -> the sanitised HTML that goes into a card's fields.

Cards run in a web view that executes JavaScript (on phones too), so every field passes an
allowlist sanitiser (nh3), and the TeX that Anki's MathJax will typeset loses the commands
that could make links (`tex`). Code is highlighted here, at build time, into CSS classes
whose colours live in the note type's CSS: nothing is fetched or run at review time. Images
and sounds that do not ship (`media`) leave their text, never a path.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

from anki_genai.apkg.notetype import HIGHLIGHT_CLASS
from anki_genai.embeds import (
    EMBED,
    SOUND,
    WIKILINK,
    defuse_media_tags,
    is_image,
    link_text,
    media_key,
)
from anki_genai.parse import markdown_parser
from anki_genai.tex import defuse_field, defuse_math

_ALLOWED_TAGS = set(nh3.ALLOWED_TAGS)
_ALLOWED_ATTRIBUTES = {
    "*": {"class", "title"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"style"},
    "th": {"style"},
    "ol": {"start"},
    "details": {"open"},
}
# Raw HTML whose first tag is a real HTML element goes to the sanitiser, which keeps or drops
# it; anything else (`List<T>`, `Map<K, V>`) is text that merely looks like a tag.
_HTML_ELEMENTS = _ALLOWED_TAGS | {
    "applet", "audio", "base", "body", "button", "canvas", "embed", "form", "frame",
    "frameset", "head", "html", "iframe", "input", "link", "math", "meta", "noscript",
    "object", "option", "script", "select", "source", "style", "svg", "template",
    "textarea", "title", "video",
}  # fmt: skip
_FIRST_TAG = re.compile(r"\s*</?([A-Za-z][A-Za-z0-9-]*)")
_REMOTE = re.compile(r"^https?://", re.IGNORECASE)
_MEDIA = "anki_genai_media"  # the env key that hands the render rules the media names
_DIMENSIONS = re.compile(r"\s*(\d+)(?:\s*x\s*(\d+))?\s*")


class Renderer:
    """Renders token slices of documents parsed by the shared parser.

    Built once per build: creating a parser and its rule chains per field costs more than
    rendering the field.
    """

    def __init__(self, md: MarkdownIt | None = None) -> None:
        self.md = md or markdown_parser()
        self.md.options["highlight"] = _highlight_code
        self.md.add_render_rule("html_block", _render_raw_html)
        self.md.add_render_rule("html_inline", _render_raw_html)
        self.md.add_render_rule("math_inline", _render_math_inline)
        self.md.add_render_rule("math_inline_double", _render_math_block)
        self.md.add_render_rule("math_block", _render_math_block)
        self.md.add_render_rule("math_block_label", _render_math_block)
        self.md.add_render_rule("image", _render_image)
        self.md.add_render_rule(EMBED, _render_embed)
        self.md.add_render_rule(WIKILINK, _render_wikilink)
        self.md.add_render_rule(SOUND, _render_sound)

    def render(
        self,
        tokens: Sequence[Token],
        env: dict[str, object],
        media: Mapping[str, str] | None = None,
    ) -> str:
        """Return the sanitised HTML of `tokens`, a slice of a document parsed with `env`.

        `media` maps images and sounds, by `embeds.media_key`, to their names in the
        package; one not in it is shown as its text. A lone paragraph is returned without
        its `<p>`, so a one-line question reads as plain text in Anki's browser and in the card.
        """
        if len(tokens) == 3 and tokens[0].type == "paragraph_open":
            tokens = tokens[1:2]
        media = media or {}
        render_env = {**env, _MEDIA: media}
        raw = str(self.md.renderer.render(list(tokens), self.md.options, render_env)).strip()
        return sanitize(raw, media)


def sanitize(raw_html: str, media: Mapping[str, str]) -> str:
    """Keep only harmless tags and attributes; point local images at their media names,
    and leave no link in math and no `[sound:…]` for a file that does not ship."""
    return defuse_media_tags(defuse_field(_sanitizer().clean(raw_html, media)), media)


class _Sanitizer:
    """nh3 cleaners made once: passing the options to every nh3.clean call took as long as
    the cleaning itself."""

    def __init__(self) -> None:
        options: dict[str, Any] = {
            "tags": _ALLOWED_TAGS,
            "attributes": _ALLOWED_ATTRIBUTES,
            "url_schemes": {"http", "https", "mailto"},
            "filter_style_properties": {"text-align"},
            "link_rel": None,
        }
        self._plain = nh3.Cleaner(**options)
        # Only fields with images need their attributes rewritten, by a Python callback.
        self._with_media = nh3.Cleaner(attribute_filter=self._rewrite, **options)
        self._media: Mapping[str, str] = {}
        self._shipped: set[str] = set()

    def clean(self, raw_html: str, media: Mapping[str, str]) -> str:
        if "<img" not in raw_html:
            return str(self._plain.clean(raw_html))
        self._media = media
        self._shipped = set(media.values())
        try:
            return str(self._with_media.clean(raw_html))
        finally:
            self._media, self._shipped = {}, set()

    def _rewrite(self, tag: str, attribute: str, value: str) -> str | None:
        if tag != "img" or attribute != "src":
            return value
        if value in self._media:
            return self._media[value]
        if value in self._shipped or _REMOTE.match(value):
            return value
        return None  # not shipped: no path to a file that is not there (the alt text stays)


@lru_cache(maxsize=1)
def _sanitizer() -> _Sanitizer:
    return _Sanitizer()


@lru_cache(maxsize=256)
def _lexer(language: str) -> Lexer | None:
    try:
        return get_lexer_by_name(language)
    except ClassNotFound:
        return None


_FORMATTER = HtmlFormatter(nowrap=True)


def _highlight_code(code: str, language: str, attributes: str) -> str:
    lexer = _lexer(language.lower()) if language else None
    if lexer is None:
        return ""  # markdown-it then escapes the code as plain text
    body = highlight(code, lexer, _FORMATTER)
    language_class = html.escape(language, quote=True)
    return (
        f'<pre class="{HIGHLIGHT_CLASS}"><code class="language-{language_class}">'
        f"{body}</code></pre>"
    )


def _render_raw_html(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    content = tokens[idx].content
    match = _FIRST_TAG.match(content)
    if match and match.group(1).lower() in _HTML_ELEMENTS:
        return content  # the sanitiser decides what survives
    if content.lstrip().startswith("<!--"):
        return ""
    return html.escape(content, quote=False)


def _render_math_inline(
    self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any
) -> str:
    # Anki's MathJax delimiters; the TeX is never touched by Markdown, only HTML-escaped and
    # rid of commands that make links (tex_problems warns about those).
    return r"\(" + html.escape(defuse_math(tokens[idx].content)[0], quote=False) + r"\)"


def _render_math_block(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    content = html.escape(defuse_math(tokens[idx].content.strip())[0], quote=False)
    return '<div class="math">\\[' + content + "\\]</div>\n"


def _render_image(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = html.escape(self.renderInlineAsText(token.children or [], options, env), quote=True)
    if _REMOTE.match(src):
        # A remote image would not show offline; a link at least says where it is.
        return f'<a href="{html.escape(src, quote=True)}">{alt or html.escape(src)}</a>'
    name = _media_names(env).get(src)
    if name is None:
        return alt  # not shipped (the build says why): its text, not a dangling path
    return f'<img src="{html.escape(name, quote=True)}" alt="{alt}">'


def _render_embed(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    target = str(token.meta["target"])
    name = _media_names(env).get(media_key(token) or "")
    if name is None:
        return html.escape(link_text(token) if not is_image(target) else target)
    if not is_image(target):
        return f"[sound:{html.escape(name)}]"
    # `![[a.png|300]]` is a width, `|300x200` a width and a height; other text is alt text.
    label = str(token.meta["label"])
    size = _DIMENSIONS.fullmatch(label)
    alt = html.escape(target if size or not label.strip() else label.strip(), quote=True)
    attributes = ""
    if size:
        attributes = f' width="{size.group(1)}"' + (
            f' height="{size.group(2)}"' if size.group(2) else ""
        )
    return f'<img src="{html.escape(name, quote=True)}" alt="{alt}"{attributes}>'


def _render_wikilink(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    return html.escape(link_text(tokens[idx]))


def _render_sound(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    name = _media_names(env).get(media_key(token) or "")
    if name is None:
        return html.escape(token.content)  # made plain text to Anki by defuse_media_tags
    return f"[sound:{html.escape(name)}]"


def _media_names(env: Any) -> Mapping[str, str]:
    names = env.get(_MEDIA) if isinstance(env, dict) else None
    return names if isinstance(names, Mapping) else {}
