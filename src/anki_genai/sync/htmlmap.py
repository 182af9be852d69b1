"""An edit made to a field's HTML in Anki -> the same edit in the pair's Markdown, or why not.

HTML does not say which Markdown made it (`*` or `-`, `**` or `__`, where a line broke), so
an edit is mapped as text, never by converting the field back: when the edited HTML has the
very elements the build sent and only text differs, each changed run of text is found
exactly once in the pair's Markdown and replaced there. Anything else is not guessed:
elements Anki's editor added or removed, and text changed inside highlighted code or math
(whose Markdown is not the text shown) are reported with a suggestion, the field converted to
Markdown by markdownify. The caller renders the edited Markdown again and accepts the edit
only if it gives the HTML Anki has.

No I/O here: strings in, strings out.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

_VOID = {"br", "img", "hr", "wbr", "input", "col", "area", "source"}
_MATH = re.compile(r"\\\(.*?\\\)|\\\[.*?\\\]", re.DOTALL)
# Characters that mean something to Markdown when typed into text; escaped when written back.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|$~])")
_ENTITY_LIKE = re.compile(r"&(?=#?\w+;)")
_MAX_CONTEXT = 80


@dataclass(frozen=True, slots=True)
class Replacement:
    """Replace `source[start:end]` by `text`."""

    start: int
    end: int
    text: str


@dataclass(frozen=True, slots=True)
class Unmappable:
    """Why an edit cannot be written back to the Markdown exactly."""

    reason: str


_Event = tuple[str, ...]  # ("<", tag, attrs), (">", tag) or ("t", text)


class _Canonical(HTMLParser):
    """HTML as events that two serialisations of the same DOM share: attributes sorted,
    character references decoded, void elements without end tags, whitespace between
    elements dropped (it shows nothing), no-break spaces as spaces."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.events: list[_Event] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        rendered = " ".join(f"{k}={v or ''}" for k, v in sorted(attrs))
        self.events.append(("<", tag, rendered))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.events.append((">", tag))

    def handle_endtag(self, tag: str) -> None:
        if tag not in _VOID:
            self.events.append((">", tag))

    def handle_data(self, data: str) -> None:
        data = data.replace("\xa0", " ")
        if self.events and self.events[-1][0] == "t":
            self.events[-1] = ("t", self.events[-1][1] + data)
        else:
            self.events.append(("t", data))

    def result(self) -> tuple[_Event, ...]:
        self.close()
        return tuple(e for e in self.events if e[0] != "t" or e[1].strip())


def canonical(field_html: str) -> tuple[_Event, ...]:
    """The field as a browser would show it, for comparing two fields' HTML."""
    parser = _Canonical()
    parser.feed(field_html)
    return parser.result()


def same_html(a: str, b: str) -> bool:
    """Whether two fields show the same thing."""
    return a == b or canonical(a) == canonical(b)


def plain_text(field_html: str) -> str:
    """The text of a field, block by block on its own line, for a readable diff."""
    blocks = {"p", "div", "li", "pre", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "br"}
    parts: list[str] = []
    for event in canonical(field_html):
        if event[0] == "t":
            parts.append(event[1])
        elif event[1] in blocks:
            parts.append("\n")
    lines = "".join(parts).split("\n")
    return "\n".join(line.strip() for line in lines if line.strip())


def map_edit(source: str, sent_html: str, anki_html: str) -> list[Replacement] | Unmappable:
    """The replacements in `source` (a pair's Markdown) that turn `sent_html` into
    `anki_html`, or why there are none that can be trusted."""
    old, new = canonical(sent_html), canonical(anki_html)
    if [e if e[0] != "t" else ("t",) for e in old] != [e if e[0] != "t" else ("t",) for e in new]:
        return Unmappable("the edit adds or removes formatting (Anki's editor)")
    replacements: list[Replacement] = []
    open_elements: list[_Event] = []
    for before, after in zip(old, new, strict=True):
        if before[0] == "<":
            if before[1] not in _VOID:
                open_elements.append(before)
            continue
        if before[0] == ">":
            if open_elements:
                open_elements.pop()
            continue
        if before == after:
            continue
        if any("highlight" in e[2] for e in open_elements):
            return Unmappable("the edit is inside highlighted code")
        if any(e[1] == "pre" for e in open_elements):
            return Unmappable("the edit is inside a code block")
        if any("class=math" in e[2] for e in open_elements):
            return Unmappable("the edit is inside math")
        in_code = any(e[1] == "code" for e in open_elements)
        if in_code and "`" in after[1]:
            return Unmappable("the edit puts a backtick into inline code")
        found = _replacement(source, before[1], after[1], replacements, literal=in_code)
        if isinstance(found, Unmappable):
            return found
        replacements.append(found)
    return sorted(replacements, key=lambda r: r.start)


def _replacement(
    source: str, old: str, new: str, taken: list[Replacement], *, literal: bool
) -> Replacement | Unmappable:
    """Find the changed part of one text run in `source`, with as little of its unchanged
    surroundings as makes it unique, and replace it."""
    prefix = _common_prefix(old, new)
    suffix = _common_prefix(old[prefix:][::-1], new[prefix:][::-1])
    old_end, new_end = len(old) - suffix, len(new) - suffix
    for math in _MATH.finditer(old):
        if math.start() < max(old_end, prefix + 1) and prefix < math.end():
            return Unmappable("the edit is inside math")
    changed = new[prefix:new_end]
    for context in range(_MAX_CONTEXT + 1):
        before = min(context, prefix)
        after = min(context, suffix)
        window = old[prefix - before : old_end + after]
        if not window.strip():
            continue
        hits = [m.start() for m in re.finditer(re.escape(window), source)]
        hits = [h for h in hits if not any(r.start < h + len(window) and h < r.end for r in taken)]
        if len(hits) == 1:
            start = hits[0] + before
            text = changed if literal else _escape(changed)  # code spans show backslashes
            return Replacement(start, start + (old_end - prefix), text)
        if not hits or (before == prefix and after == suffix):
            break
    return Unmappable("the edited text was not found exactly once in the Markdown")


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _escape(text: str) -> str:
    """Text typed in Anki, as Markdown that shows it literally."""
    return _ENTITY_LIKE.sub(r"\\&", _MARKDOWN_SPECIAL.sub(r"\\\1", text))


def suggestion(field_html: str) -> str:
    """The field as Markdown, for the user to paste: a suggestion, never written by itself."""
    from markdownify import MarkdownConverter

    # Math first, so the converter does not escape the TeX: placeholders, put back after.
    maths: list[str] = []

    def hold(match: re.Match[str]) -> str:
        maths.append(match.group(0))
        return f"\x00{len(maths) - 1}\x00"

    held = re.sub(
        r'<div class="math">(.*?)</div>',
        lambda m: "<p>" + html.escape(hold(m)) + "</p>",
        field_html,
        flags=re.DOTALL,
    )
    held = _MATH.sub(hold, held)

    def language(pre: Any) -> str | None:
        # Pygments' block: <pre class="highlight"><code class="language-python">
        code = pre.find("code")
        for name in (code.get("class") if code is not None else None) or []:
            if name.startswith("language-"):
                return str(name.removeprefix("language-"))
        return None

    converter = MarkdownConverter(
        heading_style="ATX", bullets="-", escape_misc=False, code_language_callback=language
    )
    text = str(converter.convert(held)).strip()

    def put_back(match: re.Match[str]) -> str:
        tex = maths[int(match.group(1))]
        inner = re.sub(r"^<div class=\"math\">|</div>$", "", tex)
        inner = html.unescape(inner)
        if inner.startswith("\\[") and inner.endswith("\\]"):
            return "$$" + inner[2:-2] + "$$"
        if inner.startswith("\\(") and inner.endswith("\\)"):
            return "$" + inner[2:-2] + "$"
        return inner

    return re.sub(r"\x00(\d+)\x00", put_back, text)
