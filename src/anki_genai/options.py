"""The command line's shared options, and how they merge over `anki-genai.toml` into
the library's `BuildOptions`: the command line wins, then the file, then the defaults."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from anki_genai import report
from anki_genai.build import BuildOptions
from anki_genai.config import is_known_encoding, load_config
from anki_genai.parse import Layout, ParseOptions
from anki_genai.sources import source_root

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_SOURCE = Path("source")


def source_options(command: F) -> F:
    """The options every command that reads the sources shares."""
    decorators = [
        click.argument("sources", nargs=-1, type=click.Path(exists=True, path_type=Path)),
        click.option(
            "--deck",
            help="Deck name. With one file it is the deck; with several it is the parent "
            "deck: NAME::FOLDER::FILE-DECK.",
        ),
        click.option(
            "--layout",
            type=click.Choice([layout.value for layout in Layout]),
            default=Layout.AUTO.value,
            show_default=True,
            help="auto: found in each file; markers: 题目/答案 style markers; headings: each "
            "question heading's section is its answer; bold: each **Q1：…** or **1. …** "
            "paragraph is a question; summary: <details><summary>question</summary>; "
            "lines: Q:/A: lines.",
        ),
        click.option(
            "--question-word",
            "question_words",
            multiple=True,
            help="An extra word that marks a question (repeatable), e.g. 面试题.",
        ),
        click.option(
            "--answer-word",
            "answer_words",
            multiple=True,
            help="An extra word that marks an answer (repeatable), e.g. 面试题剖析.",
        ),
        click.option(
            "--encoding",
            default="utf-8",
            show_default=True,
            help="Encoding of the Markdown files, e.g. gbk for older Chinese documents.",
        ),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


def package_output_option(help: str) -> Callable[[F], F]:
    """-o for the commands that write or read the build's package."""
    return click.option(
        "-o",
        "--output",
        type=click.Path(path_type=Path),
        default=Path("build"),
        show_default=True,
        help=help,
    )


wait_option = click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds to wait while another build of the same sources is running.",
)


def verbosity_options(command: F) -> F:
    """-q and -v, which every command takes."""
    command = click.option(
        "-v", "--verbose", is_flag=True, help="Also show each file read, and timings."
    )(command)
    return click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")(command)


def take_verbosity(params: dict[str, Any]) -> report.Verbosity:
    """Take -q and -v out of `params`."""
    quiet, verbose = params.pop("quiet"), params.pop("verbose")
    if quiet and verbose:
        raise click.UsageError("-q and -v cannot be used together")
    if quiet:
        return report.Verbosity.QUIET
    return report.Verbosity.VERBOSE if verbose else report.Verbosity.NORMAL


def merged_options(ctx: click.Context, params: dict[str, Any]) -> BuildOptions:
    sources = sources_or_default(params["sources"])
    config = load_config(source_root(sources))
    for name, value in config.items():
        if name in params and ctx.get_parameter_source(name) is ParameterSource.DEFAULT:
            params[name] = value
    if not is_known_encoding(params["encoding"]):
        message = f"unknown encoding {params['encoding']!r}"
        raise click.BadParameter(message, param_hint="--encoding") from None
    return BuildOptions(
        sources=tuple(sources),
        # check and preview write no package, but read the cache in the build's output folder
        output=Path(params.get("output", config.get("output", "build"))),
        deck=params["deck"],
        strict=params.get("strict", False),
        dry_run=params.get("dry_run", False),
        encoding=params["encoding"],
        encodings=tuple(config.get("encodings", ())),  # type: ignore[arg-type]
        skip_unreadable=params.get("skip_unreadable", False),
        lock_timeout=params.get("wait", 60.0),
        parse=ParseOptions(
            Layout(params["layout"]),
            tuple(params["question_words"]),
            tuple(params["answer_words"]),
        ),
    )


def sources_or_default(sources: tuple[Path, ...]) -> tuple[Path, ...]:
    """The SOURCES given, else source/; a missing default is a usage error, as a missing
    path given on the command line is."""
    if sources:
        return sources
    if not DEFAULT_SOURCE.exists():
        raise click.UsageError(
            f"there is no {DEFAULT_SOURCE}/ folder here; name the Markdown files or folders "
            "to read, e.g. `anki-genai check notes/`"
        )
    return (DEFAULT_SOURCE,)
