"""The everyday workflow on the command line: check, build reports, config, decks, help."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from anki_genai import workers as workers_module
from anki_genai.cli import main
from tests.conftest import GOOD, AnkiCollection, run_cli

BROKEN = (
    "# 草稿\n\n## A\n\n**题目：** 没有答案？\n\n"
    "## B\n\n**题目：** 图片？\n\n**答案：** ![x](nope.png)\n"
)


def test_check_on_clean_sources_exits_zero(sources: Path) -> None:
    """`check` on sources without problems prints a summary and exits with 0."""
    result = run_cli("check", sources)
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == "1 file, 1 card: 0 errors, 0 warnings\n"


def test_check_reports_every_problem_and_exits_one_on_errors(sources: Path) -> None:
    """Errors and warnings are listed as path:line lines; an error gives exit code 1."""
    (sources / "broken.md").write_text(BROKEN, encoding="utf-8")
    (sources / "gbk.md").write_bytes(GOOD.encode("gbk"))
    result = run_cli("check", sources)
    assert result.exit_code == 1
    broken, gbk = sources / "broken.md", sources / "gbk.md"
    assert result.stdout.splitlines() == [
        f"{gbk}:1: error: not valid utf-8; it reads as gbk: convert it (`iconv -f gbk -t "
        "utf-8 FILE > NEW.md`) or name its encoding with --encoding gbk (or per file, in "
        "anki-genai.toml's [encodings])",
        f"{broken}:5: error: question has no answer; add an answer marker (**答案：**) below it",
        f"{broken}:11: warning: image nope.png not found (looked for {sources / 'nope.png'})",
    ]
    assert result.stderr == "3 files, 2 cards: 2 errors, 1 warning\n"


def test_check_reads_the_last_build_cache_and_writes_nothing(
    sources: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a build, `check` parses only the files changed since, and reports the same."""
    monkeypatch.chdir(tmp_path)  # the build writes to, and check reads, ./build
    (sources / "broken.md").write_text(BROKEN, encoding="utf-8")
    uncached = run_cli("check", sources)
    assert run_cli("build", sources).exit_code == 0
    outputs = {p: p.stat().st_mtime_ns for p in (tmp_path / "build").rglob("*")}
    parsed: list[str] = []
    real_parse = workers_module.parse_markdown

    def spy(text: str, path: Path, *args: object) -> object:
        parsed.append(path.name)
        return real_parse(text, path, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(workers_module, "parse_markdown", spy)
    cached = run_cli("check", sources)
    assert parsed == []
    assert (cached.exit_code, cached.stdout, cached.stderr) == (
        uncached.exit_code,
        uncached.stdout,
        uncached.stderr,
    )
    (sources / "good.md").write_text(GOOD.replace("传输控制协议", "TCP 协议"), encoding="utf-8")
    assert run_cli("check", sources).exit_code == 1
    assert parsed == ["good.md"]
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "build").rglob("*")} == outputs


def test_check_strict_turns_warnings_into_errors(sources: Path) -> None:
    """Warnings alone pass `check`, and fail `check --strict`."""
    (sources / "img.md").write_text("**题目：** 图？\n\n**答案：** ![x](nope.png)\n", "utf-8")
    assert run_cli("check", sources).exit_code == 0
    assert run_cli("check", sources, "--strict").exit_code == 1


def test_check_json_lists_problems(sources: Path) -> None:
    """`check --json` gives the problems as data."""
    (sources / "broken.md").write_text(BROKEN, encoding="utf-8")
    data = json.loads(run_cli("check", sources, "--json").stdout)
    assert [(d["line"], d["severity"]) for d in data["diagnostics"]] == [
        (5, "error"),
        (11, "warning"),
    ]


def test_build_json_reports_counts_per_deck(sources: Path, tmp_path: Path) -> None:
    """`build --json` prints the summary as JSON, with counts per deck."""
    (sources / "more.md").write_text(GOOD.replace("网络", "更多").replace("TCP", "UDP"), "utf-8")
    result = run_cli("build", sources, "-o", tmp_path / "out.apkg", "--json")
    data = json.loads(result.stdout)
    assert data["package"] == str(tmp_path / "out.apkg") and data["written"] is True
    assert data["counts"] == {"new": 2, "changed": 0, "renamed": 0, "removed": 0, "unchanged": 0}
    assert set(data["decks"]) == {"网络", "更多"}
    assert result.stderr == ""


def test_build_summary_lists_decks_and_quiet_silences_it(sources: Path, tmp_path: Path) -> None:
    """The summary names the package and each deck; `-q` prints nothing on success."""
    (sources / "more.md").write_text(GOOD.replace("网络", "更多").replace("TCP", "UDP"), "utf-8")
    result = run_cli("build", sources, "-o", tmp_path / "out.apkg")
    assert result.stdout.splitlines() == [
        f"Wrote {tmp_path / 'out.apkg'}: 2 files, 2 notes (2 new, 0 changed, 0 unchanged)",
        "  更多: 1 new, 0 changed, 0 unchanged",
        "  网络: 1 new, 0 changed, 0 unchanged",
    ]
    quiet = run_cli("build", sources, "-o", tmp_path / "out.apkg", "-q")
    assert (quiet.exit_code, quiet.stdout, quiet.stderr) == (0, "", "")


def test_folders_become_subdecks_under_the_deck_option(
    sources: Path, tmp_path: Path, anki: AnkiCollection
) -> None:
    """Files in sub-folders go to FOLDER::TITLE decks, all under --deck when given."""
    (sources / "go").mkdir()
    basics = GOOD.replace("网络", "Go 基础").replace("TCP", "goroutine")
    (sources / "go" / "basics.md").write_text(basics, "utf-8")
    (sources / ".hidden").mkdir()
    (sources / ".hidden" / "x.md").write_text(GOOD, "utf-8")
    (sources / "build").mkdir()
    (sources / "build" / "y.md").write_text(GOOD, "utf-8")
    result = run_cli("build", sources, "-o", tmp_path / "out.apkg", "--deck", "面试")
    assert "2 files" in result.stdout
    anki.import_package(tmp_path / "out.apkg")
    assert anki.deck_names() - {"Default"} == {
        "面试",
        "面试::网络",
        "面试::go",
        "面试::go::Go 基础",
    }


def test_a_rebuild_that_adds_a_deck_ships_it(
    sources: Path, tmp_path: Path, anki: AnkiCollection
) -> None:
    """A rebuild patches the last package's collection; a deck new since then is in it."""
    package = tmp_path / "out.apkg"
    assert run_cli("build", sources, "-o", package).exit_code == 0
    (sources / "go").mkdir()
    basics = GOOD.replace("网络", "Go 基础").replace("TCP", "goroutine")
    (sources / "go" / "basics.md").write_text(basics, "utf-8")
    assert run_cli("build", sources, "-o", package).exit_code == 0
    anki.import_package(package)
    assert anki.deck_names() - {"Default"} == {"网络", "go", "go::Go 基础"}
    assert len(anki.notes()) == 2


def test_front_matter_sets_deck_and_tags(tmp_path: Path, anki: AnkiCollection) -> None:
    """Front matter `deck` and `tags` apply to the file's notes; the file tag is kept."""
    source = tmp_path / "my notes.md"
    source.write_text("---\ndeck: 面试::网络\ntags: [tcp, 基础 知识]\n---\n" + GOOD, "utf-8")
    assert run_cli("build", source, "-o", tmp_path / "out.apkg").exit_code == 0
    anki.import_package(tmp_path / "out.apkg")
    (guid,) = anki.notes()
    assert {h.deck for h in anki.history().values()} == {"面试::网络"}
    assert sorted(anki.tags(guid)) == sorted(["tcp", "基础_知识", "my_notes"])


def test_config_file_supplies_options_and_the_command_line_wins(
    sources: Path, tmp_path: Path
) -> None:
    """anki-genai.toml in the source folder sets options; command-line options override it."""
    (sources / "anki-genai.toml").write_text(
        f'deck = "从配置"\noutput = "{tmp_path / "configured.apkg"}"\n', "utf-8"
    )
    first = run_cli("build", sources, "--json")
    assert json.loads(first.stdout)["package"] == str(tmp_path / "configured.apkg")
    assert list(json.loads(first.stdout)["decks"]) == ["从配置"]
    second = run_cli("build", sources, "--json", "--deck", "命令行", "-o", tmp_path / "cli.apkg")
    assert list(json.loads(second.stdout)["decks"]) == ["命令行"]
    assert json.loads(second.stdout)["package"] == str(tmp_path / "cli.apkg")


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('colour = "red"', "unknown setting 'colour'; known settings: answer_words, deck,"),
        ('layout = "table"', "layout must be one of markers, headings, bold"),
        ('encoding = "klingon"', "unknown encoding 'klingon'; use one Python knows, e.g."),
        ("strict = 1", "strict must be a bool"),
    ],
    ids=["unknown", "layout", "encoding", "type"],
)
def test_bad_config_file_is_named(sources: Path, setting: str, message: str) -> None:
    """A bad setting in anki-genai.toml stops with the file and what is wrong with it."""
    (sources / "anki-genai.toml").write_text(setting + "\n", "utf-8")
    result = run_cli("build", sources)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {sources / 'anki-genai.toml'}: {message}")


def test_layout_is_found_per_file_and_the_option_forces_one(tmp_path: Path) -> None:
    """With no option each question heading and its section become a note; --layout forces."""
    source = tmp_path / "h.md"
    source.write_text("# 题库\n\n## 什么是 TCP？\n\n协议。\n\n## 什么是 UDP？\n\n协议。\n", "utf-8")
    result = run_cli("build", source, "-o", tmp_path / "o.apkg")
    assert "2 notes" in result.stdout
    forced = run_cli("check", source, "--layout", "markers")
    assert "no question/answer pairs found" in forced.stdout


def test_every_command_and_option_has_help() -> None:
    """Each command and each of its options explains itself in --help."""
    assert main.help
    for name, command in main.commands.items():
        assert command.help, name
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{name} {param.opts}"
        assert run_cli(name, "--help").exit_code == 0


def test_version() -> None:
    """--version prints the tool's version."""
    from anki_genai import __version__

    assert run_cli("--version").stdout == f"anki-genai, version {__version__}\n"


def test_progress_bar_only_on_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading many files shows a progress bar on a terminal, and never in a pipe or log."""
    source = tmp_path / "source"
    source.mkdir()
    for n in range(25):
        (source / f"n{n:02d}.md").write_text(GOOD.replace("TCP", f"TCP{n}"), "utf-8")
    piped = run_cli("build", source, "-o", tmp_path / "a.apkg")
    assert "Reading" not in piped.stderr
    monkeypatch.setattr("anki_genai.report.stderr_is_terminal", lambda: True)
    (source / "n00.md").write_text(GOOD.replace("TCP", "UDP"), "utf-8")
    on_terminal = run_cli("build", source, "-o", tmp_path / "a.apkg")
    assert "Reading" in on_terminal.stderr
    assert run_cli("build", source, "-o", tmp_path / "b.apkg", "-q").stderr == ""


def test_an_unknown_answer_label_is_named_and_the_option_reads_it(tmp_path: Path) -> None:
    """A question whose answer starts with an author's own label gets a hint naming it."""
    source = tmp_path / "a.md"
    text = "## 两数之和\n\n**题目：** 和为目标的两个数？\n\n**解题思路**：哈希表。\n"
    source.write_text(text, "utf-8")
    hinted = run_cli("check", source)
    assert hinted.exit_code == 1
    assert f"{source}:3: error: question has no answer; if '解题思路' starts its answer" in (
        hinted.stdout
    )
    assert "add --answer-word 解题思路" in hinted.stdout
    result = run_cli("build", source, "-o", tmp_path / "o.apkg", "--answer-word", "解题思路")
    assert "1 note" in result.stdout


def test_markers_on_consecutive_lines_make_one_card_each(
    tmp_path: Path, anki: AnkiCollection
) -> None:
    """Pairs written without blank lines between the markers each make a card, with the
    line of their own question as Source, and `check --strict` has nothing to report."""
    source = tmp_path / "dense.md"
    source.write_text(
        "**题目：** 问一？\n**答案：** 答一。\n**题目：** 问二？\n**答案：** 答二。\n\n"
        "**题目：** 问题三？\n\n**答案：** 答三。\n**题目：** 问题四？\n\n**答案：** 答四。\n",
        "utf-8",
    )
    check = run_cli("check", "--strict", source)
    assert (check.exit_code, check.stdout) == (0, "")
    assert run_cli("build", source, "-o", tmp_path / "out.apkg").exit_code == 0
    anki.import_package(tmp_path / "out.apkg")
    cards = sorted(
        (fields["Question"], fields["Answer"], fields["Source"]) for fields in anki.notes().values()
    )
    assert [(q, a) for q, a, _ in cards] == [
        ("问一？", "答一。"),
        ("问二？", "答二。"),
        ("问题三？", "答三。"),
        ("问题四？", "答四。"),
    ]
    assert [s.rsplit(":", 1)[-1] for _, _, s in cards] == ["1", "3", "6", "9"]


def test_a_title_heading_over_the_first_question_names_the_deck(
    tmp_path: Path, anki: AnkiCollection
) -> None:
    """`# 甲` right above the first question is the file's deck, not its file name."""
    source = tmp_path / "a.md"
    source.write_text("# 甲\n\n**题目：** 问题一？\n\n**答案：** 答一。\n", "utf-8")
    assert run_cli("build", source, "-o", tmp_path / "out.apkg").exit_code == 0
    anki.import_package(tmp_path / "out.apkg")
    assert {h.deck for h in anki.history().values()} == {"甲"}
