"""Training the mel diffusion pipelines from a folder of audio (`python -m training.train`).

Modules, in the order data flows through them:
- `data`: the audio folder (datasets `audiofolder` layout), captions from `metadata.jsonl`, the
  train/valid split by file, and the split lists written into every checkpoint.
- `mel_cache`: mel spectrograms (dB) of each file computed once, cached by content hash + mel settings.
- `batches`: fixed windows and random crops of the cached mels as images in [-1, 1], in an order that
  depends only on (seed, step), so a resumed run sees exactly the batches of an uninterrupted one.
- `presets`: model sizes (`micro`, `tiny`, `small`, `base`) with their parameter counts and step times.
- `diffusion`: the diffusion trainer (unconditional or text + timing, pixel or latent space).
- `autoencoder`: the mel autoencoder (`AutoencoderKL`) trainer and its reconstruction report.
- `engine`: what every trainer shares: accelerate, progress bar, logs, checkpoints, resume, stopping.
"""
