from anki_genai.cli import main

main()
