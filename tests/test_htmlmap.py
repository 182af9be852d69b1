"""Mapping a field edited in Anki back onto its Markdown, as text, on strings."""

from __future__ import annotations

import pytest

from anki_genai.sync.htmlmap import Replacement, Unmappable, map_edit, same_html, suggestion


def _apply(source: str, replacements: list[Replacement] | Unmappable) -> str:
    assert not isinstance(replacements, Unmappable), replacements
    for r in sorted(replacements, key=lambda r: r.start, reverse=True):
        source = source[: r.start] + r.text + source[r.end :]
    return source


@pytest.mark.parametrize(
    ("source", "sent", "anki", "expected"),
    [
        (
            "**答案：** TCP 是面向连接的协议。\n",
            "TCP 是面向连接的协议。",
            "TCP 是面向连接的可靠协议。",
            "**答案：** TCP 是面向连接的可靠协议。\n",
        ),
        (
            "- *一* 二\n- 三 四\n",
            "<ul>\n<li><em>一</em> 二</li>\n<li>三 四</li>\n</ul>",
            "<ul><li><em>一</em> 二</li><li>三 五</li></ul>",
            "- *一* 二\n- 三 五\n",
        ),
        (
            "Use `len(x)` here.\n",
            "Use <code>len(x)</code> here.",
            "Use <code>len(x)*2</code> here.",
            "Use `len(x)*2` here.\n",
        ),
        (
            "a b\n",
            "a b",
            "a b *not emphasis*",
            "a b \\*not emphasis\\*\n",
        ),
    ],
    ids=["a word added", "a list item, serialised by a browser", "inline code", "escaped"],
)
def test_a_text_edit_lands_on_the_markdown_it_came_from(
    source: str, sent: str, anki: str, expected: str
) -> None:
    """Only the changed text is replaced; the Markdown around it stays as written."""
    assert _apply(source, map_edit(source, sent, anki)) == expected


def test_text_found_twice_is_not_guessed() -> None:
    """An edit whose text occurs twice in the pair, with nothing to tell them apart, is
    reported rather than applied to one of them."""
    source = "问 x\n\n答 x\n"
    assert isinstance(map_edit(source, "x", "y"), Unmappable)


def test_serialisations_of_the_same_field_are_the_same_html() -> None:
    """Attribute order, entities, void tags and no-break spaces do not count as edits."""
    assert same_html('<a href="x" title="t">A&amp;B</a><br/>', "<a title=t href=x>A&B</a><br>")
    assert same_html("a&nbsp;b", "a b")
    assert not same_html("<b>a</b>", "a")


def test_the_suggestion_keeps_math_and_code_as_markdown() -> None:
    """markdownify's conversion, with MathJax turned back into dollars and the code's language."""
    field = (
        '<p>平均 \\(O(n_1)\\)</p><div class="math">\\[x_2\\]</div>'
        '<pre class="highlight"><code class="language-go">x := 1\n</code></pre>'
    )
    assert suggestion(field) == "平均 $O(n_1)$\n\n$$x_2$$\n\n```go\nx := 1\n```"
