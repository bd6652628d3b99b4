"""Offline demo corpus: captioned, licensed music clips (mono FLAC, 2-12 s) rendered from
Debian and PyPI sources (Hydrogen kits, Sonic Pi samples, FluidR3_GM, music21, MMA).

`scripts.build_corpus` is the command line; the modules here are the pieces it composes:
`drumkits` + `patterns` + `sequencer` (numpy drum loops), `theory` + `parts` + `styles` +
`fluid` (soundfont-rendered MIDI), `chorales`, `breaks`, `mma`, `captions`, `splits`,
`licenses`, `plan` (what to render), `render` (how), `writer` (files on disk), `fidelity`
(BPM check, also a command) and `rate_check` (the sample-rate measurement). See docs/corpus.md.
"""
