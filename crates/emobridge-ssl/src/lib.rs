//! # emobridge-ssl
//!
//! Owns the self-supervised encoders: one configurable wav2vec2-family implementation on candle
//! (wav2vec 2.0, HuBERT, WavLM, data2vec-audio, MERT-v1) built from a HuggingFace `config.json`,
//! checkpoint loading, every hidden state, and the PEFT modules (LoRA, adapters, BitFit).
