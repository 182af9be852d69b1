"""Reading a Markdown source's bytes and decoding them: UTF-8 (a BOM allowed), the encoding
asked for, or a clear error naming the encoding the file is likely in."""

from __future__ import annotations

import codecs
import os
import stat
from pathlib import Path

from anki_genai.errors import SourceError, SourceLocation

__all__ = ["decode_source", "read_bytes", "read_source"]


def read_source(path: Path, encoding: str = "utf-8") -> str:
    """Read a Markdown file; UTF-8 may start with a BOM."""
    return decode_source(read_bytes(path), path, encoding)


def read_bytes(path: Path) -> bytes:
    """A source file's bytes; never waits, even if it became a FIFO since it was found."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with open(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise SourceError("not a regular file; name only Markdown files", path)
            return handle.read()
    except OSError as exc:
        raise SourceError(
            f"cannot read the file: {exc.strerror}", SourceLocation(path, 1)
        ) from None


# Byte order marks, UTF-32's first: its little-endian mark starts with UTF-16's.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# What older notes are often saved in, for the hint when a file does not decode. Big5 and
# Shift-JIS bytes nearly always decode as GBK too, as nonsense, so GBK is named first only
# for text that GB2312's common characters spell; UTF-16 without a mark decodes almost
# anything, so it is named only for text with NULs beside its ASCII characters.
_COMMON_ENCODINGS = ("big5", "shift_jis", "gbk", "gb18030")


def decode_source(data: bytes, path: Path, encoding: str = "utf-8") -> str:
    """Decode a Markdown file's bytes, naming the line and the fix when they do not decode.

    A byte order mark (UTF-8, UTF-16 or UTF-32) says the encoding, whatever `encoding` is.
    """
    codec = next((c for bom, c in _BOMS if data.startswith(bom)), None)
    if codec is None:
        codec = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
    named = codec if codec != "utf-8-sig" else "utf-8"
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SourceError(_undecodable(data, named), SourceLocation(path, line)) from None
    nul = text.find("\x00")
    if nul != -1:
        # Valid, but not text: UTF-16 of ASCII without a byte order mark, or a binary file;
        # Markdown would show each NUL as a replacement character.
        line = text.count("\n", 0, nul) + 1
        likely = _likely_encoding(data)
        message = (
            _undecodable(data, named)
            if likely is not None and likely.startswith("utf-16")
            else "holds a NUL byte, which is not text: remove it (is this a binary file?)"
        )
        raise SourceError(message, SourceLocation(path, line))
    return text


def _undecodable(data: bytes, encoding: str) -> str:
    """What to say about text that is not valid `encoding`: the encoding it decodes as."""
    likely = _likely_encoding(data)
    if likely is None:
        return (
            f"not valid {encoding}, nor gbk, big5, shift_jis or utf-16; find out how it was "
            "saved and name that with --encoding, or convert it to UTF-8"
        )
    return (
        f"not valid {encoding}; it reads as {likely}: convert it "
        f"(`iconv -f {likely} -t utf-8 FILE > NEW.md`) or name its encoding with "
        f"--encoding {likely} (or per file, in anki-genai.toml's [encodings])"
    )


def _likely_encoding(data: bytes) -> str | None:
    # UTF-16 puts a NUL beside every ASCII character, on one side.
    odd, even = data[1::2].count(0), data[0::2].count(0)
    if (
        len(data) % 2 == 0
        and max(odd, even) >= len(data) // 16
        and min(odd, even) * 4 < max(odd, even)
    ):
        return "utf-16-le" if odd > even else "utf-16-be"
    gbk = _decoded(data, "gbk")
    if gbk is not None and _mostly_common_chinese(gbk):
        return "gbk"
    return next((c for c in _COMMON_ENCODINGS if _decoded(data, c) is not None), None)


def _mostly_common_chinese(text: str) -> bool:
    wide = [ch for ch in text if ord(ch) > 127]
    common = sum(1 for ch in wide if _decoded(ch.encode("gb2312", "ignore"), "gb2312") == ch)
    return common >= 0.95 * len(wide)


def _decoded(data: bytes, encoding: str) -> str | None:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return None
