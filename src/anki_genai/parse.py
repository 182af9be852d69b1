"""Markdown text -> question/answer pairs: the public parsing API.

`markers` holds the layout heuristics (which block is a question or an answer) and `pairs`
the walk that turns blocks into pairs; this module parses the text once, reads the front
matter and hands back a `ParsedDocument`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from anki_genai.blocks import MAX_NESTING, TOO_DEEP, nesting_cuts, split_blocks
from anki_genai.errors import Diagnostic, FrontMatterError, SourceError, SourceLocation
from anki_genai.layouts import find_pairs
from anki_genai.markers import (
    Layout,
    ParseOptions,
    plain_text,
)
from anki_genai.pairs import QAPair

if TYPE_CHECKING:
    from collections.abc import Sequence

    from markdown_it import MarkdownIt
    from markdown_it.token import Token

__all__ = [
    "Layout",
    "ParseOptions",
    "ParsedDocument",
    "QAPair",
    "markdown_parser",
    "normalize_question",
    "normalize_text",
    "parse_markdown",
    "plain_text",
]


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    """Everything one Markdown file yields: its title, settings, pairs and problems."""

    path: Path
    title: str | None
    pairs: tuple[QAPair, ...]
    diagnostics: tuple[Diagnostic, ...]
    env: dict[str, object] = field(hash=False, compare=False)
    deck: str | None = None  # from front matter
    tags: tuple[str, ...] = ()  # from front matter
    layout: Layout = Layout.MARKERS  # the layout it was read in: found, or forced


def markdown_parser() -> MarkdownIt:
    """Return the parser every stage shares: CommonMark, GFM tables and strikethrough, math,
    Obsidian's `![[embeds]]` and `[[links]]`, Anki's `[sound:…]`."""
    # Imported here: a rebuild that finds every file in the cache never parses Markdown.
    from markdown_it import MarkdownIt
    from mdit_py_plugins.dollarmath import dollarmath_plugin
    from mdit_py_plugins.front_matter import front_matter_plugin

    from anki_genai.embeds import embeds_plugin

    md = MarkdownIt("commonmark", {"html": True, "maxNesting": MAX_NESTING})
    md.enable(["table", "strikethrough"])
    md.use(front_matter_plugin).use(embeds_plugin)
    # No space inside the dollars and no digit right after the closing one, so that
    # "costs $5 and $10" stays text while $x_1$ is math.
    return md.use(dollarmath_plugin, allow_space=False, allow_digits=False, allow_labels=False)


def parse_markdown(
    text: str,
    path: Path,
    md: MarkdownIt | None = None,
    options: ParseOptions | None = None,
) -> ParsedDocument:
    """Find every question/answer pair in `text`, the content of the file at `path`."""
    md = md or markdown_parser()
    options = options or ParseOptions()
    env: dict[str, object] = {}
    try:
        tokens = md.parse(normalize_text(text), env)
    except RecursionError:
        # markdown-it caps nesting, but inline parsing of pathological input can still recurse.
        raise SourceError(
            "too deeply nested to parse; simplify it", SourceLocation(path, 1)
        ) from None
    settings, problems = _front_matter(tokens, path)
    layout_name = settings.get("layout")
    if layout_name is not None:
        try:
            options = ParseOptions(
                Layout(str(layout_name)), options.question_words, options.answer_words
            )
        except ValueError:
            problems.append(
                Diagnostic(
                    SourceLocation(path, 1),
                    f"unknown layout {layout_name!r} in front matter; "
                    f"use one of {', '.join(m.value for m in Layout)}",
                )
            )
    options = ParseOptions(
        options.layout,
        options.question_words + _words(settings.get("question_words")),
        options.answer_words + _words(settings.get("answer_words")),
    )
    builder = find_pairs(list(split_blocks(tokens, md, env)), path, options)
    deep = [  # where a pair was left with no answer by it, the pair has said so
        Diagnostic(SourceLocation(path, line), TOO_DEEP)
        for line in nesting_cuts(tokens)
        if line not in builder.cuts_reported
    ]
    diagnostics = problems + sorted([*builder.diagnostics, *deep], key=lambda d: d.location.line)
    deck = settings.get("deck") or (settings.get("title") if builder.title is None else None)
    return ParsedDocument(
        path=path,
        title=builder.title,
        pairs=tuple(builder.pairs),
        diagnostics=tuple(diagnostics),
        env=env,
        deck=str(deck) if deck else None,
        tags=_words(settings.get("tags")),
        layout=builder.layout,
    )


def normalize_text(text: str) -> str:
    """Drop a BOM and turn CRLF/CR line endings into LF, so line numbers match an editor's."""
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def normalize_question(text: str) -> str:
    """Fold width, case and spacing, so formatting-only edits leave the key unchanged."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(text.split())


def _words(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(w for w in re.split(r"[,\s]+", value) if w)
    if isinstance(value, list):
        return tuple(str(w) for w in value if str(w).strip())
    return (str(value),)


def _front_matter(
    tokens: Sequence[Token], path: Path
) -> tuple[dict[str, object], list[Diagnostic]]:
    if not tokens or tokens[0].type != "front_matter":
        return {}, []
    import yaml

    try:
        data = yaml.safe_load(tokens[0].content)
    except yaml.YAMLError as exc:
        # Without its settings the file's notes would change deck and lose their tags.
        line = getattr(getattr(exc, "problem_mark", None), "line", 0) + 2
        problem = getattr(exc, "problem", None)
        raise FrontMatterError(
            f"front matter is not valid YAML{f' ({problem})' if problem else ''}; fix it or "
            "remove it (until then this file's notes stay as the last build made them)",
            SourceLocation(path, line),
        ) from None
    return (data if isinstance(data, dict) else {}), []
