"""What judges the sound: FAD / FAD-inf / KAD, CLAP score, memorization and checkpoint comparison
reports over pluggable audio embedders. Command line: `python -m evaluation --help`."""
