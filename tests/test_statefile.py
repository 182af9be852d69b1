"""The state file: what is written is read back, however an editor or git lays it out."""

from __future__ import annotations

import dataclasses
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
        project_id="p1",
    )  # fmt: skip
    path = tmp_path / statefile.STATE_FILE_NAME
    digest = statefile.save_state(state, path)
    assert statefile.load_state(path) == state
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    # Lines end at "\n" only (as for git): str.splitlines would also break at "\u2028".
    header, *entries = map(json.loads, path.read_text(encoding="utf-8").split("\n")[:-1])
    assert header["project"] == "p1"
    assert entries[0]["question"] == awkward
    assert entries[1]["fields"] == [awkward, "<b>答</b>"] and entries[1]["removed"] is True
    # one line per note, as git diffs it: a header, two notes, then the last newline
    assert len(path.read_text(encoding="utf-8").split("\n")) == 4


def version_1_text(state: statefile.State) -> str:
    """The state file as releases before project ids wrote it: one JSON document, a header
    line ending in `"notes": [`, a line per note with a comma after all but the last."""
    header = {
        "format": "anki-genai state",
        "version": 1,
        "note_type": {"digest": state.note_type_digest, "mod": state.note_type_mod},
    }
    notes = []
    for guid in sorted(state.notes):
        record = dataclasses.asdict(state.notes[guid])
        if not record["removed"]:
            record = {k: record[k] for k in ("guid", "question", "answer", "digest", "mod", "file")}
        notes.append(json.dumps(record, ensure_ascii=False))
    return (
        json.dumps(header, ensure_ascii=False)[:-1]
        + ', "notes": [\n'
        + ",\n".join(notes)
        + "\n]}\n"
    )


@pytest.mark.parametrize(
    ("version", "layout", "read_whole"),
    [
        (2, "as written", False),
        (2, "crlf", False),
        (1, "as written", False),
        (1, "crlf", False),
        (1, "indented", True),
        (1, "one line", True),
    ],
)
@pytest.mark.parametrize("notes", [2, 0])
def test_state_file_reads_back_however_it_is_laid_out(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    version: int,
    layout: str,
    read_whole: bool,
    notes: int,
) -> None:
    """A state file checked out with CRLF line ends, or one of version 1 re-indented by an
    editor, is the same state. The file as written is read a line at a time, never whole."""
    records = {
        "a": statefile.NoteRecord("a", "问题？", "ans", "dig", 1_700_000_000, "f.md"),
        "b": statefile.NoteRecord(
            "b", "删了", "x", "y", 1, "f.md", removed=True, deck="d", fields=("答",), tags=("t",)
        ),
    }
    state = statefile.State(dict(list(records.items())[:notes]), "nt", 5, "p1")
    path = tmp_path / statefile.STATE_FILE_NAME
    if version == 2:
        statefile.save_state(state, path)
    else:
        # A version 1 file has no project id; its project's id comes from its history.
        state = dataclasses.replace(state, project_id=statefile.legacy_project_id(state.notes, 5))
        path.write_text(version_1_text(state), encoding="utf-8")
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
    loaded = statefile.load_state(path)
    assert loaded == state
    assert loaded.repairs == ()
    assert bool(whole_reads) == read_whole
