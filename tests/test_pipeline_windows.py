"""Long inputs and seeds in the mel pipelines: overlapping windows crossfaded, one generator per
output across all its windows, Griffin-Lim seeded by the caller, timing the model cannot represent
refused, CPU offload refused honestly."""
import numpy as np
import pytest
import torch

from tests.tiny_models import SAMPLE_RATE, drum_like_signal, tiny_mel_pipeline, tiny_text_pipeline

STEPS = 3


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def pipe():
    return tiny_mel_pipeline()


@pytest.fixture(scope="module")
def text_pipe():
    return tiny_text_pipeline(max_seconds=1.0)


@pytest.fixture(scope="module")
def long_clip() -> np.ndarray:
    return drum_like_signal(0.9)  # three and a half 0.256 s windows


def overlap_frames(pipe) -> int:
    return round(pipe.default_overlap_in_s * pipe.sample_rate / pipe.mel.config.hop_length)


def test_windows_overlap_cover_the_input_and_join_back_to_its_mel(pipe):
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, round(0.9 * SAMPLE_RATE)).astype(np.float32)
    overlap = overlap_frames(pipe)
    frames = pipe.mel.frames_for_samples(noise.size)
    starts = pipe.window_starts(frames, overlap)
    assert starts[0] == 0 and int(starts[-1]) + pipe.window_frames >= frames
    assert torch.all(starts.diff() == pipe.window_frames - overlap)
    images, peak_db = pipe.audio_to_windows(noise, overlap)
    assert images.shape == (len(starts), 1, pipe.mel.config.y_res, pipe.window_frames)
    joined = pipe.windows_to_frames(images, peak_db, overlap)[..., :frames]
    expected = pipe.mel.audio_to_mel_power(torch.from_numpy(noise)[None])[:, None, :, :frames]
    np.testing.assert_allclose(10 * np.log10(joined.numpy()), 10 * np.log10(expected.numpy()), atol=1e-3)


def test_long_variation_denoises_overlapping_windows(pipe, long_clip, monkeypatch):
    seen = []
    original = type(pipe).noise_predictor

    def spy(self, call, first_frames):
        seen.append(first_frames.tolist())
        return original(self, call, first_frames)

    monkeypatch.setattr(type(pipe), "noise_predictor", spy)
    out = pipe(batch_size=2, audio=long_clip, audio_sampling_rate=SAMPLE_RATE, strength=0.5,
               num_inference_steps=STEPS, generator=seeded())
    starts = pipe.window_starts(pipe.mel.frames_for_samples(long_clip.size), overlap_frames(pipe)).tolist()
    assert seen == [starts * 2]
    assert out.audios.shape == (2, 1, long_clip.size)


@pytest.mark.parametrize("mode", ["variation", "inpaint"])
def test_a_generator_list_seeds_each_output_across_all_its_windows(pipe, long_clip, mode):
    kwargs = {"audio": long_clip, "audio_sampling_rate": SAMPLE_RATE, "num_inference_steps": STEPS,
              "strength": 0.6}
    if mode == "inpaint":
        kwargs["keep_regions_in_s"] = [(0.0, 0.3), (0.6, 0.9)]
    both = pipe(batch_size=2, generator=[seeded(1), seeded(2)], **kwargs).audios
    first = pipe(batch_size=1, generator=[seeded(1)], **kwargs).audios
    second = pipe(batch_size=1, generator=[seeded(2)], **kwargs).audios
    assert both.shape == (2, 1, long_clip.size)
    np.testing.assert_allclose(both[0], first[0], atol=1e-4)
    np.testing.assert_allclose(both[1], second[0], atol=1e-4)
    assert not np.allclose(both[0], both[1], atol=1e-3)


def test_a_generator_list_of_the_wrong_length_is_refused(pipe, long_clip):
    with pytest.raises(ValueError, match="2 generators for 3 outputs"):
        pipe(batch_size=3, generator=[seeded(1), seeded(2)], audio=long_clip, audio_sampling_rate=SAMPLE_RATE,
             num_inference_steps=1)


def test_griffin_lim_phases_come_from_the_callers_generator(pipe, long_clip):
    def reconstruct(seed):
        # strength 0: the denoiser leaves the input as it is, only Griffin-Lim's phases are random
        return pipe(audio=long_clip, audio_sampling_rate=SAMPLE_RATE, strength=0.0, generator=seeded(seed)).audios

    np.testing.assert_array_equal(reconstruct(1), reconstruct(1))
    assert not np.allclose(reconstruct(1), reconstruct(2), atol=1e-3)


def test_text_timing_beyond_the_embedder_is_refused(text_pipe):
    assert text_pipe.max_seconds_total == 1.0
    with pytest.raises(ValueError, match=r"at most 1\.00 s for this model \(its timing conditioning"):
        text_pipe("drum loop", seconds_total=1.2, num_inference_steps=1)
    with pytest.raises(ValueError, match=r"seconds_start \+ seconds_total must be at most"):
        text_pipe("drum loop", seconds_start=0.9, seconds_total=0.2, num_inference_steps=1)
    with pytest.raises(ValueError, match="at most"):
        text_pipe("drum loop", audio=drum_like_signal(1.1), audio_sampling_rate=SAMPLE_RATE, num_inference_steps=1)
    out = text_pipe("drum loop", seconds_start=0.5, seconds_total=0.5, num_inference_steps=1)
    assert out.audios.shape == (1, 1, round(0.5 * SAMPLE_RATE))


def test_text_seconds_total_has_one_meaning(text_pipe):
    with pytest.raises(ValueError, match="leave seconds_total unset"):
        text_pipe("drum loop", audio=drum_like_signal(0.3), audio_sampling_rate=SAMPLE_RATE, seconds_total=0.5,
                  num_inference_steps=1)


@pytest.mark.parametrize("factory", [tiny_mel_pipeline, tiny_text_pipeline])
def test_cpu_offload_is_refused_rather_than_half_working(factory):
    with pytest.raises(ValueError, match="model_cpu_offload_seq"):
        factory().enable_model_cpu_offload()


def test_progress_callback_still_counts_every_step_of_a_long_variation(pipe, long_clip):
    calls = []
    pipe(audio=long_clip, audio_sampling_rate=SAMPLE_RATE, strength=1.0, num_inference_steps=STEPS,
         extend_in_s=0.3, generator=seeded(), progress_callback=lambda done, total: calls.append((done, total)))
    total = calls[0][1]
    assert calls == [(step, total) for step in range(1, total + 1)]


@pytest.mark.parametrize("latent", [False, True])
def test_continuation_works_for_every_input_length_at_the_edges(latent):
    """Continue inputs of 1 sample, 10 ms, under one overlap, just under and over one window (issue 24:
    inputs shorter than the overlap failed with a tensor size mismatch), exact in length, progress complete."""
    pipe = tiny_mel_pipeline(latent=latent)
    window = round(pipe.window_seconds * pipe.sample_rate)
    overlap = round(pipe.default_overlap_in_s * pipe.sample_rate)
    for samples in (1, round(0.01 * SAMPLE_RATE), overlap - 1, window - 1, window + 1):
        audio = drum_like_signal(samples / SAMPLE_RATE + 1e-3)[:samples]
        calls: list[tuple[int, int]] = []
        out = pipe(audio=audio, audio_sampling_rate=SAMPLE_RATE, extend_in_s=0.3, num_inference_steps=2,
                   generator=seeded(), progress_callback=lambda done, total, calls=calls: calls.append((done, total)))
        assert out.audios.shape[-1] == samples + round(0.3 * SAMPLE_RATE), samples
        assert np.isfinite(out.audios).all()
        assert calls and calls[-1][0] == calls[-1][1], f"progress ends complete for {samples} samples"


@pytest.mark.parametrize("latent", [False, True])
def test_variation_and_inpainting_work_for_every_input_length_at_the_edges(latent):
    """Vary and inpaint inputs of 1 sample, 10 ms, just under and over one window and several windows
    (issue 24): the output is exactly as long as the input, finite, and the kept region is the input's."""
    pipe = tiny_mel_pipeline(latent=latent)
    window = round(pipe.window_seconds * pipe.sample_rate)
    for samples in (1, round(0.01 * SAMPLE_RATE), window - 1, window + 1, 3 * window + 7):
        audio = drum_like_signal(samples / SAMPLE_RATE + 1e-3)[:samples]
        varied = pipe(audio=audio, audio_sampling_rate=SAMPLE_RATE, strength=0.5, num_inference_steps=2,
                      generator=seeded())
        assert varied.audios.shape[-1] == samples and np.isfinite(varied.audios).all(), samples
        end_s = samples / SAMPLE_RATE
        inpainted = pipe(audio=audio, audio_sampling_rate=SAMPLE_RATE, keep_regions_in_s=[(0.0, end_s / 2)],
                         num_inference_steps=2, generator=seeded())
        assert inpainted.audios.shape[-1] == samples and np.isfinite(inpainted.audios).all(), samples


def spy_on_windows(monkeypatch, pipe) -> list[tuple[list[int], int]]:
    """(first frames, latent width) of every batch of windows `pipe` denoises from now on."""
    seen = []
    original = type(pipe).sample_windows

    def spy(self, call, init_images, strength, keep_mask, first_frames, width=None):
        seen.append((first_frames.tolist(), self.latent_shape(len(first_frames), width)[-1]))
        return original(self, call, init_images, strength, keep_mask, first_frames, width=width)

    monkeypatch.setattr(type(pipe), "sample_windows", spy)
    return seen


@pytest.mark.parametrize("factory", [tiny_mel_pipeline, lambda: tiny_mel_pipeline(latent=True), tiny_text_pipeline])
def test_a_clip_a_little_longer_than_one_window_is_one_widened_window(factory, monkeypatch):
    """A clip from scratch up to `max_window_widening` (1/8) longer than a window is denoised once, in a window
    widened to the denoiser's width step (not a second whole window for its last frames): exact in length,
    progress complete; one frame beyond the share, or with widening off, it takes two windows as before."""
    pipe = factory()
    step, window = pipe.window_width_step, pipe.window_frames
    seen = spy_on_windows(monkeypatch, pipe)
    hop = pipe.mel.config.hop_length
    text = hasattr(pipe, "encode_prompt")

    def make(frames: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
        seen.clear()
        calls: list[tuple[int, int]] = []
        seconds = frames * hop / pipe.sample_rate
        kwargs = {"prompt": "drum loop", "seconds_total": seconds} if text else {"audio_length_in_s": seconds}
        out = pipe(num_inference_steps=2, generator=seeded(), progress_callback=lambda *done: calls.append(done),
                   **kwargs)
        assert out.audios.shape[-1] == frames * hop and np.isfinite(out.audios).all()
        assert calls[-1][0] == calls[-1][1], "progress ends complete"
        return out.audios, calls

    widest = int(window * (1 + pipe.max_window_widening))
    for frames in (window + 1, widest):
        _, calls = make(frames)
        assert [width for _, width in seen] == [-(-frames // step) * step // pipe.vae_scale_factor], frames
        assert calls[-1][1] == 2, "one window's steps"
    _, calls = make(widest + 1)
    assert len(seen) == 2 and seen[0][1] == window // pipe.vae_scale_factor and calls[-1][1] == 4
    pipe.register_to_config(max_window_widening=0.0)
    make(window + 1)
    assert len(seen) == 2
    # a width rounded up to the step past the share is two windows too (a coarse latent model, a small share)
    pipe.register_to_config(max_window_widening=(step - 1) / (2 * window))
    assert step > 1 and pipe.first_window_frames(window + 1) == window
