"""Serving WaveNets: class labels (e.g. digits) in, clips out.

A WaveNet samples in a loop, one sample after another, rather than in one graph: it cannot be
exported and is served from its checkpoint, its card made like the others' (inputs: labels, seconds,
seed, temperature; output: waves at the card's rate). Generate (``python -m dlforge.generate``) speaks
``n`` clips of ``seconds`` (``label=7``: all that digit; without it, the digits in turn) at
``temperature``, with the fast sampler (``sampler=naive``: the reference one, same clips): ``output``
(default ``samples.wav``) holds them one after another, ``<output stem>/NNNN.wav`` each one, and
``<output stem>.png`` shows the waveforms and spectrograms of the first 16. App panel: ``wavenet``
(its clips judged by an audio classifier when the app serves one).
"""

import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from dlforge.checkpoint import class_index, class_names
from dlforge.errors import DlforgeError
from dlforge.models.wavenet import WaveNetModel
from dlforge.preprocess import to_png
from dlforge.registry import register_serving
from dlforge.serving.served import Runner, ServedModel, card_header
from dlforge.serving.web import AppContext, BadRequest, data_url, since
from dlforge.sound import joined, sound_figure, sound_picture, to_mono, wav_bytes, write_wav
from dlforge.viz import save_figure

log = logging.getLogger("dlforge")

SAMPLERS = ("fast", "naive")
PICTURED_CLIPS = 16


def speak(cfg: DictConfig, model: WaveNetModel) -> Path:
    """Write a WaveNet's clips (one file, one file each, a picture); return the joined file's path."""
    if cfg.mode != "grid":
        raise DlforgeError(f"mode={cfg.mode}: a WaveNet speaks clips (mode=grid with n=, label=, seconds=)")
    out = Path(cfg.output) if cfg.output else Path(cfg.paths.output_dir) / "samples.wav"
    if out.suffix.lower() != ".wav":
        raise DlforgeError(f"output={out}: give a .wav path for a WaveNet's clips")
    if cfg.sampler not in SAMPLERS:
        raise DlforgeError(f"sampler={cfg.sampler}: choose one of {', '.join(SAMPLERS)}")
    if cfg.n < 1 or cfg.seconds <= 0:
        raise DlforgeError(f"n={cfg.n} seconds={cfg.seconds}: ask for at least one clip of a positive length")
    names = class_names(model)
    if cfg.label is None:
        labels = torch.arange(cfg.n) % len(names)
    else:
        labels = torch.full((cfg.n,), class_index(cfg.label, names, "label"))
    start = time.perf_counter()
    waves = model.generate(
        labels, cfg.seconds, cfg.seed, cfg.temperature, cfg.speaker, naive=cfg.sampler == "naive"
    ).cpu()
    elapsed = time.perf_counter() - start
    rate = model.sample_rate
    folder = out.with_suffix("")
    for i, wave in enumerate(waves):
        write_wav(folder / f"{i:04d}.wav", wave, rate)
    shown = list(waves[:PICTURED_CLIPS])
    titles = [f"{i:04d}: digit {names[k]}" for i, k in enumerate(labels[:PICTURED_CLIPS].tolist())]
    save_figure(sound_figure(shown, rate, titles), out.with_suffix(".png"))
    write_wav(out, joined(waves, rate), rate)
    samples = waves.numel()
    log.info(
        "%d clips of %.2f s with the %s sampler in %.1f s: %.0f samples/s, %.2fx real time; "
        "each clip in %s/, picture %s",
        len(waves), cfg.seconds, cfg.sampler, elapsed, samples / elapsed, samples / elapsed / rate, folder,
        out.with_suffix(".png"),
    )  # fmt: skip
    return out


def wav_url(wave: torch.Tensor, sample_rate: int) -> str:
    import base64

    return "data:audio/wav;base64," + base64.b64encode(wav_bytes(wave, sample_rate)).decode("ascii")


@register_serving(WaveNetModel)
class AudioGeneratorModel(ServedModel):
    """A WaveNet from its checkpoint, speaking class labels (e.g. digits) with its fast sampler."""

    task = "audio_generation"
    what = "a WaveNet checkpoint"
    panels = ("wavenet",)
    predict_hint = "sample a generator with python -m dlforge.generate"

    @classmethod
    def describe(cls, model: Any) -> dict[str, Any]:
        data = dict(model.hparams.data)
        rate = data["sample_rate"]
        wave = {"name": "waves", "dtype": "float32", "shape": ["batch", "samples"], "range": [-1, 1]}
        return {
            **card_header(model, cls.task),
            "class_names": list(data["class_names"]),
            "data": {"name": data.get("name"), "sample_rate": rate},
            "receptive_field": model.receptive_field,
            "inputs": [
                {"name": "labels", "dtype": "int64", "shape": ["batch"]},
                {"name": "seconds", "dtype": "float32", "shape": []},
                {"name": "seed", "dtype": "int64", "shape": []},
                {"name": "temperature", "dtype": "float32", "shape": []},
            ],
            "outputs": [{**wave, "rate": rate}],
        }

    @classmethod
    def runner(cls, model: Any) -> Runner:
        """The fast (cached) sampler of :meth:`WaveNetModel.generate` behind the card's inputs and outputs."""

        def run(
            labels: np.ndarray, seconds: np.ndarray, seed: np.ndarray, temperature: np.ndarray
        ) -> list[np.ndarray]:
            waves = model.generate(torch.from_numpy(labels), float(seconds), int(seed), float(temperature))
            return [waves.cpu().numpy()]

        return run

    @classmethod
    def export_refusal(cls, model: Any) -> str | None:
        return (
            "a WaveNet samples in a loop, one sample after another, outside one graph: it is served from "
            "its checkpoint (generate, the app's wavenet= panel)"
        )

    @classmethod
    def write_samples(cls, cfg: DictConfig, model: Any) -> Path:
        return speak(cfg, model)

    @property
    def sample_rate(self) -> int:
        return int(self.card["data"]["sample_rate"])

    def generate(self, label: int, seconds: float, seed: int = 0, temperature: float = 1.0) -> torch.Tensor:
        """A (T,) waveform in [-1, 1] speaking class ``label``; the same seed gives the same clip."""
        arguments = [np.array([label]), np.float32(seconds), np.int64(seed), np.float32(temperature)]
        return torch.from_numpy(self.run(*arguments)[0][0])

    def panel_info(self) -> dict[str, Any]:
        return {"sample_rate": self.sample_rate, "receptive_field": self.card["receptive_field"]}

    @classmethod
    def add_routes(cls, app: Any, context: AppContext) -> None:
        from pydantic import BaseModel, Field

        class Speak(BaseModel):
            label: int = Field(0, ge=0)
            seed: int = Field(0, ge=0, le=2**31 - 1)
            temperature: float = Field(1.0, gt=0, le=2)
            seconds: float = Field(0.5, gt=0)

        speaking = threading.Lock()  # one clip at a time: sampling is seconds of CPU
        limits = context.limits

        @app.post("/api/speak")
        def say(body: Speak) -> dict[str, Any]:
            start = time.perf_counter()
            model = context.model("wavenet")
            assert isinstance(model, AudioGeneratorModel)
            if body.label >= len(model.class_names):
                raise BadRequest(f"label must be below {len(model.class_names)}, not {body.label}")
            if body.seconds > limits.speech_seconds:
                raise BadRequest(
                    f"seconds={body.seconds:g}: a clip lasts at most {limits.speech_seconds:g} s "
                    "(limits.speech_seconds)"
                )
            if not speaking.acquire(blocking=False):
                raise BadRequest("the WaveNet is saying another clip; try again in a few seconds", 503)
            try:
                began = time.perf_counter()
                wave = model.generate(body.label, body.seconds, body.seed, body.temperature)
                generation = time.perf_counter() - began
            finally:
                speaking.release()
            rate = model.sample_rate
            judge: Any = context.find("audio_classification")
            verdict, unjudged = None, None
            if judge is not None:
                try:
                    verdict = judge.heard(to_mono(wave[None], rate, judge.sample_rate))
                except BadRequest as err:  # an exported classifier of shorter clips
                    unjudged = f"the speech model cannot judge this clip: {err}"
            return {
                "label": model.class_names[body.label],
                "audio": wav_url(wave, rate),
                "picture": data_url(to_png(sound_picture(wave, rate))),
                "seconds": len(wave) / rate,
                "generation_ms": round(1000 * generation, 1),
                "realtime": round(len(wave) / rate / generation, 3),
                "verdict": verdict,
                "verdict_error": unjudged,
                "ms": since(start),
            }
