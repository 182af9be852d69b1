"""Cards as Anki shows them: the note type's templates filled in, as standalone HTML."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping

from anki_genai import package

_SECTION = re.compile(r"\{\{#(\w+)\}\}(.*?)\{\{/\1\}\}", re.DOTALL)
_FIELD = re.compile(r"\{\{(\w+)\}\}")


def fill_template(template: str, fields: Mapping[str, str]) -> str:
    """Fill an Anki template the way Anki does for the syntax our note type uses."""
    shown = _SECTION.sub(
        lambda m: m.group(2) if fields.get(m.group(1), "").strip() else "", template
    )
    return _FIELD.sub(lambda m: fields.get(m.group(1), ""), shown)


def card_sides(fields: Mapping[str, str]) -> tuple[str, str]:
    """Return the front and back HTML of a note's card."""
    front = fill_template(package.FRONT_TEMPLATE, fields)
    back = fill_template(package.BACK_TEMPLATE, {**fields, "FrontSide": front})
    return front, back


def card_page(side_html: str, night: bool = False, title: str = "card") -> str:
    """Return a page that shows one side of a card with the note type's CSS, as on a phone."""
    body_class = "card nightMode night_mode" if night else "card"
    return f"""<!DOCTYPE html>
<html lang="zh"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{package.note_type_css()}</style></head>
<body class="{body_class}">{side_html}</body></html>
"""
