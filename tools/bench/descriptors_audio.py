#!/usr/bin/env python3
"""Synthetic inputs for tools/bench/descriptors.sh: speech-like and music-like clips at several
rates, and long 44.1 kHz stereo files, written as 16-bit PCM WAV in blocks (memory stays small
whatever the length).

    descriptors_audio.py OUT_DIR [--short-s 5] [--long-min 3 60]

Speech-like: a voiced source with a gliding F0 (90-220 Hz) and 20 harmonics under a vowel-like
spectral envelope, 0.2-0.8 s syllables separated by pauses, plus a little noise. Music-like: a
sequence of three-note chords with 12 harmonics each, a decaying envelope per note and
percussive noise bursts on the beat. The long files alternate 10 s of each, one per channel
offset. Deterministic (fixed seeds).
"""
import argparse
import pathlib
import wave

import numpy as np

BLOCK_S = 10.0


def speech_like(t, rng):
    # syllable gate from a fixed pseudo-random pattern of 1 s cells
    cell = np.floor(t)
    frac = t - cell
    on = (frac > 0.1) & (frac < 0.1 + 0.2 + 0.6 * ((np.sin(cell * 12.9898) * 43758.5453) % 1.0))
    f0 = 150 + 60 * np.sin(2 * np.pi * 0.37 * t) + 25 * np.sin(2 * np.pi * 2.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE[0] + PHASE[0]
    PHASE[0] = phase[-1] % (2 * np.pi)
    x = np.zeros_like(t)
    formants = (700.0, 1200.0, 2600.0)
    for h in range(1, 21):
        fh = f0 * h
        env = sum(np.exp(-(((fh - f) / 150.0) ** 2)) for f in formants) + 0.05
        x += env * np.sin(h * phase) / h
    x *= on * (0.6 + 0.4 * np.sin(2 * np.pi * 4.0 * t))
    return 0.25 * x + 0.003 * rng.standard_normal(len(t))


def music_like(t, rng):
    beat = np.floor(t * 2.0)
    roots = np.array([220.0, 246.9, 261.6, 293.7, 329.6, 196.0])
    root = roots[(beat // 4 % len(roots)).astype(int)]
    since = t * 2.0 - beat
    x = np.zeros_like(t)
    for ratio in (1.0, 1.26, 1.5):
        f = root * ratio
        for h in range(1, 13):
            x += np.sin(2 * np.pi * f * h * t) * (0.5**h) * np.exp(-2.0 * since)
    burst = np.exp(-30.0 * since) * rng.standard_normal(len(t))
    return 0.2 * x + 0.15 * burst


RATE = [16000]
PHASE = [0.0]


def write(path, rate, seconds, channels, kind):
    rng = np.random.default_rng(7)
    RATE[0] = rate
    PHASE[0] = 0.0
    n = int(round(seconds * rate))
    block = int(BLOCK_S * rate)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        for start in range(0, n, block):
            t = np.arange(start, min(n, start + block)) / rate
            if kind == "speech":
                chans = [speech_like(t, rng)] * channels
            elif kind == "music":
                chans = [music_like(t, rng)] * channels
            else:  # alternate 10 s of speech and music; the second channel is the other one
                seg = int(start // block) % 2
                a, b = speech_like(t, rng), music_like(t, rng)
                chans = [a, b] if seg == 0 else [b, a]
                chans = chans[:channels]
            frames = np.stack(chans, axis=1)
            pcm = np.clip(np.round(frames * 32767.0), -32768, 32767).astype("<i2")
            w.writeframes(pcm.tobytes())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=pathlib.Path)
    ap.add_argument("--short-s", type=float, default=5.0)
    ap.add_argument("--long-min", type=float, nargs="*", default=[3.0, 60.0])
    a = ap.parse_args()
    (a.out / "short").mkdir(parents=True, exist_ok=True)
    for rate in (8000, 16000, 22050, 44100, 48000):
        for kind in ("speech", "music"):
            p = a.out / "short" / f"{kind}_{rate}.wav"
            if not p.exists():
                write(p, rate, a.short_s, 1, kind)
    for minutes in a.long_min:
        p = a.out / f"long_{minutes:g}min_44k_stereo.wav"
        if not p.exists():
            write(p, 44100, minutes * 60.0, 2, "mixed")


if __name__ == "__main__":
    main()
