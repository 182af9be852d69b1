"""Cards measured in a real browser at phone and desktop widths, light and night, as Anki
shows them: tables scroll, code reads, Latin text is set in a Latin face."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from anki_genai.apkg.notetype import note_type_css
from anki_genai.preview import card_page, card_sides
from tests.browser import measured, run_page
from tests.conftest import FIXTURES, REPO, AnkiCollection, run_cli

# Runs inside each card's frame once it has loaded; the numbers are what a user would see.
_MEASURE = r"""
function measure(doc) {
  const win = doc.defaultView;
  const style = (el) => win.getComputedStyle(el);
  const em = (el) => parseFloat(style(el).fontSize);
  const width = (node, start, end) => {
    const range = doc.createRange();
    range.setStart(node, start);
    range.setEnd(node, end);
    return range.getBoundingClientRect().width;
  };
  const textNodes = [];
  const walker = doc.createTreeWalker(doc.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) textNodes.push(walker.currentNode);
  const find = (text) => textNodes.find((node) => node.data.includes(text));
  const cells = [...doc.querySelectorAll("td, th")];
  // The width a cell's words get: its content box, without padding.
  const textWidth = (c) => c.clientWidth - parseFloat(style(c).paddingLeft)
    - parseFloat(style(c).paddingRight);
  const result = {
    scrollWidth: doc.documentElement.scrollWidth,
    clientWidth: doc.documentElement.clientWidth,
    narrowestCellEm: cells.length
      ? Math.min(...cells.map((c) => textWidth(c) / em(c))) : null,
    tables: [...doc.querySelectorAll("table")].map((table) => ({
      scrolls: table.scrollWidth > table.clientWidth,
      overflowX: style(table).overflowX,
    })),
    pre: [...doc.querySelectorAll("pre")].map((pre) => ({
      own: style(pre).backgroundColor,
      inside: [...new Set([...pre.querySelectorAll("*")].map((e) => style(e).backgroundColor)
        .filter((c) => c !== "rgba(0, 0, 0, 0)"))],
      tabSize: style(pre).tabSize,
    })),
    inlineCode: [...doc.querySelectorAll("code")].filter((c) => !c.closest("pre"))
      .map((c) => style(c).backgroundColor),
    kbd: [...doc.querySelectorAll("kbd")].map((k) => ({
      border: style(k).borderBottomWidth, shadow: style(k).boxShadow,
      background: style(k).backgroundColor,
    })),
  };
  const tabs = textNodes.find((node) => node.data === "\t\t\t");
  const space = textNodes.find((node) => node.data === " " && node.parentElement.closest("pre"));
  if (tabs && space) {
    // Three tabs at the start of a line: how far the third indent reaches, in pixels and
    // in columns of the code.
    result.indentPx = width(tabs, 0, 3);
    result.tabColumns = result.indentPx / width(space, 0, 1);
  }
  const dall = find("DALL·E");
  if (dall) {
    const at = dall.data.indexOf("DALL·E");
    result.dotEm = width(dall, at + 4, at + 5) / em(dall.parentElement);
    result.dotFamily = style(dall.parentElement).fontFamily;
  }
  const cjk = find("并发");
  if (cjk) result.cjkEm = width(cjk, cjk.data.indexOf("并"), cjk.data.indexOf("并") + 1)
    / em(cjk.parentElement);
  return result;
}
window.addEventListener("load", () => {
  const frames = [...document.querySelectorAll("iframe")];
  document.body.dataset.cards = JSON.stringify(frames.map((f) => measure(f.contentDocument)));
});
"""


def framed_cards(pages: list[str], width: int) -> str:
    """Each card page in its own frame `width` pixels wide (headless Chromium will not open
    a window narrower than 500 px), measured once loaded."""
    frames = "".join(
        f'<iframe srcdoc="{html.escape(page, quote=True)}"></iframe>' for page in pages
    )
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8">
<style>body {{ margin: 0 }} iframe {{ border: 0; width: {width}px; height: 1100px;
display: block }}</style></head><body>{frames}<script>{_MEASURE}</script></body></html>"""


@pytest.fixture(scope="module")
def backs(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, Path]]:
    """The backs of the phone fixture's cards as Anki stores them, with its media folder."""
    pytest.importorskip("anki")
    tmp = tmp_path_factory.mktemp("phone")
    source = tmp / "source"
    source.mkdir()
    shutil.copy(FIXTURES / "phone.md", source / "phone.md")
    result = run_cli("build", source, "-o", tmp / "build" / "phone.apkg")
    assert result.exit_code == 0, result.output
    anki = AnkiCollection(tmp / "collection.anki2")
    try:
        anki.import_package(tmp / "build" / "phone.apkg")
        notes = sorted(anki.notes().values(), key=lambda f: int(f["Source"].rsplit(":", 1)[1]))
        media = Path(anki.col.media.dir())
        return [(card_sides(fields)[1], media) for fields in notes]
    finally:
        anki.close()


CASES = [(360, False), (360, True), (1000, False), (1000, True)]
IDS = ["phone", "phone-night", "desktop", "desktop-night"]


def _measure(
    backs: list[tuple[str, Path]], tmp_path: Path, width: int, night: bool
) -> list[dict[str, Any]]:
    pages = [
        card_page(back, night=night).replace("<head>", f'<head><base href="{media.as_uri()}/">')
        for back, media in backs
    ]
    page = tmp_path / "cards.html"
    page.write_text(framed_cards(pages, width), encoding="utf-8")
    mode = "night" if night else "light"
    shot = REPO / "build" / "screenshots" / f"phone-{width}-{mode}.png"
    dom = run_page(page, max(width, 500), height=1100 * len(pages), screenshot=shot)
    cards: list[dict[str, Any]] = json.loads(measured(dom, "cards"))
    _record(f"cards-{width}-{mode}", cards)
    return cards


@pytest.mark.parametrize(("width", "night"), CASES, ids=IDS)
def test_cards_measure_well_in_a_real_browser(
    backs: list[tuple[str, Path]], tmp_path: Path, width: int, night: bool
) -> None:
    """No card is wider than the screen, yet table cells keep whole words and scroll in
    their table; code has one background, 4-column tabs; the dot of DALL·E is a Latin one."""
    cards = _measure(backs, tmp_path, width, night)
    table, code, math = cards
    for card in cards:
        assert card["scrollWidth"] <= width == card["clientWidth"], card
    assert table["narrowestCellEm"] >= 2.5
    if width == 360:
        assert table["tables"] == [{"scrolls": True, "overflowX": "auto"}]
    for pre in code["pre"]:
        assert pre["inside"] == [], pre  # no stripes or patches of another colour
        assert pre["tabSize"] == "4"
    assert len({pre["own"] for pre in code["pre"]}) == 1  # Go and Python alike
    assert code["inlineCode"] and set(code["inlineCode"]) != {code["pre"][0]["own"]}
    assert code["tabColumns"] == pytest.approx(12, abs=0.1)
    assert all(k["border"] != "0px" and k["shadow"] != "none" for k in code["kbd"])
    assert len(code["kbd"]) == 2
    # A Latin middle dot is about a quarter of an em; a CJK one is a full em.
    assert math["dotEm"] < 0.5, math
    assert table["cjkEm"] == pytest.approx(1, abs=0.05)


def test_latin_faces_come_before_cjk_faces() -> None:
    """Every platform's Latin face is listed before any CJK face, so Latin letters and
    punctuation never take a CJK glyph where a Latin one exists."""
    css = note_type_css()
    stack = css.split(".card {", 1)[1].split("font-family:", 1)[1].split(";", 1)[0]
    families = [f.strip().strip('"') for f in stack.split(",")]
    cjk = {"PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "Noto Sans CJK SC",
           "Source Han Sans SC", "WenQuanYi Micro Hei"}  # fmt: skip
    latin = {"-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "Noto Sans"}
    first_cjk = min(families.index(f) for f in cjk)
    assert latin <= set(families[:first_cjk]), families
    assert cjk <= set(families)


# Runs in the preview page itself, after its own script has applied the link's state.
_MEASURE_PREVIEW = r"""
window.addEventListener("load", () => {
  const style = (el) => getComputedStyle(el);
  const cells = [...document.querySelectorAll("td, th")].filter((c) => c.offsetParent);
  const fracs = [...document.querySelectorAll("mfrac")].map((f) => {
    const [top, bottom] = [...f.children].map((c) => c.getBoundingClientRect());
    return top.bottom <= bottom.top + 1;  // stacked: typeset, not a line of text
  });
  const search = document.getElementById("search");
  document.body.dataset.preview = JSON.stringify({
    scrollWidth: document.documentElement.scrollWidth,
    rawTex: ["\\(", "\\[", "\\frac"].filter((t) => document.body.innerText.includes(t)),
    math: document.querySelectorAll("math").length,
    mathHeights: [...document.querySelectorAll("math")]
      .map((m) => m.getBoundingClientRect().height),
    fracsStacked: fracs,
    narrowestCellEm: cells.length ? Math.min(...cells.map((c) => (c.clientWidth
      - parseFloat(style(c).paddingLeft) - parseFloat(style(c).paddingRight))
      / parseFloat(style(c).fontSize))) : null,
    searchBackground: style(search).backgroundColor,
    searchColor: style(search).color,
    decks: document.querySelectorAll(".deck").length,
  });
});
"""


def _preview(tmp_path: Path, state: str) -> Path:
    """The preview of the phone fixture and a second deck, opened in `state` (its links'
    `#night&q=…` part), measured once its script has run."""
    source = tmp_path / "source"
    source.mkdir(exist_ok=True)
    shutil.copy(FIXTURES / "phone.md", source / "phone.md")
    (source / "other.md").write_text(
        "# 另一个牌组\n\n**题目：** 与并发无关的问题？\n\n**答案：** 是的。\n", encoding="utf-8"
    )
    page = tmp_path / "preview.html"
    result = run_cli("preview", source, "-o", page)
    assert result.exit_code == 0, result.output
    text = page.read_text(encoding="utf-8").replace(
        "const hash = new URLSearchParams(location.hash.slice(1));",
        f"const hash = new URLSearchParams({json.dumps(state)});",
    )
    page.write_text(text.replace("</body>", f"<script>{_MEASURE_PREVIEW}</script></body>"))
    return page


@pytest.mark.parametrize("night", [False, True], ids=["light", "night"])
def test_preview_typesets_math_offline(tmp_path: Path, night: bool) -> None:
    """With the network blocked, the preview shows typeset math and no raw TeX; at 1000 px
    its tables keep whole words and the page does not scroll sideways."""
    page = _preview(tmp_path, "night" if night else "")
    mode = "night" if night else "light"
    shot = REPO / "build" / "screenshots" / f"preview-math-{mode}.png"
    dom = run_page(page, 1000, height=2400, screenshot=shot, offline=True)
    preview = json.loads(measured(dom, "preview"))
    _record(f"preview-1000-{mode}", preview)
    assert preview["rawTex"] == []
    # The question's formula on the front and again on the back, and the answer's block.
    assert preview["math"] == 3 and all(h > 10 for h in preview["mathHeights"])
    assert preview["fracsStacked"] == [True]
    assert preview["narrowestCellEm"] >= 2.5
    assert preview["scrollWidth"] <= 1000


def test_preview_controls_follow_night_mode_and_filtering_hides_empty_decks(
    tmp_path: Path,
) -> None:
    """At night the search box is dark too; a search that matches one deck's cards leaves
    only that deck's heading."""
    page = _preview(tmp_path, "night&q=goroutine")
    dom = run_page(page, 1000, offline=True)
    preview = json.loads(measured(dom, "preview"))
    _record("preview-1000-night-filtered", preview)
    assert measured(dom, "shown") == "1"
    assert (preview["decks"], measured(dom, "decks")) == (2, "1")
    assert _luminance(preview["searchBackground"]) < 0.2 < _luminance(preview["searchColor"])


def _luminance(css_colour: str) -> float:
    red, green, blue = (int(c) for c in re.findall(r"\d+", css_colour)[:3])
    return (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255


def _record(name: str, numbers: object) -> None:
    """Keep what a run measured, to compare one version of the CSS with another."""
    record = REPO / "build" / "measurements" / f"{name}.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(numbers, indent=1, ensure_ascii=False), encoding="utf-8")
