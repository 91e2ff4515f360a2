"""Serving audio classifiers (e.g. spoken digits).

Graph: ``waves`` float (N, samples) in [-1, 1] at the card's rate -> ``logits``, ``probabilities``.
Predict: ``audio=<file.wav>`` prints the top classes, ``audio=<folder>`` writes a CSV of every ``.wav``.
App panel: ``speech`` (upload a clip of any rate and channel count; it is converted to the model's).
"""

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from dlforge.errors import DlforgeError
from dlforge.models.audio import AudioClassifier
from dlforge.preprocess import to_png
from dlforge.registry import register_serving
from dlforge.serving.classifier import CLASSIFIER_OUTPUTS, ClassifierServing
from dlforge.serving.served import card_header
from dlforge.serving.web import AppContext, BadRequest, classes, data_url, since
from dlforge.sound import AudioInputError, decode_wav, read_wav, sound_picture, to_mono

log = logging.getLogger("dlforge")


@register_serving(AudioClassifier)
class AudioClassifierModel(ClassifierServing):
    task = "audio_classification"
    what = "an audio classifier"
    panels = ("speech",)

    @classmethod
    def describe(cls, model: Any) -> dict[str, Any]:
        data = dict(model.hparams.data)
        wave = {"name": "waves", "dtype": "float32", "shape": ["batch", "samples"], "range": [-1, 1]}
        return {
            **card_header(model, cls.task),
            "class_names": list(data["class_names"]),
            "data": {key: data[key] for key in ("name", "sample_rate", "clip_samples")},
            "inputs": [{**wave, "rate": data["sample_rate"]}],
            "outputs": CLASSIFIER_OUTPUTS,
        }

    @classmethod
    def example_inputs(cls, model: Any, n: int, seed: int) -> tuple[torch.Tensor, ...]:
        """Clips of uniform noise in [-1, 1], as long as the training clips."""
        generator = torch.Generator().manual_seed(seed)
        return (torch.rand(n, model.hparams.data["clip_samples"], generator=generator) * 2 - 1,)

    @property
    def sample_rate(self) -> int:
        return int(self.card["data"]["sample_rate"])

    @property
    def clip_samples(self) -> int:
        return int(self.card["data"]["clip_samples"])

    def read(self, source: str | Path | bytes) -> torch.Tensor:
        """A mono PCM WAV file (path or bytes) at the model's rate as a (T,) waveform; anything else
        raises :class:`dlforge.sound.AudioInputError` saying what is wrong."""
        return read_wav(source, self.sample_rate)

    def classify(self, waves: Sequence[torch.Tensor]) -> torch.Tensor:
        """Class probabilities (N, classes) for waveforms, each (T,) in [-1, 1]: clips shorter than the
        training clips are padded with silence, as those were; a checkpoint also takes longer ones,
        an exported graph (fixed length) refuses them."""
        longest = max(self.clip_samples, *(len(wave) for wave in waves))
        if longest > self.clip_samples and self.backend != "pytorch":
            raise AudioInputError(
                f"a clip of {longest / self.sample_rate:.2f} s: this exported model takes at most "
                f"{self.clip_samples / self.sample_rate:.2f} s; trim it (sox in.wav out.wav trim 0 1) or use "
                "the checkpoint"
            )
        batch = torch.stack([F.pad(wave.float().cpu(), (0, longest - len(wave))) for wave in waves])
        return torch.from_numpy(self.run(batch.numpy())[1])

    def heard(self, wave: torch.Tensor) -> dict[str, Any]:
        """The app's answer for a (T,) waveform at the model's rate (413 when an export cannot take it)."""
        try:
            return classes(self, self.classify([wave])[0])
        except AudioInputError as err:
            raise BadRequest(str(err), 413) from None

    def predict(self, cfg: DictConfig) -> dict[str, Any]:
        """Classify ``cfg.audio`` (a WAV file: printed) or every ``.wav`` in it (a folder: a CSV)."""
        if cfg.get("audio") is None:
            raise DlforgeError(
                f"{self.source} is an audio classifier: pass audio=<WAV file or folder of them>"
            )
        source = Path(str(cfg.audio)).expanduser()
        single = source.is_file()
        if not single and not source.is_dir():
            raise DlforgeError(f"no WAV file or folder at {source}")
        paths, clips = [], []
        for path in [source] if single else sorted(source.glob("*.wav")):
            try:
                clips.append(self.read(path))
                paths.append(str(path))
            except AudioInputError as err:
                if single:
                    raise
                log.warning("skipping %s: %s", path, err)
        if not clips:
            raise DlforgeError(f"no usable .wav clips in {source}")
        size = cfg.batch_size
        probs = torch.cat([self.classify(clips[i : i + size]) for i in range(0, len(clips), size)])
        return self.report(cfg, paths, probs, "clip", single)

    def panel_info(self) -> dict[str, Any]:
        return {"sample_rate": self.sample_rate, "clip_seconds": self.clip_samples / self.sample_rate}

    @classmethod
    def add_routes(cls, app: Any, context: AppContext) -> None:
        from typing import Annotated

        from fastapi import File, UploadFile

        limits = context.limits

        @app.post("/api/hear")
        def hear(audio: Annotated[UploadFile, File()]) -> dict[str, Any]:
            start = time.perf_counter()
            model = context.model("speech")
            assert isinstance(model, AudioClassifierModel)
            name = audio.filename or "the upload"
            data = audio.file.read(limits.upload_bytes + 1)
            if len(data) > limits.upload_bytes:
                raise BadRequest(f"the sound file is larger than {limits.upload_bytes / 1e6:g} MB", 413)
            try:
                samples, rate = decode_wav(data, name, model.sample_rate)
            except AudioInputError as err:
                raise BadRequest(str(err), 415) from None
            seconds = samples.shape[1] / rate
            if seconds > limits.audio_seconds:
                raise BadRequest(
                    f"{name} lasts {seconds:.1f} s; the limit is {limits.audio_seconds:g} s", 413
                )
            wave = to_mono(samples, rate, model.sample_rate)  # what a phone records: stereo, 44.1 kHz
            converted = None
            if rate != model.sample_rate or len(samples) > 1:
                channels = "mono" if len(samples) == 1 else f"{len(samples)} channels"
                converted = f"{rate} Hz {channels} -> {model.sample_rate} Hz mono"
            answer = model.heard(wave)
            answer.update(
                seconds=round(seconds, 3),
                converted=converted,
                input=data_url(to_png(sound_picture(wave, model.sample_rate))),
                ms=since(start),
            )
            return answer
