"""Tiny random-weight instances of today's hub pipelines (diffusers' `StableAudio3Pipeline`), built
from their real component classes the way diffusers' own tests build them, for offline tests."""
from __future__ import annotations

import torch
from diffusers import (
    AutoencoderSAME,
    FlowMatchEulerDiscreteScheduler,
    StableAudio3DiTModel,
    StableAudio3Pipeline,
)
from diffusers.pipelines.stable_audio_3.modeling_stable_audio_3 import StableAudio3DurationEmbedder
from transformers import GemmaTokenizer, T5GemmaConfig, T5GemmaEncoderModel

SA3_SAMPLE_RATE = 8000
SA3_DOWNSAMPLING = 16  # patch_size 4 x stride 4: one latent frame per 2 ms
SA3_WORDS = ["a", "warm", "bright", "piano", "bass", "drum", "loop", "pad", "synth", "kick", "snare"]
_TEXT_DIM = 16


def tiny_gemma_tokenizer() -> GemmaTokenizer:
    """A word-level Gemma tokenizer (no merges) over `SA3_WORDS`."""
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
    vocab = {token: index for index, token in enumerate(specials + ["▁" + word for word in SA3_WORDS] + ["▁"])}
    return GemmaTokenizer(vocab=vocab, merges=[], model_max_length=16)


def randomize_zero_weights(model: torch.nn.Module, std: float = 0.2) -> None:
    """Give the zero-initialised layers (residual outputs, biases) random values, so that a random
    model's output depends on its input as a trained one's does."""
    with torch.no_grad():
        for parameter in model.parameters():
            if not parameter.any():
                parameter.normal_(0.0, std)


def tiny_stable_audio_3(max_seconds: float = 4.0) -> StableAudio3Pipeline:
    """A `StableAudio3Pipeline` of the real classes with a few thousand random weights each."""
    torch.manual_seed(0)
    tokenizer = tiny_gemma_tokenizer()
    module = {"vocab_size": len(tokenizer), "hidden_size": _TEXT_DIM, "intermediate_size": 32,
              "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8,
              "query_pre_attn_scalar": 8, "sliding_window": 16, "layer_types": ["full_attention"]}
    text_encoder = T5GemmaEncoderModel(T5GemmaConfig(encoder=module, decoder=module, vocab_size=len(tokenizer),
                                                     is_encoder_decoder=False))
    vae = AutoencoderSAME(audio_channels=2, patch_size=4, encoder_channels=8, encoder_c_mults=(2,),
                          encoder_strides=(4,), encoder_transformer_depths=(1,), latent_dim=8, dim_heads=8,
                          sampling_rate=SA3_SAMPLE_RATE)
    transformer = StableAudio3DiTModel(io_channels=8, embed_dim=16, depth=1, num_heads=2, cond_token_dim=_TEXT_DIM,
                                       global_cond_dim=_TEXT_DIM, local_add_cond_dim=9, timestep_features_dim=8,
                                       num_memory_tokens=2)
    duration_embedder = StableAudio3DurationEmbedder(output_dim=_TEXT_DIM, fourier_dim=8, max_val=max_seconds)
    for model in (vae, transformer):
        randomize_zero_weights(model)
    scheduler = FlowMatchEulerDiscreteScheduler(stochastic_sampling=True)
    return StableAudio3Pipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                duration_embedder=duration_embedder, transformer=transformer, scheduler=scheduler)


ACE_SAMPLE_RATE = 8000


def tiny_ace_step():
    """An `AceStepPipeline` (ACE-Step 1.5, turbo) of the real classes with random weights: a tiny
    Qwen3 text encoder and word-level tokenizer, Oobleck VAE, DiT, condition encoder and the audio
    tokenizer / detokenizer that source-audio (cover) generation needs."""
    from diffusers import AceStepPipeline, AutoencoderOobleck, FlowMatchEulerDiscreteScheduler
    from diffusers.models.transformers.ace_step_transformer import AceStepTransformer1DModel
    from diffusers.pipelines.ace_step.modeling_ace_step import (
        AceStepAudioTokenDetokenizer,
        AceStepAudioTokenizer,
        AceStepConditionEncoder,
    )
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3Model

    words = ["<pad>", "<unk>", "<|endoftext|>", "en", "[verse]", "la", *SA3_WORDS]
    word_level = Tokenizer(models.WordLevel(vocab={word: i for i, word in enumerate(words)}, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=word_level, unk_token="<unk>", pad_token="<pad>",
                                        eos_token="<|endoftext|>", model_max_length=64)
    torch.manual_seed(0)
    latent = 4
    text_encoder = Qwen3Model(Qwen3Config(vocab_size=len(words), hidden_size=16, intermediate_size=32,
                                          num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                          head_dim=8))
    # 64x downsampling: 125 latents/s, so the 30 s of silence the pipeline gives the timbre encoder when no reference
    # audio is given is 3,750 frames (at 8x it was 15,000 and its attention mask 900 MB, most of these tests' time)
    vae = AutoencoderOobleck(encoder_hidden_size=2 * latent, downsampling_ratios=[8, 8], channel_multiples=[1, 2],
                             decoder_channels=4, decoder_input_channels=latent, audio_channels=2,
                             sampling_rate=ACE_SAMPLE_RATE)
    blocks = {"hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2, "num_key_value_heads": 1,
              "head_dim": 8, "sliding_window": 16}
    transformer = AceStepTransformer1DModel(num_hidden_layers=1, in_channels=3 * latent,
                                            audio_acoustic_hidden_dim=latent, patch_size=2, is_turbo=True, **blocks)
    condition_encoder = AceStepConditionEncoder(text_hidden_dim=16, timbre_hidden_dim=latent,
                                                num_lyric_encoder_hidden_layers=1,
                                                num_timbre_encoder_hidden_layers=1, **blocks)
    audio_tokenizer = AceStepAudioTokenizer(audio_acoustic_hidden_dim=latent, pool_window_size=5, fsq_dim=16,
                                            fsq_input_levels=[3, 3], num_attention_pooler_hidden_layers=1, **blocks)
    audio_token_detokenizer = AceStepAudioTokenDetokenizer(audio_acoustic_hidden_dim=latent, pool_window_size=5,
                                                           num_attention_pooler_hidden_layers=1, **blocks)
    return AceStepPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, transformer=transformer,
                           condition_encoder=condition_encoder,
                           scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1, shift=1.0),
                           audio_tokenizer=audio_tokenizer, audio_token_detokenizer=audio_token_detokenizer)
