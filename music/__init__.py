"""Music processing, apart from any model: audio intake, tempo, key, time-stretching, loops and loop
files, loop quality, splicing audio-to-audio results, DAW export and spectrogram pictures."""
