"""TeX for Anki's MathJax, made unable to put a link, an attribute or CSS on the card.

Anki typesets `\\(…\\)` and `\\[…\\]` with MathJax 3 (`tex-chtml-full`, with `autoload` and
`require`), and there TeX can do more than draw: measured in Chromium, `\\href{javascript:…}`
and `\\mmlToken{mi}[href="javascript:…"]` become live `<a href="javascript:…">` links,
`\\cssId{qa}` gives an element the id of Anki's own card container, `\\style`, and the
options of `\\bbox` and `\\unicode`, write CSS (a full-screen overlay, a `url()` that fetches
a tracking image), and `\\require` loads extensions. Those commands are taken out, their
visible text kept; everything else a formula can say stays. Macros cannot assemble a command
name from pieces (MathJax separates a control word from the letters after it), so a command
that is not written is never run.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from anki_genai.errors import Diagnostic, Severity, SourceLocation

if TYPE_CHECKING:
    from pathlib import Path

    from markdown_it.token import Token

# Commands whose first argument is a link, a class, an id, CSS or data attributes, and whose
# second is the text shown: MathJax's html extension (`\data` from MathJax 4 on).
_WRAPPERS = frozenset({"href", "class", "cssId", "style", "data"})
# Removed whole (`\require`) or reduced to their text (`\url` is not MathJax 3's, but a future
# MathJax or another renderer may make it a link; `\mmlToken{type}[attributes]{text}` sets
# any attribute, `href` included).
_DROPPED = frozenset({"require"})
_TEXT_ONLY = frozenset({"url", "mmlToken"})
# Kept, but their bracketed options may only be colours, sizes and font names: anything else
# is CSS.
_WITH_OPTIONS = frozenset({"bbox", "unicode"})
_UNSAFE = _WRAPPERS | _DROPPED | _TEXT_ONLY
_PLAIN_OPTION = re.compile(r"[\w\s.,#%+-]*")
_COMMAND = re.compile(r"\\([A-Za-z]+)")
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)(?:[^>\"']|\"[^\"]*\"|'[^']*')*>")
_DELIMITER = re.compile(r"\\[(\[]")
# MathJax leaves what is inside these alone (its `skipHtmlTags`, which Anki keeps).
_SKIPPED = frozenset({"code", "pre"})
_ZERO_WIDTH_SPACE = "\u200b"


def defuse_math(tex: str) -> tuple[str, tuple[str, ...]]:
    """Return `tex` without the commands that could add a link, attribute or CSS, and
    the names of those it removed (`\\href`, `\\bbox[…]`)."""
    if "\\" not in tex:
        return tex, ()
    removed: list[str] = []
    i = 0
    while (start := tex.find("\\", i)) >= 0:
        end = _control_end(tex, start)
        name = tex[start + 1 : end]
        if name in _WITH_OPTIONS:
            tex, cleaned = _clean_options(tex, end)
            if cleaned:
                removed.append(f"\\{name}[…]")
            i = end
            continue
        if name not in _UNSAFE:
            i = end
            continue
        removed.append(f"\\{name}")
        tex = tex[:start] + _replacement(tex, name, end)
        i = start  # what was kept is read again: it may hold another such command
    return tex, tuple(dict.fromkeys(removed))


def defuse_field(field_html: str) -> str:
    """Make the TeX commands of `defuse_math` in the text of `field_html` (outside code)
    harmless to MathJax, without changing how the text looks.

    Math from `$…$` is cleaned before this; this catches TeX that reaches the card as text,
    such as `\\\\(\\\\href{…}{…}\\\\)` in Markdown or a heading shown as the card's context. A
    zero-width space after the backslash leaves a command MathJax does not know.
    """
    if "\\" not in field_html:
        return field_html
    parts: list[str] = []
    skipped = 0
    last = 0
    for tag in _TAG.finditer(field_html):
        text = field_html[last : tag.start()]
        parts.append(text if skipped else _defuse_text(text))
        parts.append(tag.group(0))
        if tag.group(2).lower() in _SKIPPED:
            skipped = max(0, skipped + (-1 if tag.group(1) else 1))
        last = tag.end()
    text = field_html[last:]
    parts.append(text if skipped else _defuse_text(text))
    return "".join(parts)


def tex_problems(tokens: Sequence[Token], markdown_file: Path) -> list[Diagnostic]:
    """Warn, at its line, about each formula or text whose TeX `defuse_math` changes."""
    problems: list[Diagnostic] = []
    line = 1
    for token in tokens:
        if token.map:
            line = token.map[0] + 1
        removed: list[str] = []
        if token.type.startswith("math_block"):
            removed.extend(defuse_math(token.content)[1])
        text = [token.content] if token.type == "html_block" else []
        for child in token.children or ():
            if child.type.startswith("math_inline"):
                removed.extend(defuse_math(child.content)[1])
            elif child.type in ("text", "html_inline"):
                text.append(child.content)
        joined = "".join(text)
        if _DELIMITER.search(joined):
            removed.extend(defuse_math(joined)[1])
        if removed:
            names = ", ".join(dict.fromkeys(removed))
            problems.append(
                Diagnostic(
                    SourceLocation(markdown_file, line),
                    f"math uses {names}, which Anki's MathJax would turn into a link, an "
                    "attribute or CSS on the card; removed (its text is kept)",
                    Severity.WARNING,
                )
            )
    return problems


def _defuse_text(text: str) -> str:
    if "\\" not in text:
        return text

    def defuse(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in _UNSAFE or (name in _WITH_OPTIONS and _clean_options(text, match.end())[1]):
            return f"\\{_ZERO_WIDTH_SPACE}{name}"
        return match.group(0)

    return _COMMAND.sub(defuse, text)


def _replacement(tex: str, name: str, end: int) -> str:
    """The text after a removed command at `end`: its shown argument, then the rest."""
    first = _argument_end(tex, end)
    if first is None:
        return tex[end:]  # no arguments to be read: the command alone goes
    if name in _DROPPED:
        return tex[first:]
    if name == "url":
        argument = tex[_skip_space(tex, end) : first]
        return ("\\text" + argument if argument.startswith("{") else argument) + tex[first:]
    after = _options_end(tex, first) if name == "mmlToken" else first
    second = _argument_end(tex, after)
    if second is None:
        return tex[first:]
    return tex[_skip_space(tex, after) : second] + tex[second:]


def _clean_options(tex: str, end: int) -> tuple[str, bool]:
    """Drop the bracketed options after `end` that are more than colours and sizes."""
    cleaned = False
    position = end
    while True:
        start = _skip_space(tex, position)
        close = _options_end(tex, position)
        if close == position:
            return tex, cleaned
        if _PLAIN_OPTION.fullmatch(tex[start + 1 : close - 1]):
            position = close
            continue
        tex = tex[:start] + tex[close:]
        cleaned = True
        position = start


def _control_end(tex: str, start: int) -> int:
    """Where the control sequence at `start` (a backslash) ends."""
    end = start + 1
    while end < len(tex) and tex[end].isascii() and tex[end].isalpha():
        end += 1
    return end if end > start + 1 else min(start + 2, len(tex))


def _skip_space(tex: str, i: int) -> int:
    while i < len(tex):
        if tex[i].isspace():
            i += 1
        elif tex[i] == "%":  # a TeX comment, to the end of the line
            newline = tex.find("\n", i)
            i = len(tex) if newline < 0 else newline + 1
        else:
            break
    return i


def _argument_end(tex: str, i: int) -> int | None:
    """Where the argument after `i` ends: a braced group, a command or one character."""
    i = _skip_space(tex, i)
    if i >= len(tex) or tex[i] in "}]":
        return None
    if tex[i] == "\\":
        return _control_end(tex, i)
    if tex[i] != "{":
        return i + 1
    return _group_end(tex, i, "{", "}")


def _options_end(tex: str, i: int) -> int:
    """Where a `[…]` after `i` ends; `i` itself when there is none."""
    start = _skip_space(tex, i)
    if start >= len(tex) or tex[start] != "[":
        return i
    return _group_end(tex, start, "[", "]") or len(tex)


def _group_end(tex: str, i: int, opening: str, closing: str) -> int | None:
    depth = 0
    while i < len(tex):
        char = tex[i]
        if char == "\\":
            i += 2
            continue
        if char == "{" or (char == opening and depth == 0):
            depth += 1
        elif char == "}" or (char == closing and depth == 1):
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None
