"""The conventions command-line tools share: exit codes, Ctrl-C, streams, -q/-v, colour."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from anki_genai.cli import main
from anki_genai.parse import Layout
from anki_genai.statefile import STATE_FILE_NAME
from tests.conftest import GOOD, run_cli

BROKEN = "# 草稿\n\n## A\n\n**题目：** 没有答案？\n"
COMMANDS = ("build", "check", "preview", "forget-removed")


def _corpus(folder: Path, files: int, notes: int = 50, edit: str = "") -> None:
    """Write `files` Markdown files of `notes` pairs each, long enough to take a while."""
    folder.mkdir(parents=True, exist_ok=True)
    answer = "\n".join(
        f"- 第{i}点：调度、内存与线程的关系{edit}，以及 `code{i}` 的用法。" for i in range(8)
    )
    for f in range(files):
        pairs = [
            f"## {n}. 问题\n\n**题目：** 第{f}-{n}题是什么？\n\n**答案：**\n\n{answer}\n"
            for n in range(notes)
        ]
        (folder / f"part{f:04d}.md").write_text(f"# 题库 {f}\n\n" + "\n".join(pairs), "utf-8")


def _cli(*args: str | Path, cwd: Path | None = None, **popen: object) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "anki_genai", *map(str, args)]
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        command,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        **popen,
    )


def _interrupt_once(child: subprocess.Popen[str], ready: object) -> tuple[int, str]:
    """Press Ctrl-C (SIGINT to the whole process group) once `ready()` holds."""
    deadline = time.monotonic() + 120
    while not ready():  # type: ignore[operator]
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "the build never got under way"
        time.sleep(0.02)
    os.killpg(child.pid, signal.SIGINT)
    _, stderr = child.communicate(timeout=60)
    return child.returncode, stderr


def _cache_entries(output: Path, since: float = 0.0) -> int:
    """How many files' cards the build has put in its cache (since a time)."""
    entries = (output / ".anki-genai-cache").rglob("*.bin")
    return sum(1 for entry in entries if entry.stat().st_mtime >= since)


def _left_behind(*folders: Path) -> list[Path]:
    return [p for folder in folders for p in folder.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_missing_default_source_folder_is_a_usage_error(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no SOURCES and no source/ folder, every command exits 2 and says what to do."""
    monkeypatch.chdir(tmp_path)
    result = run_cli(command)
    assert result.exit_code == 2
    assert result.stderr.endswith(
        "Error: there is no source/ folder here; name the Markdown files or folders to read, "
        "e.g. `anki-genai check notes/`\n"
    )
    assert run_cli(command, "notes").exit_code == 2  # as for a missing path given


@pytest.mark.slow
def test_ctrl_c_during_a_build_exits_130_and_leaves_nothing_half_written(
    tmp_path: Path,
) -> None:
    """Ctrl-C in the middle of a large build prints one line, exits 130, and leaves the
    previous package and state file as they were (or none, if there were none)."""
    source, output = tmp_path / "source", tmp_path / "build"
    _corpus(source, files=80)
    state = source / STATE_FILE_NAME

    first = _cli("build", source, "-o", output)
    code, stderr = _interrupt_once(first, lambda: _cache_entries(output) >= 3)
    assert (code, stderr) == (130, "Interrupted; no file was left half-written.\n")
    assert not list(output.glob("*.apkg")) and not state.exists()
    assert _left_behind(tmp_path) == []

    complete = subprocess.run(
        [sys.executable, "-m", "anki_genai", "build", source, "-o", output, "-q"], check=True
    )
    assert complete.returncode == 0
    (package,) = output.glob("*.apkg")
    before = package.read_bytes(), state.read_bytes()

    _corpus(source, files=80, edit="（已修订）")
    edited = time.time() - 0.01  # mtimes may be coarser than the clock
    again = _cli("build", source, "-o", output)
    code, stderr = _interrupt_once(again, lambda: _cache_entries(output, edited) >= 3)
    assert (code, stderr) == (130, "Interrupted; no file was left half-written.\n")
    assert (package.read_bytes(), state.read_bytes()) == before
    assert _left_behind(tmp_path) == []


@pytest.mark.parametrize("command", ["check", "build"])
def test_json_output_is_utf_8_text_whatever_the_locale(command: str, tmp_path: Path) -> None:
    """`--json` prints Chinese as UTF-8 characters, not \\u escapes, even where the
    terminal's encoding (here Latin-1) could not show them."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "broken.md").write_text(GOOD + "\n## B\n\n**题目：** 没有答案？\n", "utf-8")
    env = {**os.environ, "PYTHONIOENCODING": "latin-1"}
    result = subprocess.run(
        [sys.executable, "-m", "anki_genai", command, source, "-o", tmp_path / "o.apkg", "--json"]
        if command == "build"
        else [sys.executable, "-m", "anki_genai", command, source, "--json"],
        capture_output=True,
        env=env,
        check=False,
    )
    assert result.stderr == b""
    text = result.stdout.decode("utf-8")
    assert "question has no answer; add an answer marker (**答案：**) below it" in text
    assert "\\u" not in text
    assert json.loads(text)["diagnostics"][0]["line"] == 11


@pytest.mark.parametrize(
    ("output", "written"),
    [
        ("Out.APKG", "Out.APKG"),
        ("out.apkg", "out.apkg"),
        ("decks", "decks/网络.apkg"),
        ("old.apkg/", "old.apkg/网络.apkg"),  # an existing folder, whatever its name
    ],
)
def test_build_output_is_a_package_file_or_a_folder(
    sources: Path, tmp_path: Path, output: str, written: str
) -> None:
    """`build -o` names the package when it ends in .apkg in any case, else its folder."""
    (tmp_path / "old.apkg").mkdir()
    result = run_cli("build", sources, "-o", tmp_path / output)
    assert result.exit_code == 0, result.output
    assert (tmp_path / written).is_file()
    assert result.stdout.startswith(f"Wrote {tmp_path / written}: 1 file, 1 note")


@pytest.mark.parametrize(
    ("output", "written"),
    [
        ("prev.html", "prev.html"),
        ("Prev.HTM", "Prev.HTM"),
        ("prev", "prev/preview.html"),
        ("existing", "existing/preview.html"),
    ],
)
def test_preview_output_is_a_page_or_a_folder(
    sources: Path, tmp_path: Path, output: str, written: str
) -> None:
    """`preview -o` names the page when it ends in .html, else the folder for preview.html,
    as `build -o` does; an existing folder is never mistaken for the page."""
    (tmp_path / "existing").mkdir()
    result = run_cli("preview", sources, "-o", tmp_path / output)
    assert (result.exit_code, result.stdout) == (0, f"Wrote {tmp_path / written}: 1 card\n")
    assert "网络" in (tmp_path / written).read_text("utf-8")


@pytest.mark.parametrize("columns", ["80", "50"])
def test_help_lists_every_command_with_a_whole_sentence(
    columns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`anki-genai --help` gives each command a whole sentence, never one cut off with
    '...', however narrow the terminal."""
    monkeypatch.setenv("COLUMNS", columns)
    text = run_cli("--help").stdout
    listing = text.split("Commands:\n", 1)[1].splitlines()
    summaries: dict[str, str] = {}
    for line in listing:
        name, _, rest = line.strip().partition("  ")
        if line.startswith("  ") and not line.startswith("   "):
            summaries[name] = rest.strip()
        else:  # a summary wrapped onto the next line
            summaries[list(summaries)[-1]] += " " + line.strip()
    assert set(summaries) == set(main.commands)
    for name, summary in summaries.items():
        assert summary.endswith(".") and "..." not in summary, (name, summary)
        assert summary[0].isupper(), (name, summary)


def _anki_genai_script() -> Path:
    script = Path(sys.executable).with_name("anki-genai")
    assert script.exists(), "the package is installed with its console script"
    return script


def test_bash_completion_script_completes_commands_and_choices() -> None:
    """The bash script that `_ANKI_GENAI_COMPLETE=bash_source anki-genai` prints, once
    sourced, completes command names and option values, as the README says."""
    script = _anki_genai_script()
    session = (
        'eval "$(_ANKI_GENAI_COMPLETE=bash_source anki-genai)"\n'
        "COMP_WORDS=(anki-genai ch); COMP_CWORD=1; _anki_genai_completion anki-genai\n"
        'echo "${COMPREPLY[@]}"; COMPREPLY=()\n'
        'COMP_WORDS=(anki-genai build --layout ""); COMP_CWORD=3\n'
        '_anki_genai_completion anki-genai; echo "${COMPREPLY[@]}"\n'
    )
    env = {**os.environ, "PATH": f"{script.parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "-c", session], capture_output=True, text=True, env=env, check=True
    )
    layouts = " ".join(layout.value for layout in Layout)
    assert result.stdout.splitlines() == ["check", layouts]


@pytest.mark.parametrize(
    ("shell", "registers"),
    [
        ("zsh", "compdef _anki_genai_completion anki-genai"),
        ("fish", 'complete --no-files --command anki-genai --arguments "(_anki_genai_completion)"'),
    ],
)
def test_zsh_and_fish_completion_scripts_are_printed(shell: str, registers: str) -> None:
    """`_ANKI_GENAI_COMPLETE=zsh_source` and `fish_source` print scripts that register the
    completion for anki-genai."""
    env = {**os.environ, "_ANKI_GENAI_COMPLETE": f"{shell}_source"}
    result = subprocess.run(
        [_anki_genai_script()], capture_output=True, text=True, env=env, check=True
    )
    assert registers in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_takes_quiet_and_verbose(
    command: str, sources: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`-q` and `-v` are accepted by every command; `-q` prints nothing on success, and
    both at once is a usage error."""
    monkeypatch.chdir(tmp_path)
    for flag in ("-q", "-v"):
        assert run_cli(command, sources, flag).exit_code == 0, (command, flag)
    quiet = run_cli(command, sources, "-q")
    assert (quiet.stdout, quiet.stderr) == ("", "")
    both = run_cli(command, sources, "-q", "-v")
    assert both.exit_code == 2
    assert both.stderr.endswith("Error: -q and -v cannot be used together\n")


def test_verbose_lists_each_file_with_its_cards_and_time(
    sources: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`-v` shows, for each file in order, the layout it was read in, how many cards it
    gave, its size and how long it took (or that it came from the cache), then the time in
    all."""
    monkeypatch.chdir(tmp_path)  # build writes its cache to ./build, where check reads it
    more = "".join(GOOD.replace("TCP", f"UDP{n}") for n in range(3))
    (sources / "more.md").write_text(more, "utf-8")
    output = Path("build") / "out.apkg"
    first = run_cli("build", sources, "-o", output, "-v")
    lines = first.stderr.splitlines()
    assert [line.split(": ", 1)[0] for line in lines[:2]] == [
        str(sources / "good.md"),
        str(sources / "more.md"),
    ]
    assert lines[0].startswith(f"{sources / 'good.md'}: markers, 1 card, 86 bytes, ")
    assert lines[1].startswith(f"{sources / 'more.md'}: markers, 3 cards, 264 bytes, ")
    assert all(line.endswith(" s") for line in lines[:2])
    assert lines[2].startswith("Read 2 files (350 bytes) in ")
    assert lines[2].endswith(" s in all.")
    assert first.stdout.startswith(f"Wrote {output}")

    (sources / "good.md").write_text(GOOD.replace("TCP", "QUIC"), "utf-8")
    check = run_cli("check", sources, "-v").stderr.splitlines()
    assert check[0].startswith(f"{sources / 'good.md'}: markers, 1 card, 88 bytes, ")
    assert check[1] == f"{sources / 'more.md'}: markers, 3 cards, 264 bytes, from the cache"
    assert check[2].startswith("Read 2 files (352 bytes, 1 from the cache) in ")
    assert check[3] == "2 files, 4 cards: 0 errors, 0 warnings"


def test_quiet_check_prints_only_what_fails_it(sources: Path) -> None:
    """`check -q` prints only the errors (with --strict, the warnings too) and no summary."""
    (sources / "broken.md").write_text(
        BROKEN + "\n## B\n\n**题目：** 图？\n\n**答案：** ![x](nope.png)\n", "utf-8"
    )
    quiet = run_cli("check", sources, "-q")
    assert quiet.exit_code == 1 and quiet.stderr == ""
    assert [line.split(": ")[1] for line in quiet.stdout.splitlines()] == ["error"]
    strict = run_cli("check", sources, "-q", "--strict")
    assert [line.split(": ")[1] for line in strict.stdout.splitlines()] == ["error", "warning"]


def _on_a_terminal(*args: str | Path, env: dict[str, str] | None = None) -> str:
    """Run anki-genai with its stdout and stderr on a pseudo-terminal; return what it showed."""
    import pty

    leader, follower = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-m", "anki_genai", *map(str, args)],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env={**os.environ, **(env or {})},
    )
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the child has exited
            break
        if not chunk:
            break
        shown += chunk
    child.wait(timeout=60)
    os.close(leader)
    return shown.decode("utf-8")


BOLD, RED, YELLOW, RESET = "\x1b[1m", "\x1b[31m", "\x1b[33m", "\x1b[0m"


def test_colour_on_a_terminal_none_in_a_pipe_or_with_no_color(sources: Path) -> None:
    """On a terminal, problems show the place bold, errors red and warnings yellow; in a
    pipe, or with NO_COLOR set, the same lines come without any escape codes."""
    (sources / "broken.md").write_text(
        BROKEN + "\n## B\n\n**题目：** 图？\n\n**答案：** ![x](nope.png)\n", "utf-8"
    )
    broken = sources / "broken.md"
    terminal = _on_a_terminal("check", sources)
    assert f"{BOLD}{broken}:5:{RESET} {RED}{BOLD}error{RESET}: question has no answer" in terminal
    assert f"{BOLD}{broken}:11:{RESET} {YELLOW}{BOLD}warning{RESET}: image nope.png" in terminal

    piped = subprocess.run(
        [sys.executable, "-m", "anki_genai", "check", sources], capture_output=True, text=True
    )
    assert f"{broken}:5: error: question has no answer" in piped.stdout
    assert "\x1b" not in piped.stdout + piped.stderr

    no_color = _on_a_terminal("check", sources, env={"NO_COLOR": "1"})
    assert f"{broken}:5: error: question has no answer" in no_color
    assert "\x1b" not in no_color


def test_errors_and_written_paths_are_styled_for_a_terminal(
    sources: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`Error:` is red and the package written is bold when colour is on; NO_COLOR wins."""
    from click.testing import CliRunner

    runner = CliRunner()
    built = runner.invoke(main, ["build", str(sources), "-o", str(tmp_path / "o.apkg")], color=True)
    assert built.stdout.startswith(f"Wrote {BOLD}{tmp_path / 'o.apkg'}{RESET}: 1 file")
    failed = runner.invoke(main, ["build", str(sources), "-o", str(sources)], color=True)
    assert failed.stderr.startswith(f"{RED}{BOLD}Error:{RESET} {sources}: the output folder")
    monkeypatch.setenv("NO_COLOR", "1")
    plain = runner.invoke(main, ["build", str(sources), "-o", str(sources)], color=True)
    assert plain.stderr.startswith(f"Error: {sources}: the output folder")


def test_decks_are_listed_in_natural_order(tmp_path: Path) -> None:
    """The build summary and its JSON list decks by number where names hold one:
    `文件 2`, `文件 11`, `文件 109`, not as text would sort them."""
    source = tmp_path / "source"
    source.mkdir()
    for n in (109, 11, 2):
        text = GOOD.replace("网络", f"文件 {n}").replace("TCP", f"TCP{n}")
        (source / f"f{n}.md").write_text(text, "utf-8")
    result = run_cli("build", source, "-o", tmp_path / "o.apkg")
    assert [line.split(":")[0].strip() for line in result.stdout.splitlines()[1:]] == [
        "文件 2",
        "文件 11",
        "文件 109",
    ]
    data = json.loads(run_cli("build", source, "-o", tmp_path / "o.apkg", "--json").stdout)
    assert list(data["decks"]) == ["文件 2", "文件 11", "文件 109"]
