"""Inline syntax beyond CommonMark that names a file or a note: Obsidian's `![[file]]`
embeds and `[[note|label]]` links, and Anki's own `[sound:file]`.

Each becomes one token whose `content` is the source text as written, so the plain text of
a question (what identity matching compares) is what it was before these rules existed; the
parts are in `meta`. Obsidian: https://help.obsidian.md/Linking+notes+and+files/Embed+files
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.rules_inline import StateInline
    from markdown_it.token import Token

WIKILINK = "wikilink"
EMBED = "wiki_embed"
SOUND = "anki_sound"
TOKEN_TYPES = (WIKILINK, EMBED, SOUND)
_SOUND_TAG = re.compile(r"\[sound:([^\]]*)\]")

# What Obsidian shows as an image and plays as audio (its "accepted file formats").
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".svg", ".webp", ".avif", ".apng", ".ico"}
)
AUDIO_SUFFIXES = frozenset(
    {".mp3", ".wav", ".m4a", ".ogg", ".oga", ".opus", ".flac", ".webm", ".3gp", ".mp4", ".aac"}
)


def embeds_plugin(md: MarkdownIt) -> None:
    """Parse `![[…]]`, `[[…]]` and `[sound:…]` into tokens of their own."""
    md.inline.ruler.before("link", WIKILINK, _wikilink)
    md.inline.ruler.before("link", SOUND, _sound)


def media_key(token: Token) -> str | None:
    """The key under which the file `token` shows is looked up, if it shows one."""
    if token.type == "image":
        return str(token.attrGet("src") or "")
    if token.type == EMBED:
        return f"![[{token.meta['target']}]]"
    if token.type == SOUND:
        return f"[sound:{token.meta['name']}]"
    return None


def link_text(token: Token) -> str:
    """What Obsidian shows for a link: its label, or the note (and heading) it names."""
    label = str(token.meta.get("label") or "").strip()
    if label:
        return label
    note, _, heading = str(token.meta["target"]).partition("#")
    return f"{note} > {heading}" if note and heading else note or heading


def is_image(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES


def is_audio(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in AUDIO_SUFFIXES


def defuse_media_tags(field_html: str, media: Mapping[str, str]) -> str:
    """Make every `[sound:…]` that does not name a shipped file plain text to Anki.

    Anki looks for the tag in the field's HTML source, so `&#91;` instead of `[` shows the
    same text and plays nothing.
    """
    if "[sound:" not in field_html:
        return field_html
    shipped = set(media.values())
    return _SOUND_TAG.sub(
        lambda m: m.group(0) if m.group(1) in shipped else "&#91;" + m.group(0)[1:], field_html
    )


def _wikilink(state: StateInline, silent: bool) -> bool:
    start = state.pos
    embed = state.src.startswith("![[", start)
    opening = start + 1 if embed else start
    if not state.src.startswith("[[", opening):
        return False
    close = state.src.find("]]", opening + 2, state.posMax)
    inner = state.src[opening + 2 : close] if close >= 0 else ""
    if not inner.strip() or any(c in inner for c in "[]\n"):
        return False
    target, _, label = inner.partition("|")
    # In a table Obsidian writes `[[note\|label]]`: the backslash keeps the cell whole.
    target = target.removesuffix("\\").strip()
    if not target:
        return False
    if not silent:
        token = state.push(EMBED if embed else WIKILINK, "", 0)
        token.content = state.src[start : close + 2]
        token.meta = {"target": target, "label": label}
    state.pos = close + 2
    return True


def _sound(state: StateInline, silent: bool) -> bool:
    start = state.pos
    if not state.src.startswith("[sound:", start):
        return False
    close = state.src.find("]", start, state.posMax)
    name = state.src[start + 7 : close] if close >= 0 else ""
    if not name.strip() or "[" in name or "\n" in name:
        return False
    if not silent:
        token = state.push(SOUND, "", 0)
        token.content = state.src[start : close + 1]
        token.meta = {"name": name.strip()}
    state.pos = close + 1
    return True
