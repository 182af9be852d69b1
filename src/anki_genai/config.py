"""`anki-genai.toml`: the options a user would otherwise repeat, validated once on reading.

A file's own settings (deck, tags, layout, marker words) live in its YAML front matter,
which the parser reads with the file.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from anki_genai.errors import ConfigError
from anki_genai.parse import Layout

CONFIG_FILE_NAME = "anki-genai.toml"
_CONFIG_KEYS = {
    "deck": str,
    "layout": str,
    "question_words": list,
    "answer_words": list,
    "encoding": str,
    "encodings": dict,  # glob -> encoding, for the files not in `encoding`
    "output": str,
    "strict": bool,
}


def load_config(root: Path) -> dict[str, object]:
    """Read `anki-genai.toml` in the source folder; {} when there is none."""
    path = root / CONFIG_FILE_NAME
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return {}
    import tomllib  # only when there is a config file to read

    try:
        with handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix or remove it") from None
    for key, value in data.items():
        expected = _CONFIG_KEYS.get(key)
        if expected is None:
            known = ", ".join(sorted(_CONFIG_KEYS))
            raise ConfigError(f"{path}: unknown setting {key!r}; known settings: {known}")
        if not isinstance(value, expected):
            raise ConfigError(f"{path}: {key} must be a {expected.__name__}")
    if "layout" in data and data["layout"] not in {layout.value for layout in Layout}:
        raise ConfigError(f"{path}: layout must be one of markers, headings, bold")
    if "encoding" in data and not is_known_encoding(data["encoding"]):
        raise ConfigError(
            f"{path}: unknown encoding {data['encoding']!r}; use one Python knows, "
            "e.g. utf-8 or gbk"
        )
    for glob, encoding in data.get("encodings", {}).items():
        if not isinstance(encoding, str) or not is_known_encoding(encoding):
            raise ConfigError(
                f"{path}: [encodings] {glob!r}: unknown encoding {encoding!r}; use one Python "
                "knows, e.g. gbk"
            )
    return {
        k: tuple(v.items()) if isinstance(v, dict) else tuple(v) if isinstance(v, list) else v
        for k, v in data.items()
    }


def is_known_encoding(name: str) -> bool:
    """True when Python can decode text in the encoding called `name`."""
    try:
        codecs.lookup(name)
    except LookupError:
        return False
    return True
