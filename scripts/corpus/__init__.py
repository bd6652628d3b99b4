"""Offline demo corpus: captioned, licensed music clips (mono FLAC, 2-12 s) rendered from
Debian and PyPI sources (Hydrogen kits, Sonic Pi samples, FluidR3_GM, music21, MMA).

`scripts.build_corpus` is the command line; the modules here are the pieces it composes:
`drumkits` + `patterns` + `sequencer` (numpy drum loops), `theory` + `parts` + `fluid`
(soundfont-rendered MIDI), `chorales`, `breaks`, `mma`, `captions`, `splits`, `licenses`,
`plan` (what to render), `render` (how), `writer` (files on disk) and `fidelity` (BPM check).
"""
