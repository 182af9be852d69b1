"""The state file's text edited in place is exactly the text the writer writes."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from anki_genai import statefile
from anki_genai.statefile import NoteRecord, State
from anki_genai.statetext import StateText

_GUIDS = st.text("abcdefgABCDEFG0123456789-_", min_size=1, max_size=12)


def _record(guid: str, question: str, removed: bool = False) -> NoteRecord:
    extra = {"deck": "甲::乙", "fields": ("问", "答"), "tags": ("t",)} if removed else {}
    return NoteRecord(guid, question, "a1", "d1", 1_700_000_000, "x/问题.md", removed, **extra)  # type: ignore[arg-type]


def _text(state: State) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / statefile.STATE_FILE_NAME
        statefile.save_state(state, path)
        return path.read_bytes()


@settings(max_examples=150, deadline=None)
@given(
    before=st.sets(_GUIDS, max_size=12),
    gone=st.sets(_GUIDS, max_size=6),
    added=st.dictionaries(_GUIDS, st.text(max_size=8), max_size=6),
    removed=st.booleans(),
)
def test_replaced_text_is_what_the_writer_writes(
    before: set[str], gone: set[str], added: dict[str, str], removed: bool
) -> None:
    """Removing and adding notes in the text gives, byte for byte, the file `save_state`
    writes for the state so changed; every note is found by its GUID."""
    old = State({g: _record(g, f"问{g}") for g in before}, "nt", 5, "proj-甲")
    text = StateText.parse(_text(old))
    assert text is not None
    assert text.note_type() == ("nt", 5)
    assert text.project_id == "proj-甲"
    for guid in before | gone | set(added):
        assert text.record(guid) == old.notes.get(guid)
        assert (guid in text) == (guid in before)
    records = {g: _record(g, q, removed) for g, q in added.items()}
    notes = {g: r for g, r in old.notes.items() if g not in gone}
    notes.update(records)
    assert b"".join(text.replaced(gone, records)) == _text(State(notes, "nt", 5, "proj-甲"))


def test_text_not_laid_out_by_the_writer_is_refused() -> None:
    """A state file not laid out as the writer now lays it out (version 1, no project id,
    conflict markers, no final newline) is not edited in place."""
    assert StateText.parse(b'{"format": "anki-genai state", "notes": []}') is None
    assert StateText.parse(b"") is None
    version_1 = Path(__file__).parent / "fixtures" / "version-1-project" / statefile.STATE_FILE_NAME
    assert StateText.parse(version_1.read_bytes()) is None
    state = State({"g1": _record("g1", "q")}, "nt", 5, "p")
    written = _text(state)
    assert StateText.parse(written) is not None
    assert StateText.parse(written.rstrip(b"\n")) is None
    assert StateText.parse(_text(State(state.notes, "nt", 5))) is None  # no project id
    header, line = written.splitlines(keepends=True)
    conflicted = header + b"<<<<<<< ours\n" + line + b"=======\n>>>>>>> theirs\n"
    assert StateText.parse(conflicted) is None
