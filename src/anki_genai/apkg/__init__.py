"""Cards -> an `.apkg` file: the note type, the collection inside, and the zip around it.

Nothing is imported here: `notetype` is a leaf that rendering reads without pulling in
genanki or the package writer.
"""
