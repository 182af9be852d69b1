"""Page furniture: blocks that serve the page, not the reader of a card.

Back-to-top links, tables of contents, `[TOC]`, spacer HTML, reference and to-do sections and
placeholder answers never become cards and never join an answer.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING

from anki_genai.markers import inline_text, plain_text

if TYPE_CHECKING:
    from markdown_it.token import Token

    from anki_genai.blocks import Block

# Headings of sections that point elsewhere or say what is left to do.
_SECTION_NAMES = {
    "references", "reference", "further reading", "see also", "resources", "links", "sources",
    "todo", "to do", "参考", "参考资料", "参考文献", "参考链接", "相关链接", "延伸阅读", "扩展阅读",
    "待完成", "待补充", "其他答案", "其它答案",
}  # fmt: skip
_PLACEHOLDERS = {"todo", "tbd", "待完成", "待补充", "未完成", "略"}
_PLACEHOLDER_MAX = 40  # "TODO!!!", "待补充。", with room for more punctuation
_EMPHASIS = ("strong_open", "strong_close", "em_open", "em_close")
_URL = re.compile(r"^(?:https?://|www\.)\S+$", re.IGNORECASE)
_TAG_ONLY = re.compile(r"^(?:\s*<[^>]+>)*\s*$")


def is_furniture_heading(text: str) -> bool:
    """A heading that opens a reference or to-do section, such as `## References`, `### 参考`."""
    name = unicodedata.normalize("NFKC", text).strip().strip(":：#*").strip().casefold()
    return name in _SECTION_NAMES


def is_placeholder(tokens: Sequence[Token]) -> bool:
    """An answer that only says it is still to be written (`TODO`, `待补充。`) or is only
    dots (`...`, `……`); one of more than `_PLACEHOLDER_MAX` characters says more than that."""
    text = plain_text(tokens).strip()
    if len(text) > _PLACEHOLDER_MAX:
        return False  # and normalising a whole answer is a twentieth of parsing a file
    text = unicodedata.normalize("NFKC", text).strip().casefold()
    # Text, not an image alone, that is nothing but dots once `…` is read as `...`.
    return text.strip(".。!！") in _PLACEHOLDERS or (bool(text) and not text.strip(".。"))


def is_furniture(block: Block) -> bool:
    """A block that is navigation or spacing: never content of a card."""
    first = block.tokens[0]
    if block.details is not None:
        return False
    if first.type == "html_block":
        content = first.content
        return bool(_TAG_ONLY.match(content)) and "<img" not in content.lower()
    if block.is_paragraph:
        children = [c for c in block.tokens[1].children or [] if not _blank(c)]
        text = inline_text(children).strip()
        if text.casefold() in ("[toc]", "[[toc]]", "${toc}"):
            return True
        return _only_anchor_links(children)
    if first.type in ("bullet_list_open", "ordered_list_open"):
        return is_table_of_contents(block)
    return False


def is_table_of_contents(block: Block) -> bool:
    """A list whose every item is a link to a place in the same page."""
    items = _list_items(block)
    return bool(items) and all(_only_anchor_links(children) for children in items)


def is_link_list(block: Block) -> bool:
    """A list whose every item is only a link or a URL: a reference section's body."""
    items = _list_items(block)
    return bool(items) and all(_only_links(children) for children in items)


def _list_items(block: Block) -> list[list[Token]]:
    """The inline children of each item of a list, nested lists' items included."""
    if block.tokens[0].type not in ("bullet_list_open", "ordered_list_open"):
        return []
    return [
        [c for c in token.children or [] if not _blank(c)]
        for token in block.tokens
        if token.type == "inline"
    ]


def _only_anchor_links(children: list[Token]) -> bool:
    links = [c for c in children if c.type == "link_open"]
    if not links or not all(str(c.attrGet("href") or "").startswith("#") for c in links):
        return _html_anchor_only(children)
    return _outside_links_blank(children)


def _only_links(children: list[Token]) -> bool:
    if not children:
        return False
    text = inline_text(children).strip()
    if _URL.match(text):
        return True
    return any(c.type == "link_open" for c in children) and _outside_links_blank(children)


def _outside_links_blank(children: list[Token]) -> bool:
    depth = 0
    for child in children:
        if child.type == "link_open":
            depth += 1
        elif child.type == "link_close":
            depth -= 1
        elif depth == 0 and child.type not in (
            "strong_open",
            "strong_close",
            "em_open",
            "em_close",
        ):
            if child.type == "text" and not child.content.strip(" []()|·•-–—"):
                continue
            if child.type in ("softbreak", "hardbreak"):
                continue
            return False
    return True


def _html_anchor_only(children: list[Token]) -> bool:
    """`<a href="#top">↑ back to top</a>` or an `<a name=…></a>` anchor, written as HTML."""
    html = "".join(c.content for c in children if c.type in ("html_inline", "text"))
    if not any(c.type == "html_inline" for c in children):
        return False
    anchors = re.findall(r"<a\b[^>]*>", html, re.IGNORECASE)
    if not anchors or any(
        'href="#' not in a and "name=" not in a and "id=" not in a for a in anchors
    ):
        return False
    return len(re.sub(r"<[^>]+>", "", html).strip()) <= 20  # a short "back to top" at most


def _blank(token: Token) -> bool:
    return token.type == "text" and not token.content.strip()
