"""Demo sections run by scripts/demo.py; see section.py for what a section provides."""
