"""The note type: its id, fields, templates and CSS, frozen where Anki needs them frozen.

A leaf: rendering (the class of highlighted code), the preview (templates, CSS) and the
package all read the note type from here.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence
from typing import NamedTuple

# ---------------------------------------------------------------------------------------------
# The note type. Anki matches note types by id and compares their schema (field names and
# order, template names and count). If any of these change after release, Anki keeps the old
# note type, adds a copy named "anki-genai Q&A+", and reports every existing note as
# "conflicting" on every later import: no edit would ever reach users' collections again.
# So NOTE_TYPE_ID, the fields (NoteFields) and TEMPLATE_NAME are frozen forever. "Extra" is
# the spare field, empty today, for whatever a later version needs. The CSS and the template *text*
# may change freely: a change bumps the note type's mod and Anki then replaces them.
# ---------------------------------------------------------------------------------------------
NOTE_TYPE_ID = 1876203471
NOTE_TYPE_NAME = "anki-genai Q&A"


class NoteFields(NamedTuple):
    """A note's fields in the note type's order: the one place that order is written down."""

    question: str
    answer: str
    context: str
    source: str
    extra: str = ""  # the spare field

    @classmethod
    def padded(cls, fields: Sequence[str]) -> NoteFields:
        """Fields read back from somewhere else (a state file, a package), as many as fit."""
        padded = (*fields, "", "", "", "", "")
        return cls(padded[0], padded[1], padded[2], padded[3], padded[4])


# "question" -> "Question": renaming an attribute above would rename a field in Anki.
FIELD_NAMES = tuple(name.capitalize() for name in NoteFields._fields)
TEMPLATE_NAME = "Card 1"
HIGHLIGHT_CLASS = "highlight"  # the class of highlighted code blocks, styled in the CSS

FRONT_TEMPLATE = """\
{{#Context}}<div class="context">{{Context}}</div>{{/Context}}
<div class="question">{{Question}}</div>
"""

BACK_TEMPLATE = """\
{{FrontSide}}
<hr id="answer">
<div class="answer">{{Answer}}</div>
{{#Extra}}<div class="extra">{{Extra}}</div>{{/Extra}}
{{#Source}}<div class="source">{{Source}}</div>{{/Source}}
"""

CSS = """\
.card {
  /* Latin faces first: a CJK face would set Latin letters and punctuation too (the dot of
     "DALL·E" full width); characters a Latin face lacks fall through to the CJK ones. */
  font-family: -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, "Noto Sans",
    "Helvetica Neue", Arial, "Liberation Sans", "PingFang SC", "Hiragino Sans GB",
    "Microsoft YaHei", "Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Micro Hei",
    sans-serif;
  font-size: 18px;
  line-height: 1.7;
  text-align: left;
  color: #1f2328;
  background-color: #ffffff;
  max-width: 46em;
  margin: 0 auto;
  padding: 12px;
}
/* Long URLs and inline code wrap rather than widen the card. Not on the whole card: in a
   table it would squeeze every column to one character instead of letting the table scroll. */
.context, .question, .answer, .extra, .source { overflow-wrap: anywhere; }
.context { font-size: 0.8em; color: #6e7781; margin-bottom: 0.4em; }
.question { font-weight: 600; }
.answer ul, .answer ol, .question ul, .question ol { padding-left: 1.4em; }
.source { font-size: 0.7em; color: #8c959f; margin-top: 1.5em; }
hr#answer { border: none; border-top: 1px solid #d0d7de; margin: 1em 0; }
code, kbd, pre { font-family: "SFMono-Regular", Menlo, Consolas, "Liberation Mono",
  "Noto Sans Mono", monospace; }
code { font-size: 0.88em; background: #eaeef2; padding: 0.1em 0.3em; border-radius: 4px; }
/* The block carries the code's font and size: browsers measure tab stops in the block's
   font, so code of another size would get tabs of the wrong width. */
pre { font-size: 0.85em; background: #f6f8fa; padding: 0.8em; border-radius: 6px;
  overflow-x: auto; line-height: 1.45; max-width: 100%; tab-size: 4; -moz-tab-size: 4;
  overflow-wrap: normal; }
pre code { font-size: 1em; background: none; padding: 0; border-radius: 0; }
kbd { font-size: 0.8em; padding: 0.1em 0.4em; border: 1px solid #d0d7de;
  border-bottom-width: 2px; border-radius: 4px; background: #f6f8fa;
  box-shadow: inset 0 -1px 0 #d0d7de; white-space: nowrap; }
/* A table scrolls in its own box; its cells keep at least a few characters a line (Chinese
   may break between any two, so the width is the cell's own rule). */
table { border-collapse: collapse; display: block; overflow-x: auto; max-width: 100%; }
th, td { border: 1px solid #d0d7de; padding: 0.3em 0.6em; min-width: 3em;
  overflow-wrap: break-word; }
.math { overflow-x: auto; max-width: 100%; }
blockquote { margin: 0.5em 0; padding-left: 0.8em; border-left: 3px solid #d0d7de;
  color: #57606a; }
img { max-width: 100%; height: auto; }
a { color: #0969da; }
.nightMode .card, .night_mode .card, .card.nightMode, .card.night_mode {
  color: #e6edf3; background-color: #1e1e1e; }
.nightMode .context, .night_mode .context { color: #9198a1; }
.nightMode .source, .night_mode .source { color: #7d8590; }
.nightMode a, .night_mode a { color: #58a6ff; }
.nightMode code, .night_mode code { background: #3a414b; }
.nightMode pre, .night_mode pre { background: #2a2f36; }
.nightMode pre code, .night_mode pre code { background: none; }
.nightMode kbd, .night_mode kbd { background: #2a2f36; border-color: #545d68;
  box-shadow: inset 0 -1px 0 #545d68; }
.nightMode th, .nightMode td, .night_mode th, .night_mode td { border-color: #444c56; }
.nightMode blockquote, .night_mode blockquote { color: #9198a1; border-left-color: #444c56; }
"""


@functools.cache  # Pygments builds the rules anew on every call, and a build asks often
def highlight_css() -> str:
    """Return the Pygments colours for code: a light palette and a night-mode one."""
    from pygments.formatters import HtmlFormatter

    light = HtmlFormatter(style="default").get_style_defs(f".{HIGHLIGHT_CLASS}")
    night_selectors = [
        f".nightMode .{HIGHLIGHT_CLASS}",
        f".night_mode .{HIGHLIGHT_CLASS}",
    ]
    night = HtmlFormatter(style="monokai").get_style_defs(night_selectors)
    # The code block's own background comes from the note type's CSS, in both modes.
    return _drop_backgrounds(light) + "\n" + _drop_backgrounds(night)


def _drop_backgrounds(css: str) -> str:
    """Pygments' rules without any background, in whatever selector form they come."""
    kept = []
    for line in css.splitlines():
        if line.startswith(("pre {", "td.linenos", "span.linenos")):
            continue
        line = _BACKGROUND.sub("", line)
        if not _EMPTY_RULE.match(line):
            kept.append(line)
    return "\n".join(kept)


# A declaration inside a one-line rule, wherever it stands; the rule's braces stay.
_BACKGROUND = re.compile(r"\s*background(?:-color)?\s*:[^;}]*;?")
_EMPTY_RULE = re.compile(r"^[^{]*\{\s*\}\s*(?:/\*.*\*/)?$")


def note_type_css() -> str:
    """Return the note type's CSS: the card's own, then the code colours."""
    return CSS + "\n" + highlight_css() + "\n"


def note_type_digest(*shape: object) -> str:
    """Return a digest of everything in the note type that may change between versions:
    this version's, or that of `shape` (name, front, back, CSS) read from a package."""
    parts = shape or (NOTE_TYPE_NAME, FRONT_TEMPLATE, BACK_TEMPLATE, note_type_css())
    text = "\x00".join(str(part) for part in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
