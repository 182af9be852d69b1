"""Images and sounds referenced by a pair -> media files with content-hash names.

Anki's media folder is flat and never overwrites a file it already has, so two `image.png`
from different folders would collide and an edited image would never arrive. A name made
from the content's hash avoids both, and never starts with `_` (Anki's "never replace" mark).

A file ships only when it lies inside the source folder and its first bytes are the kind of
file its name says: a text file named `pic.png` is not an image, and an SVG with scripts is
refused. What does not ship leaves its alt text on the card, never a path.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from anki_genai.embeds import EMBED, SOUND, is_audio, is_image, media_key
from anki_genai.errors import Diagnostic, Severity, SourceLocation

if TYPE_CHECKING:
    from markdown_it.token import Token

# Anki's media sync refuses files over 100 MiB (rslib's MAX_INDIVIDUAL_MEDIA_FILE_SIZE): such
# a file stays on the computer that imported the deck.
SYNC_LIMIT = 100 * 1024 * 1024
# Above this an image costs every sync and every phone that downloads and decodes it more
# than a card needs: a photo for a card is rarely more than 1 MiB.
LARGE_MEDIA = 10 * 1024 * 1024

_TYPE_NAMES = {
    ".png": "PNG", ".apng": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG",
    ".jfif": "JPEG", ".gif": "GIF", ".webp": "WebP", ".bmp": "BMP", ".avif": "AVIF",
    ".ico": "ICO", ".svg": "SVG",
    ".mp3": "MPEG audio", ".aac": "MPEG audio", ".wav": "WAV", ".ogg": "Ogg", ".oga": "Ogg",
    ".opus": "Ogg", ".flac": "FLAC", ".m4a": "MP4", ".mp4": "MP4", ".3gp": "MP4",
    ".webm": "WebM",
}  # fmt: skip
_SVG_ROOT = re.compile(rb"\A(?:\s|<\?xml[^>]*>|<!--.*?-->|<!DOCTYPE[^>]*>)*<svg[\s>/]", re.S)
# In an <img> a browser runs none of this, but the file lands in the user's media folder and
# on AnkiWeb, where it may be opened on its own.
_SVG_ACTIVE = re.compile(
    rb"<script|<foreignObject|<!ENTITY|\son[a-z]+\s*=|javascript:|<iframe|<embed|<object",
    re.I,
)


@dataclass(frozen=True, slots=True)
class MediaFile:
    """An image or sound to ship in the package."""

    path: Path  # on disk
    name: str  # in the package and in the field


def resolve_images(
    tokens: Sequence[Token], markdown_file: Path, root: Path
) -> tuple[dict[str, MediaFile], list[Diagnostic]]:
    """Find the images and sounds in `tokens`; map each, keyed by `embeds.media_key`, to its
    media file, and say why each of the others does not ship."""
    found: dict[str, MediaFile] = {}
    problems: list[Diagnostic] = []
    refused: set[str] = set()
    for key, kind, line in _references(tokens):
        if key in found or key in refused:
            continue
        location = SourceLocation(markdown_file, line)
        if kind == "image" and urlsplit(key).scheme.lower() in ("http", "https"):
            problems.append(
                Diagnostic(
                    location,
                    f"remote image {key} is kept as a link; it will not show offline "
                    "(download it next to the Markdown file to ship it in the deck)",
                    Severity.WARNING,
                )
            )
            continue
        if kind == "image" and urlsplit(key).scheme.lower() == "data":
            continue
        media, problem = _resolve(key, kind, markdown_file, root)
        if media is None:
            refused.add(key)
            problems.append(Diagnostic(location, problem, Severity.WARNING))
            continue
        found[key] = media
        if problem:
            problems.append(Diagnostic(location, problem, Severity.WARNING))
    return found, problems


def _references(tokens: Sequence[Token]) -> Iterator[tuple[str, str, int]]:
    """(key, "image" | "embed" | "sound", line) of each file the tokens show or play."""
    line = 1
    for token in tokens:
        if token.map:
            line = token.map[0] + 1
        if token.type == "html_block":
            yield from ((src, "image", line) for src in _html_image_sources(token.content))
        for child in token.children or ():
            if child.type == "html_inline":
                yield from ((src, "image", line) for src in _html_image_sources(child.content))
                continue
            key = media_key(child)
            if key is None:
                continue
            if child.type == EMBED:
                target = str(child.meta["target"])
                if is_image(target) or is_audio(target):
                    yield key, "embed", line
            else:
                yield key, "sound" if child.type == SOUND else "image", line


def _resolve(key: str, kind: str, markdown_file: Path, root: Path) -> tuple[MediaFile | None, str]:
    """The media file for `key`, and a warning; or None and why it does not ship."""
    if kind == "embed":
        written = key.removeprefix("![[").removesuffix("]]")
        what = "image" if is_image(written) else "sound"
        real = _obsidian_file(written, markdown_file, root)
        if real is None:
            return None, f"{what} {key} not found (looked beside the file and in {root})"
    else:
        what = kind
        written = key.removeprefix("[sound:").removesuffix("]") if kind == "sound" else key
        relative = written if kind == "sound" else unquote(urlsplit(written).path)
        if not relative or os.path.isabs(relative) or (kind == "image" and urlsplit(key).scheme):
            return None, (
                f"{what} {written} is not a relative path; put it inside the source folder and "
                "refer to it relative to the Markdown file"
            )
        real = Path(os.path.realpath(markdown_file.parent / relative))
        if not real.is_relative_to(os.path.realpath(root)):
            return None, (
                f"{what} {written} is outside the source folder {root}; refused (move it inside)"
            )
    return _checked(real, written, what)


def _checked(real: Path, written: str, what: str) -> tuple[MediaFile | None, str]:
    suffix = real.suffix.lower()
    expected = _TYPE_NAMES.get(suffix)
    wanted = is_image(real.name) if what == "image" else is_audio(real.name)
    if expected is None or not wanted:
        kinds = "png, jpeg, gif, webp, svg, bmp, avif" if what == "image" else "mp3, ogg, wav"
        return None, f"{what} {written} is not of a type Anki shows ({kinds}...); not shipped"
    try:
        size = real.stat().st_size
        with real.open("rb") as stream:
            head = stream.read(1024 * 1024 if suffix == ".svg" else 64)
            if suffix == ".svg":
                head += stream.read()
            stream.seek(0)
            digest = hashlib.file_digest(stream, "sha256").hexdigest()[:20]
    except FileNotFoundError:
        return None, f"{what} {written} not found (looked for {real})"
    except OSError as exc:
        return None, f"{what} {written} cannot be read: {exc.strerror}"
    actual = _sniff(head)
    if actual is None:
        return None, (
            f"{what} {written} is not a {expected} file as its name says (its bytes are not "
            f"{'an image' if what == 'image' else 'a sound'}); not shipped"
        )
    if actual != expected:
        return None, (
            f"{what} {written} holds {actual} data, not {expected} as its name says; "
            "not shipped (rename it)"
        )
    if actual == "SVG" and _SVG_ACTIVE.search(head):
        return None, f"image {written} is an SVG with scripts or embedded content; refused"
    warning = ""
    if size > SYNC_LIMIT:
        warning = (
            f"{what} {written} is {size / 2**20:.0f} MiB; Anki's media sync refuses files over "
            f"{SYNC_LIMIT // 2**20} MiB, so it will not reach AnkiWeb or a phone (shrink it)"
        )
    elif size > LARGE_MEDIA:
        warning = (
            f"{what} {written} is {size / 2**20:.0f} MiB; files over {LARGE_MEDIA // 2**20} MiB "
            "slow every sync and load slowly on phones (shrink it)"
        )
    return MediaFile(real, f"{digest}{suffix}"), warning


def _sniff(head: bytes) -> str | None:
    """The kind of image or sound the first bytes of a file say it is."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF":
        return {b"WEBP": "WebP", b"WAVE": "WAV"}.get(head[8:12])
    if head[:2] == b"BM":
        return "BMP"
    if head[4:8] == b"ftyp":
        box = head[8 : int.from_bytes(head[:4], "big")]
        return "AVIF" if b"avif" in box or b"avis" in box else "MP4"
    if head[:4] == b"\0\0\1\0":
        return "ICO"
    if head[:4] == b"OggS":
        return "Ogg"
    if head[:4] == b"fLaC":
        return "FLAC"
    if head[:4] == b"\x1aE\xdf\xa3":
        return "WebM"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0):
        return "MPEG audio"  # MP3 or AAC: the same frame sync, often behind an ID3 tag
    if _SVG_ROOT.match(head.removeprefix(b"\xef\xbb\xbf")):
        return "SVG"
    return None


def _obsidian_file(written: str, markdown_file: Path, root: Path) -> Path | None:
    """Find an embed as Obsidian does: beside the note, from the vault's root, then by name
    anywhere in the vault (the shortest path wins)."""
    vault = Path(os.path.realpath(root))
    for base in (markdown_file.parent, root):
        real = Path(os.path.realpath(base / written))
        if real.is_relative_to(vault) and real.is_file():
            return real
    return _find_by_name(vault, PurePosixPath(written))


# Each vault's files by name, listed once per process and again when a name is not found in
# the list (a file added since, in `build --watch`).
_VAULTS: dict[Path, dict[str, tuple[Path, ...]]] = {}


def _find_by_name(vault: Path, wanted: PurePosixPath) -> Path | None:
    files = _VAULTS.get(vault)
    listed_now = files is None
    while True:
        if files is None:
            files = _VAULTS[vault] = _list_vault(vault)
        candidates = [
            path
            for path in files.get(wanted.name, ())
            if PurePosixPath(path.relative_to(vault).as_posix()).match(str(wanted))
        ]
        best = min(candidates, key=lambda p: (len(p.parts), str(p)), default=None)
        if best is not None and best.is_file():
            return best
        if listed_now:
            return None
        files, listed_now = None, True


def _list_vault(vault: Path) -> dict[str, tuple[Path, ...]]:
    files: dict[str, list[Path]] = {}
    for folder, folders, names in os.walk(vault):
        folders[:] = sorted(f for f in folders if not f.startswith("."))  # .obsidian, .git
        for name in names:
            files.setdefault(name, []).append(Path(folder) / name)
    return {name: tuple(paths) for name, paths in files.items()}


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
