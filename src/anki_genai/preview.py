"""Cards as Anki shows them: the note type's templates filled in, as standalone HTML.

The preview page works offline and loads nothing: images are embedded, and math is typeset
here, as MathML, where Anki would run MathJax.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from anki_genai.apkg import notetype
from anki_genai.atomic import atomic_write
from anki_genai.cards import Card
from anki_genai.errors import write_error

# What Anki's MathJax typesets: \(…\) and \[…\], but not inside code, as MathJax skips it.
_MATH = re.compile(r"\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)
_CODE = re.compile(r"(<pre\b.*?</pre>|<code\b.*?</code>)", re.DOTALL | re.IGNORECASE)
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
    front = fill_template(notetype.FRONT_TEMPLATE, fields)
    back = fill_template(notetype.BACK_TEMPLATE, {**fields, "FrontSide": front})
    return front, back


def typeset_math(side_html: str) -> str:
    """Replace the MathJax delimiters of a card's HTML with MathML that browsers show."""
    parts = _CODE.split(side_html)  # the code is at odd indices
    return "".join(part if i % 2 else _MATH.sub(_mathml, part) for i, part in enumerate(parts))


def _mathml(match: re.Match[str]) -> str:
    # Slow to import (0.16 s), and only a preview with math needs it.
    from latex2mathml.converter import convert

    inline = match.group(1) is not None
    tex = html.unescape(match.group(1) if inline else match.group(2))
    try:
        return convert(tex, display="inline" if inline else "block")
    except Exception:  # its errors share no base class; the TeX is then shown as written
        return match.group(0)


def card_page(side_html: str, night: bool = False, title: str = "card") -> str:
    """Return a page that shows one side of a card with the note type's CSS, as on a phone."""
    body_class = "card nightMode night_mode" if night else "card"
    return f"""<!DOCTYPE html>
<html lang="zh"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{notetype.note_type_css()}</style></head>
<body class="{body_class}">{side_html}</body></html>
"""


def write_preview(cards: Sequence[Card], output: Path) -> None:
    """Write one self-contained page with every card's front and back, grouped by deck."""
    decks: dict[str, list[Card]] = {}
    for card in cards:
        decks.setdefault(card.deck, []).append(card)
    sections = []
    for deck, deck_cards in sorted(decks.items()):
        articles = "\n".join(_preview_card(card) for card in deck_cards)
        sections.append(
            f'<section class="deck"><h2 class="deck-name">{html.escape(deck)} '
            f"<small>({len(deck_cards)})</small></h2>\n{articles}\n</section>"
        )
    page = _PREVIEW_PAGE.format(
        css=notetype.note_type_css(),
        count=len(cards),
        decks="\n".join(sections) or "<p>No cards.</p>",
    )
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(output, lambda handle: handle.write(page))
    except OSError as exc:
        raise write_error(output, exc, "the preview page", "choose another place with -o") from None


def open_in_browser(page: Path) -> bool:
    """Show `page` in the user's web browser; False if no browser could be started."""
    import webbrowser  # only for `preview --open`

    try:
        return webbrowser.open(page.resolve().as_uri())
    except webbrowser.Error:
        return False


def _preview_card(card: Card) -> str:
    fields = dict(zip(notetype.FIELD_NAMES, card.fields(), strict=True))
    front, back = (typeset_math(side) for side in card_sides(fields))
    for media in card.media:
        uri = _data_uri(media.path)
        front = front.replace(f'src="{media.name}"', f'src="{uri}"')
        back = back.replace(f'src="{media.name}"', f'src="{uri}"')
    return (
        f'<article class="preview-card" id="{html.escape(card.source, quote=True)}">'
        f'<div class="side"><div class="label">正面 Front</div><div class="card">{front}</div>'
        "</div>"
        f'<div class="side"><div class="label">背面 Back</div><div class="card">{back}</div>'
        "</div>"
        "</article>"
    )


def _data_uri(path: Path) -> str:
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode()}"


_PREVIEW_PAGE = """<!DOCTYPE html>
<html lang="zh"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>anki-genai preview</title>
<style>
{css}
body {{ margin: 0; font-family: system-ui, sans-serif; background: #eef0f3; }}
/* color-scheme: the browser's own controls (search box, button, scroll bars) turn dark too */
body.nightMode {{ background: #111; color: #ddd; color-scheme: dark; }}
header {{ position: sticky; top: 0; z-index: 1; display: flex; gap: 12px; align-items: center;
  padding: 10px 16px; background: #fff; border-bottom: 1px solid #ccc; flex-wrap: wrap; }}
body.nightMode header {{ background: #222; border-color: #444; }}
#search {{ flex: 1; min-width: 10em; padding: 6px 10px; font-size: 16px; }}
body.nightMode #search, body.nightMode #night-toggle {{ background: #2a2f36; color: #e6edf3;
  border: 1px solid #545d68; }}
.deck[hidden] {{ display: none; }}
.deck {{ padding: 8px 16px; }}
.preview-card {{ display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0; }}
.preview-card[hidden] {{ display: none; }}
.side {{ flex: 1 1 320px; min-width: 0; }}
.side .card {{ border-radius: 8px; padding: 16px; box-shadow: 0 1px 3px rgba(0,0,0,.2); }}
.label {{ font-size: 12px; color: #888; margin-bottom: 4px; }}
</style></head>
<body>
<header><strong>anki-genai</strong> <span id="shown">{count}</span>/{count}
<input id="search" type="search" placeholder="搜索 Search">
<button id="night-toggle" type="button">夜间 Night</button></header>
<main>
{decks}
</main>
<script>
const cards = [...document.querySelectorAll(".preview-card")];
const search = document.getElementById("search");
function filter() {{
  const query = search.value.trim().toLowerCase();
  let shown = 0;
  for (const card of cards) {{
    card.hidden = query !== "" && !card.textContent.toLowerCase().includes(query);
    if (!card.hidden) shown += 1;
  }}
  // A deck none of whose cards match goes too, heading and all.
  for (const deck of document.querySelectorAll(".deck")) {{
    deck.hidden = !deck.querySelector(".preview-card:not([hidden])");
  }}
  document.body.dataset.decks = document.querySelectorAll(".deck:not([hidden])").length;
  document.getElementById("shown").textContent = shown;
  document.body.dataset.shown = shown;
}}
function setNight(night) {{
  document.body.classList.toggle("nightMode", night);
  document.body.classList.toggle("night_mode", night);
  document.body.dataset.night = night;
}}
search.addEventListener("input", filter);
document.getElementById("night-toggle").addEventListener("click",
  () => setNight(!document.body.classList.contains("nightMode")));
// Links such as preview.html#night&q=TCP open the page in that state.
const hash = new URLSearchParams(location.hash.slice(1));
if (hash.has("night")) document.getElementById("night-toggle").click();
if (hash.has("q")) {{ search.value = hash.get("q"); search.dispatchEvent(new Event("input")); }}
filter();
</script>
</body></html>
"""
