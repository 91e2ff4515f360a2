"""Spoken digits: ``recordings/{digit}_{speaker}_{index}.wav`` (the Free Spoken Digit Dataset's layout),
8 kHz mono 16-bit, decoded once into an int16 tensor of zero-padded clips and cached.

The data module serves plain waveforms; each model owns its input transform (WaveNet: mu-law levels,
the classifier: a log-mel front end inside the network) and its training-time augmentation, built
from the helpers here (:func:`random_windows`, :func:`random_shift`), so a checkpoint takes raw audio.
Splits are by speaker: the voices of the test (and validation) split are never heard in training.
"""

from __future__ import annotations

import hashlib
import logging
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from dlforge.data.tensors import TensorBatches, TensorDataModule
from dlforge.errors import DataNotFoundError, DlforgeError, first_line
from dlforge.sound import read_wav

log = logging.getLogger(__name__)

#: the real FSDD (6 speakers x 10 digits x 50 takes, 8 kHz): the archive of its public git repository
FSDD_ARCHIVE = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/heads/master.zip"
CLIP_NAME = re.compile(r"^(\d)_(.+)_(\d+)\.wav$")
DIGITS = [str(d) for d in range(10)]


def gather_padded(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``x[i, positions[i, j]]`` for each row, zero where a position falls outside ``x``'s time axis."""
    inside = (positions >= 0) & (positions < x.shape[1])
    values = x.gather(1, positions.clamp(0, x.shape[1] - 1))
    return torch.where(inside, values, torch.zeros((), dtype=x.dtype, device=x.device))


def random_offsets(high: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One uniform integer in ``[0, high[i]]`` per entry (``high`` clamped at 0)."""
    u = torch.rand(high.shape, device=high.device, generator=generator)
    return (u * (high.clamp_min(0) + 1)).floor().long()


def random_windows(
    lengths: torch.Tensor, size: int, context: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random fixed-length training crop per clip, with the samples before it that a causal model needs.

    Each crop is centred on a uniformly drawn recorded sample, so a clip's first samples (spoken
    after silence) are targets as often as its middle. Returns the absolute positions
    ``(N, context + size)`` of the crop and its ``context`` predecessors (negative: the silence
    before the clip, read as zeros by :func:`gather_padded`) and a ``(N, size)`` mask of the crop
    positions that hold recorded samples.
    """
    start = random_offsets(lengths - 1, generator) - size // 2
    positions = start[:, None] + torch.arange(-context, size, device=lengths.device)
    targets = positions[:, context:]
    return positions, (targets >= 0) & (targets < lengths[:, None])


def random_shift(
    waves: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Move each zero-padded clip (N, T) to a random start within its window, zeros around it."""
    shift = random_offsets(waves.shape[1] - lengths, generator)
    positions = torch.arange(waves.shape[1], device=waves.device) - shift[:, None]
    return gather_padded(waves, positions)


#: ``data.test_speakers='re:<regular expression>'``: every speaker whose name it matches (re.search)
PATTERN = "re:"
#: what ``data.test_speakers`` and ``data.val_speakers`` take (the command line checks values against it)
Speakers = float | str | Sequence[str]


def pick_speakers(speakers: list[str], amount: Speakers, what: str) -> list[str]:
    """``amount`` of the (already shuffled) ``speakers``: a fraction < 1, a count, a pattern
    ``re:<regular expression>`` (every speaker whose name it matches: an accent, a variant), a list of
    names, or one name."""
    if isinstance(amount, bool):
        raise DlforgeError(
            f"data.{what}={str(amount).lower()}: give a fraction, a count, 're:<pattern>' or names"
        )
    if isinstance(amount, (int, float)):
        n = max(1, round(amount * len(speakers))) if 0 < amount < 1 else int(amount)
        return speakers[:n]
    if isinstance(amount, str) and amount.startswith(PATTERN):
        return matching_speakers(speakers, amount, what)
    names = [amount] if isinstance(amount, str) else [str(name) for name in amount]
    unknown = sorted(set(names) - set(speakers))
    if unknown:
        hint = f" (a pattern is written '{PATTERN}{names[0]}')" if isinstance(amount, str) else ""
        raise DlforgeError(
            f"data.{what}: no recordings of {unknown}{hint}; speakers here: {sorted(speakers)}"
        )
    return names


def matching_speakers(speakers: list[str], pattern: str, what: str) -> list[str]:
    """The ``speakers`` whose names the regular expression of ``re:<expression>`` matches (anywhere:
    anchor it with ``^`` for a prefix); some, but not all of them."""
    expression = pattern.removeprefix(PATTERN)
    try:
        regex = re.compile(expression)
    except re.error as err:
        raise DlforgeError(f"data.{what}='{pattern}' is not a regular expression ({err})") from None
    chosen = [name for name in speakers if regex.search(name)]
    if not chosen or len(chosen) == len(speakers):
        which = "no speaker" if not chosen else f"every speaker (all {len(speakers)})"
        raise DlforgeError(
            f"data.{what}='{pattern}' matches {which}; write a pattern that holds out some of: "
            f"{', '.join(sorted(speakers))}"
        )
    return chosen


class SpokenDigitsDataModule(TensorDataModule):
    """Spoken digits 0-9, split by speaker, served as float waveforms in [-1, 1].

    Batches are ``(waves (N, T), labels, lengths, speakers)``: every clip zero-padded (or trimmed) to
    ``clip_seconds``, its recorded length in samples, and its speaker's index in ``spec["speakers"]``
    (the training voices) plus one; 0 for a voice not heard in training.

    Args:
        data_dir: data root (``paths.data_dir``); the clips are in ``<data_dir>/spoken-digits/recordings``.
        root: any folder with ``recordings/{digit}_{speaker}_{index}.wav`` instead.
        sample_rate: the rate every clip must have (FSDD: 8000 Hz).
        clip_seconds: clips are padded with silence (or trimmed, with a warning) to this length.
        test_speakers, val_speakers: voices held out: a fraction of the speakers, a count, a list of
            names, or ``re:<regular expression>``: every speaker whose name it matches (``re:^enus``: an
            accent); validation voices come from the rest, the rest of those (seeded shuffle by
            ``seed``) are the training voices.
        cache_dir: where the decoded tensors are kept (keyed by the files, their sizes and times).
        download: fetch the real FSDD recordings (its public git repository) when the folder is missing.
        loader: ``batch_size``, ``eval_batch_size``, ``num_workers``, ``pin_memory``, ``on_device``
            (:class:`~dlforge.data.datamodule.LoaderOptions`).
    """

    name = "spoken_digits"
    loader_defaults: ClassVar[dict[str, Any]] = {"batch_size": 32}

    def __init__(
        self,
        data_dir: str = "data",
        root: str | None = None,
        sample_rate: int = 8000,
        clip_seconds: float = 1.0,
        test_speakers: Speakers = 0.2,
        val_speakers: Speakers = 0.1,
        cache_dir: str | None = None,
        download: bool = True,
        seed: int = 0,
        **loader: Any,
    ) -> None:
        super().__init__(**loader)
        self.root = Path(root).expanduser() if root else Path(data_dir).expanduser() / "spoken-digits"
        self.sample_rate = sample_rate
        self.clip_samples = round(clip_seconds * sample_rate)
        self.test_speakers, self.val_speakers = test_speakers, val_speakers
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.download = download
        self.seed = seed
        self.speakers: list[str] = []  # the training voices; a checkpoint's list with adopt_spec
        self.adopted: list[str] | None = None

    @property
    def recordings(self) -> Path:
        return self.root / "recordings"

    # --- files -------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        if self.recordings.is_dir():
            return
        if not self.download:
            raise DataNotFoundError(
                f"no spoken digits at {self.recordings} and download is off (data.download=false); set "
                "data.root=<folder with recordings/{digit}_{speaker}_{index}.wav> or DATA_DIR"
            )
        self.fetch()

    def fetch(self) -> None:
        """Download the FSDD repository's archive and unpack its ``recordings/*.wav`` into :attr:`root`."""
        from torchvision.datasets.utils import download_url

        archive = self.root / "fsdd-master.zip"
        try:
            download_url(FSDD_ARCHIVE, str(self.root), archive.name)
            with zipfile.ZipFile(archive) as z:
                members = [m for m in z.namelist() if "/recordings/" in m and m.endswith(".wav")]
                self.recordings.mkdir(parents=True, exist_ok=True)
                for member in members:
                    (self.recordings / Path(member).name).write_bytes(z.read(member))
        except (OSError, RuntimeError, zipfile.BadZipFile) as err:
            raise DataNotFoundError(
                f"no spoken digits at {self.recordings} and the FSDD download failed ({first_line(err)}); "
                "put the clips there, or set data.root (or DATA_DIR) to a folder holding recordings/"
            ) from None
        finally:
            archive.unlink(missing_ok=True)

    def clip_files(self) -> list[tuple[Path, int, str]]:
        """``(path, digit, speaker)`` of every clip named ``{digit}_{speaker}_{index}.wav``, sorted."""
        if not self.recordings.is_dir():
            raise DataNotFoundError(f"no folder {self.recordings}; set data.root or DATA_DIR")
        files, strays = [], []
        for path in sorted(self.recordings.glob("*.wav")):
            match = CLIP_NAME.match(path.name)
            if match:
                files.append((path, int(match[1]), match[2]))
            else:
                strays.append(path.name)
        if strays:
            log.warning(
                "ignoring %d .wav files not named {digit}_{speaker}_{index}.wav: %s", len(strays), strays[:3]
            )
        if not files:
            raise DlforgeError(f"no clips named {{digit}}_{{speaker}}_{{index}}.wav in {self.recordings}")
        return files

    def decode(self) -> dict[str, Any]:
        """Every clip as int16 rows of ``clip_samples`` (zero-padded), with lengths, digits and speakers."""
        files = self.clip_files()
        cache = self.cache_file(files)
        if cache is not None and cache.exists():
            return torch.load(cache, weights_only=True)
        log.info("decoding %d clips in %s", len(files), self.recordings)
        clips = torch.zeros(len(files), self.clip_samples, dtype=torch.int16)
        lengths = torch.zeros(len(files), dtype=torch.long)
        trimmed = 0
        for i, (path, _, _) in enumerate(files):
            wave = read_wav(path, self.sample_rate)
            trimmed += len(wave) > self.clip_samples
            wave = wave[: self.clip_samples]
            clips[i, : len(wave)] = (wave * 32768).round().clamp(-32768, 32767).to(torch.int16)
            lengths[i] = len(wave)
        if trimmed:
            log.warning("%d clips are longer than data.clip_seconds and were trimmed", trimmed)
        decoded = {
            "clips": clips,
            "lengths": lengths,
            "labels": torch.tensor([digit for _, digit, _ in files]),
            "speakers": [speaker for _, _, speaker in files],
        }
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp")
            torch.save(decoded, tmp)
            tmp.replace(cache)
        return decoded

    def cache_file(self, files: list[tuple[Path, int, str]]) -> Path | None:
        if self.cache_dir is None:
            return None
        digest = hashlib.sha1(f"{self.sample_rate}|{self.clip_samples}".encode())
        for path, _, _ in files:
            stat = path.stat()
            digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        return self.cache_dir / "spoken_digits" / f"{digest.hexdigest()[:16]}.pt"

    # --- splits ------------------------------------------------------------------------------
    def split_speakers(self, speakers: Sequence[str]) -> dict[str, list[str]]:
        """Seeded shuffle of the voices into test, validation and training speakers."""
        names = sorted(set(speakers))
        order = torch.randperm(len(names), generator=torch.Generator().manual_seed(self.seed)).tolist()
        shuffled = [names[i] for i in order]
        test = pick_speakers(shuffled, self.test_speakers, "test_speakers")
        rest = [name for name in shuffled if name not in test]
        val = pick_speakers(rest, self.val_speakers, "val_speakers")
        train = [name for name in rest if name not in val]
        if not train:
            raise DlforgeError(
                f"data.test_speakers and data.val_speakers leave none of the {len(names)} speakers for "
                "training; hold out fewer"
            )
        return {"train": sorted(train), "val": sorted(val), "test": sorted(test)}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        data = self.decode()
        voices = self.split_speakers(data["speakers"])
        self.speakers = list(self.adopted) if self.adopted is not None else voices["train"]
        index = {name: i + 1 for i, name in enumerate(self.speakers)}
        speaker_ids = torch.tensor([index.get(name, 0) for name in data["speakers"]])
        for split, names in voices.items():
            keep = torch.tensor([name in names for name in data["speakers"]])
            self.splits[split] = TensorBatches(
                data["clips"][keep], data["labels"][keep], data["lengths"][keep], speaker_ids[keep]
            )
        log.info(
            "%s: %s clips (%s speakers) for train / val / test, %.2f s at %d Hz",
            self.name,
            " / ".join(str(len(self.splits[s])) for s in ("train", "val", "test")),
            " / ".join(str(len(voices[s])) for s in ("train", "val", "test")),
            self.clip_samples / self.sample_rate,
            self.sample_rate,
        )

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        clips, *rest = batch
        return (clips.float().div_(32768), *rest)

    @property
    def spec(self) -> dict[str, Any]:
        if not self.splits:
            self.setup()
        return {
            "name": self.name,
            "sample_rate": self.sample_rate,
            "clip_samples": self.clip_samples,
            "num_classes": len(DIGITS),
            "class_names": list(DIGITS),
            "speakers": list(self.speakers),
        }

    def adopt_spec(self, spec: dict[str, Any]) -> None:
        """A checkpoint's rate, clip length and training voices (speaker indices as it learned them)."""
        if spec.get("sample_rate"):
            self.sample_rate = int(spec["sample_rate"])
            self.clip_samples = int(spec.get("clip_samples") or self.clip_samples)
        if spec.get("speakers") is not None:
            self.adopted = list(spec["speakers"])
