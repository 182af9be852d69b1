"""The state file: what is written is read back, however an editor or git lays it out."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from anki_genai import statefile


def test_state_file_round_trips_every_character(tmp_path: Path) -> None:
    """Whatever a question or a removed note's fields hold, the state file reads back equal,
    and a plain JSON reader sees the same records."""
    awkward = 'q "引号" \\ 反斜杠\n换行\t\u2028\x00 emoji 🦊 </script>'
    state = statefile.State(
        {
            "a": statefile.NoteRecord("a", awkward, "ans", "dig", 1_700_000_000, "dir/文件.md"),
            "b": statefile.NoteRecord(
                "b", "已删除？", "x", "y", 1_700_000_001, "f.md", removed=True,
                deck="父::子", fields=(awkward, "<b>答</b>"), tags=("t::1", "标签"),
            ),
        },
        note_type_digest="nt",
        note_type_mod=5,
    )  # fmt: skip
    path = tmp_path / statefile.STATE_FILE_NAME
    digest = statefile.save_state(state, path)
    assert statefile.load_state(path) == state
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    entries = json.loads(path.read_text(encoding="utf-8"))["notes"]
    assert entries[0]["question"] == awkward
    assert entries[1]["fields"] == [awkward, "<b>答</b>"] and entries[1]["removed"] is True
    # one line per note, as git diffs it: a header, two notes, the end, then the last newline
    assert len(path.read_text(encoding="utf-8").split("\n")) == 5


@pytest.mark.parametrize(
    ("layout", "read_whole"),
    [("as written", False), ("crlf", False), ("indented", True), ("one line", True)],
)
@pytest.mark.parametrize("notes", [2, 0])
def test_state_file_reads_back_however_it_is_laid_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str, read_whole: bool, notes: int
) -> None:
    """A state file re-indented by an editor or merge tool, or checked out with CRLF line
    ends, is the same state. The file as written is read a line at a time, never whole."""
    records = {
        "a": statefile.NoteRecord("a", "问题？", "ans", "dig", 1_700_000_000, "f.md"),
        "b": statefile.NoteRecord(
            "b", "删了", "x", "y", 1, "f.md", removed=True, deck="d", fields=("答",), tags=("t",)
        ),
    }
    state = statefile.State(dict(list(records.items())[:notes]), "nt", 5)
    path = tmp_path / statefile.STATE_FILE_NAME
    statefile.save_state(state, path)
    text = path.read_text(encoding="utf-8")
    if layout == "crlf":
        path.write_bytes(text.replace("\n", "\r\n").encode())
    elif layout != "as written":
        data = json.loads(text)
        path.write_text(
            json.dumps(data, ensure_ascii=False, indent=2 if layout == "indented" else None),
            "utf-8",
        )
    whole_reads: list[Path] = []
    real_read_text = Path.read_text

    def spy(self: Path, *args: Any, **kwargs: Any) -> str:
        whole_reads.append(self)
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", spy)
    assert statefile.load_state(path) == state
    assert bool(whole_reads) == read_whole
