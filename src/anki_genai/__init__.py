"""Turn Markdown question/answer notes into Anki decks that re-import safely."""

__version__ = "0.1.0"
