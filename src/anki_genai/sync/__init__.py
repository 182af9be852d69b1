"""Both ways between the Markdown and a real Anki collection: `pull` brings edits made in
Anki back into the Markdown, `push` imports a build into a collection and also deletes the
notes removed from the sources and moves cards whose deck changed.

Needs the optional `anki` package (`pip install 'anki-genai[anki]'`); only
`collection` imports it, and only `adapter` imports the rest of anki-genai.
"""
