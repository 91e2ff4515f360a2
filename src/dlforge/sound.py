"""Sound files and pictures of sound: mono PCM WAV in and out (the standard ``wave`` module), and a
figure of waveforms with their spectrograms. Shared by the audio data, the generate and predict
tools and the WaveNet callbacks.
"""

from __future__ import annotations

import io
import os
import wave
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from dlforge.errors import DlforgeError

#: bytes per sample -> numpy dtype of PCM WAV samples (8-bit PCM is unsigned, the rest signed)
PCM_TYPES = {1: np.uint8, 2: np.dtype("<i2"), 4: np.dtype("<i4")}


class AudioInputError(DlforgeError):
    """A sound file cannot be used (not a WAV file, damaged, the wrong rate or channel count)."""


def decode_wav(
    source: str | Path | bytes, name: str | None = None, sample_rate: int = 8000
) -> tuple[torch.Tensor, int]:
    """A PCM WAV file (a path or its bytes) as float samples in [-1, 1], shape (channels, T), and its rate.

    Refuses, with an :class:`AudioInputError` naming the file (``name``, default its path or "the
    clip") that says how to fix it (converting to ``sample_rate``): empty files, files that are not
    WAV, compressed or float WAVs, a data chunk shorter than its header says (truncated), and files
    without samples.
    """
    name = name or ("the clip" if isinstance(source, bytes) else str(source))
    if len(source) == 0 if isinstance(source, bytes) else _is_empty(source):
        raise AudioInputError(f"{name} is an empty file (0 bytes); give a PCM WAV file")
    try:
        with wave.open(io.BytesIO(source) if isinstance(source, bytes) else str(source), "rb") as f:
            channels, width, rate, frames = (
                f.getnchannels(),
                f.getsampwidth(),
                f.getframerate(),
                f.getnframes(),
            )
            data = f.readframes(frames)
    except FileNotFoundError:
        raise AudioInputError(f"no sound file at {name}") from None
    except (wave.Error, EOFError, OSError) as err:
        raise AudioInputError(
            f"{name} is not a PCM WAV file ({err or 'no RIFF/WAVE header'}); "
            f"convert it, e.g. sox in.mp3 -r {sample_rate} -c 1 -b 16 out.wav"
        ) from None
    if width not in PCM_TYPES:
        raise AudioInputError(f"{name} has {8 * width}-bit samples; give 8-, 16- or 32-bit PCM")
    if len(data) < frames * width * channels:
        raise AudioInputError(
            f"{name} is truncated: its header promises {frames} samples, it holds "
            f"{len(data) // (width * channels)}"
        )
    if frames == 0:
        raise AudioInputError(f"{name} holds no samples")
    samples = np.frombuffer(data, dtype=PCM_TYPES[width]).astype(np.float32)
    if width == 1:
        samples -= 128
    samples = samples.reshape(frames, channels).T / float(2 ** (8 * width - 1))
    return torch.from_numpy(np.ascontiguousarray(samples)), rate


def _is_empty(path: str | Path) -> bool:
    try:
        return Path(path).stat().st_size == 0
    except OSError:
        return False  # missing or unreadable: wave.open says which


def read_wav(source: str | Path | bytes, sample_rate: int | None = None) -> torch.Tensor:
    """A mono PCM WAV file (a path or its bytes) as float samples in [-1, 1], shape (T,).

    Refuses what :func:`decode_wav` refuses, and also more than one channel and another rate than
    ``sample_rate`` (if given), with an :class:`AudioInputError` that says how to fix it.
    """
    name = "the clip" if isinstance(source, bytes) else str(source)
    samples, rate = decode_wav(source, name, sample_rate or 8000)
    channels = samples.shape[0]
    if channels != 1:
        raise AudioInputError(f"{name} has {channels} channels; give a mono clip (sox in.wav -c 1 out.wav)")
    if sample_rate is not None and rate != sample_rate:
        raise AudioInputError(
            f"{name} is sampled at {rate} Hz, the model's audio at {sample_rate} Hz; "
            f"resample it (sox in.wav -r {sample_rate} out.wav)"
        )
    return samples[0]


def to_mono(samples: torch.Tensor, rate: int, sample_rate: int) -> torch.Tensor:
    """Samples (channels, T) at ``rate`` as one mono (T',) waveform at ``sample_rate``: the channels'
    mean, resampled (windowed sinc, ``torchaudio.functional.resample``) when the rates differ."""
    from torchaudio.functional import resample

    mono = samples.float().mean(dim=0)
    return mono if rate == sample_rate else resample(mono, rate, sample_rate)


def wav_bytes(samples: torch.Tensor, sample_rate: int) -> bytes:
    """A (T,) float waveform in [-1, 1] as the bytes of a mono 16-bit PCM WAV file."""
    pcm = (samples.detach().float().cpu().clamp(-1, 1) * 32767).round().to(torch.int16).numpy()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(sample_rate)
        f.writeframes(pcm.astype("<i2").tobytes())
    return buffer.getvalue()


def write_wav(path: str | Path, samples: torch.Tensor, sample_rate: int) -> Path:
    """Write a (T,) float waveform in [-1, 1] as a mono 16-bit PCM WAV file (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(wav_bytes(samples, sample_rate))
    os.replace(tmp, path)
    return path


def joined(waves: torch.Tensor, sample_rate: int, gap_seconds: float = 0.25) -> torch.Tensor:
    """Clips (N, T) one after another with ``gap_seconds`` of silence between: one file to listen to."""
    gap = waves.new_zeros(waves.shape[0], round(gap_seconds * sample_rate))
    return torch.cat([waves, gap], dim=1).flatten()[: -gap.shape[1] or None]


def spectrogram_db(wave: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """The magnitude spectrogram of a (T,) waveform in dB (frequency x frames, lowest first):
    32 ms Hann windows every 8 ms."""
    n_fft = max(64, int(0.032 * sample_rate))
    padded = torch.nn.functional.pad(wave.float(), (0, max(0, n_fft - len(wave))))  # stft needs one window
    power = torch.stft(
        padded, n_fft, hop_length=n_fft // 4, window=torch.hann_window(n_fft), return_complex=True
    ).abs()
    return 20 * torch.log10(power.clamp_min(1e-5))


def sound_picture(
    wave: torch.Tensor, sample_rate: int, width: int = 400, wave_height: int = 60, spec_height: int = 140
) -> torch.Tensor:
    """A small picture of one clip for a web page, (3, H, W) in [0, 1]: its waveform (each column's
    lowest and highest sample) above its spectrogram (:func:`spectrogram_db`, 80 dB, magma, lowest
    frequency at the bottom). Tensor operations only: a few milliseconds, where a figure takes 0.2 s."""
    from matplotlib import colormaps

    wave = wave.detach().float().cpu()
    db = spectrogram_db(wave, sample_rate)
    level = ((db - (db.max() - 80)) / 80).clamp(0, 1).flip(0)
    level = torch.nn.functional.interpolate(level[None, None], size=(spec_height, width), mode="bilinear")[
        0, 0
    ]
    spectrogram = torch.from_numpy(colormaps["magma"](level.numpy())[..., :3]).permute(2, 0, 1).float()
    column = torch.nn.functional.interpolate(wave[None, None], size=max(width, len(wave)), mode="nearest")
    high = torch.nn.functional.adaptive_max_pool1d(column, width)[0, 0].clamp(-1, 1)
    low = -torch.nn.functional.adaptive_max_pool1d(-column, width)[0, 0].clamp(-1, 1)
    rows = torch.linspace(1, -1, wave_height)[:, None]  # each row's amplitude, top to bottom
    half_row = 1 / (wave_height - 1)
    drawn = (rows <= high + half_row) & (rows >= low - half_row)
    ink = torch.tensor([0.18, 0.44, 0.86])[:, None, None]  # the page's accent colour
    waveform = torch.where(drawn, ink, torch.ones(3, 1, 1))
    return torch.cat([waveform, spectrogram], dim=1)


def sound_figure(
    waves: list[torch.Tensor], sample_rate: int, titles: list[str] | None = None, columns: int = 4
) -> Figure:
    """Each waveform above its spectrogram (dB, 32 ms Hann windows), ``columns`` clips a row."""
    rows = -(-len(waves) // columns)
    cols = min(columns, len(waves))
    fig = Figure(figsize=(3.2 * cols, 3.4 * rows), layout="constrained")
    axes = fig.subplots(2 * rows, cols, squeeze=False, height_ratios=[1, 2] * rows)
    for i in range(rows * cols):
        top, bottom = axes[2 * (i // cols), i % cols], axes[2 * (i // cols) + 1, i % cols]
        if i >= len(waves):
            top.set_axis_off()
            bottom.set_axis_off()
            continue
        wave_ = waves[i].detach().float().cpu()
        seconds = len(wave_) / sample_rate
        top.plot(np.arange(len(wave_)) / sample_rate, wave_.numpy(), linewidth=0.4)
        top.set_xlim(0, seconds)
        top.set_ylim(-1, 1)
        top.set_xticks([])
        top.set_title(titles[i] if titles else "", fontsize=9)
        db = spectrogram_db(wave_, sample_rate)
        bottom.imshow(
            db.numpy(),
            origin="lower",
            aspect="auto",
            cmap="magma",
            vmin=float(db.max()) - 80,
            extent=(0, seconds, 0, sample_rate / 2000),
        )
        bottom.set_xlabel("s", fontsize=8)
        bottom.set_ylabel("kHz", fontsize=8)
        bottom.tick_params(labelsize=7)
    return fig
