"""What reaches a card from hostile or broken notes: math that cannot make a link, media that
ship only when they are what their names say, Obsidian embeds found as Obsidian finds them.
The Markdown is tests/fixtures/hostile.md."""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from anki_genai.apkg.notetype import note_type_css
from anki_genai.media import LARGE_MEDIA, SYNC_LIMIT
from anki_genai.parse import markdown_parser
from anki_genai.preview import card_sides
from anki_genai.render import Renderer
from tests.browser import measured, run_page
from tests.conftest import FIXTURES, REPO, AnkiCollection, run_cli

DIAGRAM = b"\x89PNG\r\n\x1a\na diagram"
BELL = b"ID3\x04\x00 a bell"
# The MathJax Anki ships (its package.json asks for ^3.1.2; 3.2.2 is the last 3.x), and the
# configuration of Anki's ts/mathjax/index.ts.
MATHJAX_VERSION = "3.2.2"
_ANKI_MATHJAX_PACKAGES = [
    "action", "ams", "autoload", "configmacros", "mathtools", "mhchem", "newcommand",
    "noundefined", "require",
]  # fmt: skip


def _name(content: bytes, suffix: str) -> str:
    return hashlib.sha256(content).hexdigest()[:20] + suffix


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    """A source folder: hostile.md, a text file named img/pic.png, an Obsidian attachment
    in another folder and a sound beside the note."""
    source = tmp_path / "source"
    for folder in ("notes/img", "notes/audio", "attachments"):
        (source / folder).mkdir(parents=True)
    shutil.copy(FIXTURES / "hostile.md", source / "notes" / "hostile.md")
    (source / "notes" / "img" / "pic.png").write_text("not a picture", encoding="utf-8")
    (source / "attachments" / "diagram.png").write_bytes(DIAGRAM)
    (source / "notes" / "audio" / "bell.mp3").write_bytes(BELL)
    return source


def test_each_refused_or_missing_file_and_each_link_in_math_is_a_warning_at_its_line(
    hostile: Path,
) -> None:
    """Each warning names the file and line and says what happened to the file or TeX."""
    result = run_cli("check", hostile)
    note = hostile / "notes" / "hostile.md"
    link = (
        "warning: math uses \\href, which Anki's MathJax would turn into a link, an attribute "
        "or CSS on the card; removed (its text is kept)"
    )
    expected = [
        f"{note}:7: {link}",
        f"{note}:11: {link}",
        f"{note}:15: warning: image img/pic.png is not a PNG file as its name says (its bytes "
        "are not an image); not shipped",
        f"{note}:15: warning: image img/gone.png not found (looked for "
        f"{note.parent / 'img' / 'gone.png'})",
        f"{note}:15: warning: image ![[nowhere.png]] not found (looked beside the file and in "
        f"{hostile})",
        f"{note}:19: warning: sound ../../../etc/passwd is outside the source folder {hostile}; "
        "refused (move it inside)",
    ]
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if ": warning: " in line]
    assert warnings == expected


def test_what_ships_reaches_anki_and_what_does_not_leaves_only_text(
    hostile: Path, anki: AnkiCollection
) -> None:
    """Anki's media folder holds the embed and the sound under their content names; its own
    media check finds no reference to a missing file, and only the shipped sound plays."""
    package = hostile.parent / "build" / "hostile.apkg"
    assert run_cli("build", hostile, "-o", package).exit_code == 0
    anki.import_package(package)
    diagram, bell = _name(DIAGRAM, ".png"), _name(BELL, ".mp3")
    media_folder = Path(anki.col.media.dir())
    assert sorted(os.listdir(media_folder)) == sorted([diagram, bell])
    assert (media_folder / diagram).read_bytes() == DIAGRAM
    assert (media_folder / bell).read_bytes() == BELL
    check = anki.col.media.check()
    assert (list(check.missing), list(check.unused)) == ([], [])

    answers = {_text(f["Question"]): f["Answer"] for f in anki.notes().values()}
    assert answers["图片？"] == (
        f'说明 不见了 <img src="{diagram}" alt="diagram.png" width="300"> nowhere.png'
    )
    assert answers["声音？"] == f"[sound:{bell}] &#91;sound:../../../etc/passwd]"
    assert answers["链接到 别处？"] == "见 另一篇笔记 &gt; 小节。"
    assert answers["点这个公式？"] == r"公式 \({点我}\) 不是链接。"
    contexts = {f["Context"] for f in anki.notes().values()}
    assert contexts == {
        "章节 \\(\\\u200bhref{javascript:void(document.body.dataset.ran='context')}{标题}\\)"
    }
    sound_card = next(
        anki.col.get_card(c) for c in anki.col.find_cards("") if "声音" in _card_question(anki, c)
    )
    assert [tag.filename for tag in sound_card.answer_av_tags()] == [bell]  # type: ignore[attr-defined]


def test_tex_in_escaped_text_reaches_mathjax_without_its_link_command() -> None:
    """`\\\\(…\\\\)` in Markdown is text to Markdown but math to Anki: its `\\href` gets a
    zero-width space, so MathJax knows no such command; code keeps its TeX as written."""
    renderer = Renderer(markdown_parser())
    env: dict[str, object] = {}
    text = r"\\(\href{javascript:alert(1)}{x}\\) `\href{a}{b}`"
    field = renderer.render(renderer.md.parse(text, env), env)
    assert field == "\\(\\\u200bhref{javascript:alert(1)}{x}\\) <code>\\href{a}{b}</code>"


@pytest.mark.parametrize(
    ("size", "message"),
    [
        (
            LARGE_MEDIA + 1,
            "warning: image big.png is 10 MiB; files over 10 MiB slow every sync and load "
            "slowly on phones (shrink it)",
        ),
        (
            SYNC_LIMIT + 1,
            "warning: image big.png is 100 MiB; Anki's media sync refuses files over 100 MiB, "
            "so it will not reach AnkiWeb or a phone (shrink it)",
        ),
    ],
    ids=["large", "over the sync limit"],
)
def test_a_large_image_ships_with_a_warning(tmp_path: Path, size: int, message: str) -> None:
    """Above 10 MiB an image is slow on phones; above 100 MiB Anki's sync refuses it."""
    source = tmp_path / "source"
    source.mkdir()
    with (source / "big.png").open("wb") as image:
        image.write(b"\x89PNG\r\n\x1a\n")
        image.truncate(size)  # sparse: no 100 MiB written to the disk
    note = source / "big.md"
    note.write_text("**题目：** 大图？\n\n**答案：** ![大](big.png)\n", encoding="utf-8")
    result = run_cli("build", source, "-o", tmp_path / "build")
    assert result.exit_code == 0, result.output
    assert f"{note}:3: {message}" in result.stderr.splitlines()
    (package,) = (tmp_path / "build").glob("*.apkg")
    assert package.stat().st_size > 0


@pytest.fixture(scope="session")
def mathjax() -> Path:
    """MathJax's `tex-chtml-full.js`, as Anki ships it, from the npm registry once into
    build/ (skipped when the registry cannot be reached)."""
    folder = REPO / "build" / f"mathjax-{MATHJAX_VERSION}"
    script = folder / "es5" / "tex-chtml-full.js"
    if script.exists():
        return script
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: cannot fetch MathJax")
    with tempfile.TemporaryDirectory(dir=REPO / "build") as scratch:
        done = subprocess.run(
            [npm, "pack", f"mathjax@{MATHJAX_VERSION}", "--pack-destination", scratch],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"the npm registry cannot be reached: {done.stderr.strip()[-200:]}")
        (tarball,) = Path(scratch).glob("mathjax-*.tgz")
        with tarfile.open(tarball) as archive:
            archive.extractall(scratch, filter="data")
        os.replace(Path(scratch) / "package", folder)  # whole or not at all
    return script


def test_math_typeset_by_anki_mathjax_has_no_javascript_link_and_clicking_does_nothing(
    hostile: Path, anki: AnkiCollection, mathjax: Path, tmp_path: Path
) -> None:
    """Every card, typeset in Chromium by the MathJax Anki uses with Anki's configuration,
    holds no link or attribute with a javascript:, data: or vbscript: target, and clicking
    every part of its math runs nothing; the same TeX written straight into the page does
    make a live link (so the test can fail)."""
    package = hostile.parent / "build" / "hostile.apkg"
    assert run_cli("build", hostile, "-o", package).exit_code == 0
    anki.import_package(package)
    backs = [card_sides(fields)[1] for fields in anki.notes().values()]
    page = tmp_path / "cards.html"
    page.write_text(_mathjax_page(mathjax, backs), encoding="utf-8")
    dom = run_page(page, 1000, wait_ms=15000)
    found = json.loads(measured(dom, "result"))
    assert found["error"] is None
    assert found["control"] == {"links": 1, "ran": "control"}
    assert found["typeset"] >= 3  # the formula, the escaped TeX and the context's
    assert found["shown"] == 3  # the text of each formula is still shown
    assert found["unsafe"] == []
    assert found["ran"] is None


def _mathjax_page(script: Path, backs: list[str]) -> str:
    cards = "".join(f'<div class="card-under-test">{back}</div>' for back in backs)
    control = r"\(\href{javascript:void(document.body.dataset.ran='control')}{control}\)"
    config = {
        "tex": {
            "displayMath": [["\\[", "\\]"]],
            "processEscapes": False,
            "processEnvironments": False,
            "processRefs": False,
            "packages": ["base", *_ANKI_MATHJAX_PACKAGES],
        },
        "loader": {
            "load": [f"[tex]/{p}" for p in _ANKI_MATHJAX_PACKAGES],
            "paths": {"mathjax": script.parent.as_uri()},
        },
        "startup": {"typeset": False},
    }
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8">
<style>{note_type_css()}</style>
<script>window.MathJax = {json.dumps(config)};</script>
<script src="{html.escape(script.as_uri())}"></script></head>
<body class="card"><div id="cards">{cards}</div><div id="control">{control}</div>
<script>
const unsafe = /^\\s*(javascript|data|vbscript):/i;
const report = (result) => {{ document.body.dataset.result = JSON.stringify(result); }};
// A tap on every part of every formula, as a user's finger would land on it.
const clickAll = async (container) => {{
  for (const el of container.querySelectorAll("mjx-container, mjx-container *")) {{
    el.dispatchEvent(new MouseEvent("click", {{ bubbles: true, cancelable: true, view: window }}));
  }}
  await new Promise((done) => setTimeout(done, 500));
}};
window.addEventListener("load", async () => {{
  const result = {{ error: null }};
  try {{
    await MathJax.startup.promise;
    await MathJax.typesetPromise();
    const control = document.getElementById("control");
    await clickAll(control);
    result.control = {{
      links: control.querySelectorAll("a[href^='javascript:']").length,
      ran: document.body.dataset.ran || null,
    }};
    delete document.body.dataset.ran;
    const cards = document.getElementById("cards");
    const math = [...cards.querySelectorAll("mjx-container")];
    result.typeset = math.length;
    result.shown = ["点我", "这里", "标题"]
      .filter((t) => math.some((m) => m.textContent.includes(t))).length;
    result.unsafe = [...cards.querySelectorAll("*")].flatMap((el) =>
      [...el.attributes].filter((a) => unsafe.test(a.value) || (a.name === "href"
        && !a.value.startsWith("#"))).map((a) => `${{el.tagName}} ${{a.name}}=${{a.value}}`));
    await clickAll(cards);
    result.ran = document.body.dataset.ran || null;
  }} catch (error) {{
    result.error = String(error);
  }}
  report(result);
}});
</script></body></html>"""


def _text(field: str) -> str:
    return re.sub(r"<[^>]+>", "", field)


def _card_question(anki: AnkiCollection, card_id: int) -> str:
    return str(anki.col.get_card(card_id).note()["Question"])  # type: ignore[arg-type]
