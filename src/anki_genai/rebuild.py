"""The build's side of a rebuild that matches only the changed files (see `incremental`):
when the last build's record allows it, read and match the changed files, then write the
package and state as a full build would, with the same guarantees on failure (`outputs`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from anki_genai import incremental, statefile
from anki_genai.apkg import notetype, package
from anki_genai.cache import Cache, FileResult
from anki_genai.errors import Severity, StrictModeError
from anki_genai.outputs import package_error, prepare
from anki_genai.plan import Plan
from anki_genai.results import BuildResult, Collected, FileRead, Progress
from anki_genai.sources import FileJob, Sources
from anki_genai.statetext import staged_text_save

if TYPE_CHECKING:
    from anki_genai.build import BuildOptions

Collect = Callable[..., Collected]  # `build.collect`


def inputs_of(options: BuildOptions, cache: Cache) -> str:
    """What every file's notes depend on besides the file itself."""
    return incremental.inputs_key(
        replace(options, dry_run=False), cache.environment, notetype.note_type_digest()
    )


def changed_only(
    options: BuildOptions,
    cache: Cache,
    sources: Sources,
    state_path: Path,
    state_data: bytes | None,
    state_digest: str | None,
    progress: Progress | None,
    collect: Collect,
    **reading: object,
) -> BuildResult | None:
    """Rebuild matching only the changed files; None if this build must match every file.

    Only a state file byte for byte what the last build wrote is edited in place: one git
    merged into, set right on reading (repeated GUIDs) or lost and restored is not that file,
    so such a build always goes the full way.
    """
    if options.dry_run or state_data is None or state_digest is None:
        return None
    inputs = inputs_of(options, cache)
    parts = _split(cache, inputs, sources, state_data, state_digest)
    if parts is None:
        return None
    _announce(progress, sources, parts)
    collected = collect(
        options, _Continued(progress), cache, parts.changed, forget=False, **reading
    )
    if collected.failed or collected.scope.skipped or None in collected.results:
        return None  # a file kept as last packaged: the full way knows how
    if any(d.severity is Severity.ERROR for d in collected.diagnostics):
        return None  # a broken pair's note waits for its fix: the full way holds it
    results = [r for r in collected.results if isinstance(r, FileResult)]
    delta = incremental.plan_delta(
        parts, results, collected.cards, collected.merged, options.output, sources.skipped
    )
    if delta is None:
        return None
    plan = delta.plan
    result = BuildResult(
        plan.package_path, state_path, len(sources.files), plan.changes, delta.diagnostics,
        False, plan.counts, delta.note_count, plan.deck_counts, plan.moved,
        removed_notes=plan.removed_notes,
    )  # fmt: skip
    if options.strict and result.diagnostics:
        raise StrictModeError(result.diagnostics)
    written = _write(plan, delta, cache, state_path)
    if written is None:
        return None
    state_digest = written[1] or state_digest
    cache.keep_only({job.relative for job in sources.jobs if isinstance(job, FileJob)})
    record = incremental.BuildRecord(
        inputs, state_digest, delta.latest_mod, str(plan.package_path), delta.tombstones,
        delta.files,
    )  # fmt: skip
    incremental.save_record(cache, record)
    remember(cache, options, sources, list(delta.media), result, state_digest)
    return replace(result, written=written[0])


def _write(
    plan: Plan, delta: incremental.Delta, cache: Cache, state_path: Path
) -> tuple[bool, str | None] | None:
    """Write the package and the state text, both staged and renamed only once both are
    whole, as `outputs.write_outputs` does; return whether anything was written and the new
    state's digest (None: unchanged), or None if the kept collection could not be used."""
    path = plan.package_path
    prepare(path, state_path)
    text = delta.state_text
    if text is not None:
        statefile.check_writable(state_path)  # before the work of packaging, not after
    with contextlib.ExitStack() as staged:
        commit_state: Callable[[], None] | None = None
        digest: str | None = None

        def stage_state() -> None:
            nonlocal commit_state, digest
            if text is not None and commit_state is None:
                commit_state, digest = staged.enter_context(
                    staged_text_save(text, state_path, path.parent)
                )

        keep = cache.folder / "collection" if cache.folder is not None else None
        notes, mod = plan.notes, plan.state.note_type_mod
        try:
            written = package.write_package(notes, mod, path, keep, stage_state, delta.unchanged)
        except (OSError, sqlite3.Error) as exc:
            raise package_error(path, exc) from None
        if written is None:
            return None  # the staged state goes with the stack
        if written:
            cache.remember_package(path, f"changed:{os.urandom(16).hex()}")
        stage_state()  # not yet staged when the package stayed as it was
        if commit_state is not None:
            commit_state()
    return bool(written) or text is not None, digest


def _split(
    cache: Cache, inputs: str, sources: Sources, state_data: bytes, state_digest: str
) -> incremental.Split | None:
    """The files this rebuild needs to match again, if the last build's record allows it."""
    record = incremental.load_record(cache)
    if record is None:
        return None
    if not cache.package_is_current(Path(record.package), str(cache.package.get("digest"))):
        return None
    return incremental.split(record, inputs, sources, state_data, state_digest)


def _announce(progress: Progress | None, sources: Sources, parts: incremental.Split) -> None:
    """Tell `progress` of every file, and that the unchanged ones are done."""
    if progress is None:
        return
    sizes = [job.size if isinstance(job, FileJob) else 0 for job in sources.jobs]
    progress.begin(tuple(zip(sources.files, sizes, strict=True)))
    for job in sources.jobs:
        if isinstance(job, FileJob) and job.relative in parts.unchanged:
            count = parts.record.files[job.relative].count
            progress.file_read(FileRead(job.path, job.size, count, None))


class _Continued:
    """A build's progress, told about more files after it began."""

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress

    def begin(self, files: Sequence[tuple[Path, int]]) -> None:
        pass

    def file_read(self, file: FileRead) -> None:
        if self._progress is not None:
            self._progress.file_read(file)


def record_of(
    inputs: str, sources: Sources, collected: Collected, plan: Plan, state_digest: str
) -> incremental.BuildRecord | None:
    """What the next build starts from, after a build of the whole project."""
    results = [r for r in collected.results if isinstance(r, FileResult)]
    if sources.scope.named != ("",) or len(results) != len(sources.jobs):
        return None
    if collected.failed or collected.scope.skipped or plan.kept_notes:
        return None
    removed = [r for r in plan.state.notes.values() if r.removed]
    if len(plan.state.notes) - len(removed) != len(collected.cards):
        return None  # notes of broken pairs wait in the state, in no file's record
    jobs = [job for job in sources.jobs if isinstance(job, FileJob)]
    guids = [note.guid for note in plan.notes[: len(collected.cards)]]
    files = incremental.file_records(
        jobs, sources.keys, results, collected.cards, guids, collected.merged,
        plan.state.project_id, removed,
    )  # fmt: skip
    tombstones = tuple(r.guid for r in removed)
    latest = plan.state.latest_mod
    return incremental.BuildRecord(
        inputs, state_digest, latest, str(plan.package_path), tombstones, files
    )


def media_of(collected: Collected) -> list[Path]:
    return sorted({m.path for card in collected.cards for m in card.media})


def inputs_digest(options: BuildOptions, sources: Sources, state_digest: str) -> str:
    """Everything a build reads: options, every source file, the state file."""
    digest = hashlib.sha256(repr(replace(options, dry_run=False)).encode())
    digest.update(notetype.note_type_digest().encode())
    for path, key in zip(sources.files, sources.keys, strict=True):
        digest.update(f"\x1e{path}\x1f{key}".encode())
    digest.update(b"\x1e" + state_digest.encode())
    return digest.hexdigest()


def remember(
    cache: Cache,
    options: BuildOptions,
    sources: Sources,
    media: list[Path],
    result: BuildResult,
    state_digest: str,
) -> None:
    """Save the cache, with what this build read and reported, for the next build."""
    inputs = inputs_digest(options, sources, state_digest)
    cache.remember_keys(sources.known)
    cache.remember_build(inputs, result.package_path, result.summary(), media)
    cache.save()
