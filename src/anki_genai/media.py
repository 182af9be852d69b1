"""Images referenced by a pair -> media files with content-hash names.

Anki's media folder is flat and never overwrites a file it already has, so two `image.png`
from different folders would collide and an edited image would never arrive. A name made
from the content's hash avoids both, and never starts with `_` (Anki's "never replace" mark).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from anki_genai.errors import Diagnostic, Severity, SourceLocation

if TYPE_CHECKING:
    from markdown_it.token import Token


@dataclass(frozen=True, slots=True)
class MediaFile:
    """An image to ship in the package."""

    path: Path  # on disk
    name: str  # in the package and in the field


def resolve_images(
    tokens: Sequence[Token], markdown_file: Path, root: Path
) -> tuple[dict[str, MediaFile], list[Diagnostic]]:
    """Find the images in `tokens` and map each source, as written, to its media file."""
    found: dict[str, MediaFile] = {}
    problems: list[Diagnostic] = []
    for src, line in _image_sources(tokens):
        if src in found:
            continue
        location = SourceLocation(markdown_file, line)
        scheme = urlsplit(src).scheme.lower()
        if scheme in ("http", "https"):
            problems.append(
                Diagnostic(
                    location,
                    f"remote image {src} is kept as a link; it will not show offline "
                    "(download it next to the Markdown file to ship it in the deck)",
                    Severity.WARNING,
                )
            )
            continue
        if scheme == "data":
            continue
        media, problem = _resolve(src, markdown_file, root)
        if media is not None:
            found[src] = media
        else:
            problems.append(Diagnostic(location, problem, Severity.WARNING))
    return found, problems


def _resolve(src: str, markdown_file: Path, root: Path) -> tuple[MediaFile | None, str]:
    relative = unquote(urlsplit(src).path)
    if not relative or os.path.isabs(relative) or urlsplit(src).scheme:
        return None, (
            f"image {src} is not a relative path; put it inside the source folder and "
            "refer to it relative to the Markdown file"
        )
    real = Path(os.path.realpath(markdown_file.parent / relative))
    if not real.is_relative_to(os.path.realpath(root)):
        return None, f"image {src} is outside the source folder {root}; refused (move it inside)"
    try:
        content = real.read_bytes()
    except FileNotFoundError:
        return None, f"image {src} not found (looked for {real})"
    except OSError as exc:
        return None, f"image {src} cannot be read: {exc.strerror}"
    digest = hashlib.sha256(content).hexdigest()[:20]
    return MediaFile(real, f"{digest}{real.suffix.lower()}"), ""


def _image_sources(tokens: Sequence[Token]) -> Iterator[tuple[str, int]]:
    line = 1
    for token in tokens:
        if token.map:
            line = token.map[0] + 1
        if token.type == "html_block":
            yield from ((src, line) for src in _html_image_sources(token.content))
        for child in token.children or ():
            if child.type == "image":
                yield str(child.attrGet("src") or ""), line
            elif child.type == "html_inline":
                yield from ((src, line) for src in _html_image_sources(child.content))


class _ImageFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.sources.extend(value for name, value in attrs if name == "src" and value)


def _html_image_sources(fragment: str) -> list[str]:
    if "<img" not in fragment.lower():
        return []
    finder = _ImageFinder()
    finder.feed(fragment)
    finder.close()
    return finder.sources
