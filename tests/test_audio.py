"""Audio: WAV files, the spoken-digits data, WaveNet (causality, fast sampling, learning), the audio
classifier, and the train / generate / predict command lines on tiny tone-and-noise clips."""

from __future__ import annotations

import csv
import json
import math
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlforge.checkpoint import load_model
from dlforge.data.spoken_digits import SpokenDigitsDataModule, gather_padded, random_shift, random_windows
from dlforge.errors import DlforgeError
from dlforge.models import AudioClassifier, WaveNetModel
from dlforge.nets import build_net
from dlforge.sound import AudioInputError, read_wav, write_wav
from dlforge.training import train

RATE = 8000
SPEAKERS = ["anna", "bert", "cleo", "dave", "erik"]
#: a few CPU steps on the tiny clips (0.25 s windows)
FAST_AUDIO = (
    "data=spoken_digits",
    "data.clip_seconds=0.25",
    "data.batch_size=8",
    "data.eval_batch_size=16",
    "trainer=cpu",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.log_every_n_steps=1",
    "trainer.enable_model_summary=false",
    "threads=1",
)
TINY_WAVENET = (
    "model=wavenet",
    "model.net.layers=3",
    "model.net.stacks=2",
    "model.net.residual_channels=8",
    "model.net.gate_channels=8",
    "model.net.skip_channels=16",
    "model.net.condition_channels=8",
    "model.crop=200",
    "model.samples.seconds=0.02",
    "optimizer.lr=0.01",
)


@pytest.fixture(autouse=True)
def one_thread():
    """WaveNet's many small operations run fastest on one thread of a shared CPU (two threads wait for
    each other); train.py runs are given threads=1 for the same reason."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_pcm(path: Path, samples: np.ndarray, rate: int = RATE, channels: int = 1, width: int = 2) -> Path:
    """A PCM WAV file with the standard ``wave`` module (``samples`` in [-1, 1], interleaved if stereo)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scale = 2 ** (8 * width - 1) - 1
    dtype = {1: np.uint8, 2: "<i2", 4: "<i4"}[width]
    pcm = (samples * scale + (128 if width == 1 else 0)).round().astype(dtype)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(width)
        f.setframerate(rate)
        f.writeframes(pcm.tobytes())
    return path


def digit_clip(digit: int, speaker: int, take: int) -> np.ndarray:
    """Digit ``d`` as a tone of 300 + 150 d Hz (each voice a little higher) under a Hann envelope,
    with a little noise: 0.15 to 0.25 s, like a silence-trimmed spoken digit."""
    rng = np.random.default_rng(100 * digit + 10 * speaker + take)
    n = int(RATE * (0.15 + 0.1 * rng.random()))
    t = np.arange(n) / RATE
    tone = np.sin(2 * np.pi * (300 + 150 * digit) * (1 + 0.03 * speaker) * t)
    return 0.5 * np.hanning(n) * tone + 0.02 * rng.standard_normal(n)


def write_spoken_digits(root: Path, takes: int = 2) -> Path:
    """``root/recordings/{digit}_{speaker}_{take}.wav`` for 10 digits x 5 voices x ``takes``."""
    for digit in range(10):
        for s, speaker in enumerate(SPEAKERS):
            for take in range(takes):
                write_pcm(root / "recordings" / f"{digit}_{speaker}_{take}.wav", digit_clip(digit, s, take))
    return root


@pytest.fixture(scope="module")
def digits_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_spoken_digits(tmp_path_factory.mktemp("spoken-digits"))


def train_cfg(make_cfg, root: Path, *overrides: str):
    return make_cfg(*FAST_AUDIO, f"data.root={root}", *overrides)


def logged(metrics_csv: Path, key: str) -> list[float]:
    with open(metrics_csv) as f:
        return [float(row[key]) for row in csv.DictReader(f) if row.get(key)]


@pytest.fixture(scope="module")
def classifier_ckpt(tmp_path_factory: pytest.TempPathFactory, digits_root: Path, data_dir: Path) -> Path:
    from hydra import compose, initialize_config_dir

    from dlforge import CONF_DIR

    out = tmp_path_factory.mktemp("audio_cnn")
    overrides = [f"paths.data_dir={data_dir}", f"paths.cache_dir={out / 'cache'}", *FAST_AUDIO]
    overrides += [f"data.root={digits_root}", "model=audio_cnn", "trainer.max_epochs=3"]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    cfg.paths.output_dir = str(out)
    summary = train(cfg)
    return Path(summary["last_checkpoint"])


# --- WAV files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [1, 2, 4])
def test_wav_files_round_trip(tmp_path: Path, width: int) -> None:
    samples = np.sin(np.linspace(0, 20, 500)) * 0.8
    back = read_wav(write_pcm(tmp_path / "a.wav", samples, width=width), RATE)
    assert back.shape == (500,) and back.dtype == torch.float32
    assert np.abs(back.numpy() - samples).max() < max(2 / 2 ** (8 * width - 1), 1e-6)  # float32 for 32-bit
    written = write_wav(tmp_path / "b.wav", back, RATE)
    assert torch.allclose(read_wav(written.read_bytes()), back, atol=1e-4)  # from bytes too


def bad_wavs(folder: Path) -> dict[str, tuple[Path, str]]:
    """Files a user might pass, each wrong in one way, and a phrase its error must hold."""
    tone = np.sin(np.linspace(0, 50, 800)) * 0.5
    truncated = write_pcm(folder / "truncated.wav", tone)
    truncated.write_bytes(truncated.read_bytes()[:-600])
    not_audio = folder / "notes.wav"
    not_audio.write_text("a shopping list, not a sound")
    return {
        "rate": (write_pcm(folder / "cd.wav", tone, rate=44100), "sampled at 44100 Hz"),
        "stereo": (write_pcm(folder / "stereo.wav", np.repeat(tone, 2), channels=2), "2 channels"),
        "truncated": (truncated, "truncated"),
        "not audio": (not_audio, "not a PCM WAV file"),
    }


def test_bad_wavs_are_refused_with_what_is_wrong(tmp_path: Path) -> None:
    for path, phrase in bad_wavs(tmp_path).values():
        with pytest.raises(AudioInputError, match=phrase) as err:
            read_wav(path, RATE)
        assert str(path) in str(err.value) and "\n" not in str(err.value)
    empty = write_pcm(tmp_path / "empty.wav", np.zeros(0))
    with pytest.raises(AudioInputError, match="no samples"):
        read_wav(empty, RATE)


# --- the data --------------------------------------------------------------------------------


def test_spoken_digits_split_by_speaker_and_cached(digits_root: Path, tmp_path: Path) -> None:
    data = SpokenDigitsDataModule(root=str(digits_root), clip_seconds=0.25, cache_dir=str(tmp_path), seed=3)
    data.prepare_data()
    data.setup("fit")
    voices: dict[str, set[int]] = {}
    decoded = data.decode()
    for split, batches in data.splits.items():
        clips, _, lengths, speakers = batches.tensors
        assert clips.dtype == torch.int16 and clips.shape[1] == 2000
        assert int(lengths.min()) >= 1200 and int(lengths.max()) <= 2000
        voices[split] = set(speakers.tolist())
    assert len(data.splits["train"]) + len(data.splits["val"]) + len(data.splits["test"]) == 100
    assert voices["val"] == voices["test"] == {0}  # voices not heard in training have no index
    assert voices["train"] == {1, 2, 3}
    spec = data.spec
    assert spec["sample_rate"] == RATE and spec["clip_samples"] == 2000 and spec["num_classes"] == 10
    heard = set(spec["speakers"])
    held_out = set(decoded["speakers"]) - heard
    assert len(heard) == 3 and len(held_out) == 2
    assert len(list((tmp_path / "spoken_digits").glob("*.pt"))) == 1
    first = decoded["clips"][0, : int(decoded["lengths"][0])].float() / 32768
    assert torch.allclose(first, read_wav(sorted((digits_root / "recordings").glob("*.wav"))[0]), atol=1e-4)
    named = SpokenDigitsDataModule(root=str(digits_root), clip_seconds=0.25, test_speakers=["anna", "bert"])
    named.setup()
    assert len(named.spec["speakers"]) == 2 and not {"anna", "bert"} & set(named.speakers)


def test_bad_training_clips_stop_with_one_clear_error(make_cfg, tmp_path: Path, digits_root: Path) -> None:
    root = tmp_path / "digits"
    (root / "recordings").mkdir(parents=True)
    for path in (digits_root / "recordings").glob("[01]_*.wav"):
        (root / "recordings" / path.name).write_bytes(path.read_bytes())
    path, _ = bad_wavs(tmp_path)["rate"]
    path.rename(root / "recordings" / "3_anna_0.wav")
    with pytest.raises(DlforgeError, match=r"3_anna_0.wav is sampled at 44100 Hz.*sox"):
        train(train_cfg(make_cfg, root, "model=audio_cnn"))
    with pytest.raises(DlforgeError, match=r"no spoken digits at .* download is off"):
        train(train_cfg(make_cfg, tmp_path / "nowhere", "model=audio_cnn", "data.download=false"))


def test_training_crops_and_shifts() -> None:
    lengths = torch.tensor([50, 500, 1000])
    positions, mask = random_windows(
        lengths, size=100, context=20, generator=torch.Generator().manual_seed(0)
    )
    assert positions.shape == (3, 120) and mask.shape == (3, 100)
    assert torch.equal(positions[:, 1:] - positions[:, :-1], torch.ones(3, 119, dtype=torch.long))
    centre = positions[:, 20 + 50]  # each crop is centred on a recorded sample
    assert (centre >= 0).all() and (centre < lengths).all()
    targets = positions[:, 20:]
    assert torch.equal(mask, (targets >= 0) & (targets < lengths[:, None]))
    starts = torch.cat([random_windows(lengths, 100, 20)[0][:, 20] for _ in range(200)])
    assert (starts < 0).any()  # clips' first samples are targets too, after silence
    x = torch.arange(1, 11.0)[None]
    assert gather_padded(x, torch.tensor([[-2, -1, 0, 9, 10]])).tolist() == [[0, 0, 1, 10, 0]]
    waves = torch.zeros(4, 30)
    waves[:, :10] = torch.arange(1, 11.0)
    shifted = random_shift(waves, torch.full((4,), 10))
    for row in shifted:  # the clip, whole, somewhere in its window
        start = int(row.nonzero()[0])
        assert torch.equal(row[start : start + 10], torch.arange(1, 11.0)) and row.count_nonzero() == 10


# --- WaveNet ---------------------------------------------------------------------------------


def tiny_wavenet(**options) -> torch.nn.Module:
    sizes = {"residual_channels": 8, "gate_channels": 8, "skip_channels": 16, "condition_channels": 8}
    return build_net("wavenet", num_classes=10, layers=4, stacks=2, **{**sizes, **options})


def test_wavenet_outputs_never_depend_on_later_samples() -> None:
    torch.manual_seed(0)
    net = tiny_wavenet().double().eval()
    assert net.receptive_field == 2 + 2 * (1 + 2 + 4 + 8)
    x = torch.rand(2, 120, dtype=torch.double) * 2 - 1
    labels = torch.tensor([3, 7])
    logits = net(x, labels)
    assert logits.shape == (2, 256, 120)
    for t in (0, 1, 50, 119):  # changing x[t:] leaves every prediction up to t (of x[t]) unchanged
        changed = x.clone()
        changed[:, t:] = torch.rand(2, 120 - t, dtype=torch.double)
        after = net(changed, labels)
        assert torch.equal(after[:, :, : t + 1], logits[:, :, : t + 1])
        if t < 119:
            assert not torch.allclose(after[:, :, t + 1], logits[:, :, t + 1])
    far = x.clone()  # and it reads exactly its receptive field: a sample further back changes nothing
    far[:, 10] += 0.5
    assert torch.equal(
        net(far, labels)[:, :, 10 + net.receptive_field + 1 :], logits[:, :, 10 + net.receptive_field + 1 :]
    )
    assert not torch.equal(
        net(far, labels)[:, :, 10 + net.receptive_field], logits[:, :, 10 + net.receptive_field]
    )


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_fast_sampler_draws_what_the_naive_one_draws(temperature: float) -> None:
    torch.manual_seed(1)
    net = tiny_wavenet(num_speakers=3, speaker_conditioning=True).double().eval()
    steps = 3 * net.receptive_field  # well past the point where the queues are full
    uniforms = torch.rand(steps, 3, generator=torch.Generator().manual_seed(5))
    labels, speakers = torch.tensor([0, 4, 9]), torch.tensor([0, 1, 3])
    fast = net.generate(labels, uniforms, speakers, temperature)
    assert torch.equal(fast, net.generate_naive(labels, uniforms, speakers, temperature))
    assert fast.shape == (3, steps) and len(fast.unique()) > 20
    other = net.generate(labels, torch.rand(steps, 3, generator=torch.Generator().manual_seed(6)), speakers)
    assert not torch.equal(fast, other)


def test_a_tiny_wavenet_learns_a_periodic_signal() -> None:
    torch.manual_seed(0)
    net = tiny_wavenet()
    t = torch.arange(600)
    wave_ = 0.6 * torch.sin(2 * math.pi * t / 16) + 0.3 * torch.sign(torch.sin(2 * math.pi * t / 48))
    levels = torchaudio_levels(wave_.repeat(4, 1))
    x, labels = net.signal(levels), torch.zeros(4, dtype=torch.long)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    bits = []
    for _ in range(80):
        loss = F.cross_entropy(net(x, labels)[:, :, net.receptive_field :], levels[:, net.receptive_field :])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        bits.append(loss.item() / math.log(2))
    assert bits[0] > 7 and bits[-1] < 1.5, f"NLL {bits[0]:.2f} -> {bits[-1]:.2f} bits per sample"


def torchaudio_levels(waves: torch.Tensor) -> torch.Tensor:
    from torchaudio.functional import mu_law_encoding

    return mu_law_encoding(waves, 256)


# --- the models through train.py's path ------------------------------------------------------


def same_picture(a: Path, b: Path) -> bool:
    """Two PNG files show the same pixels."""
    from PIL import Image

    return np.array_equal(np.asarray(Image.open(a).convert("RGB")), np.asarray(Image.open(b).convert("RGB")))


def test_audio_classifier_trains_and_its_loss_falls(classifier_ckpt: Path, tmp_path: Path) -> None:
    from types import SimpleNamespace

    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from dlforge.callbacks.classifier import ConfusionMatrix

    run = classifier_ckpt.parents[1]
    losses = logged(run / "metrics.csv", "train/loss_step")
    assert len(losses) == 12 and np.mean(losses[-3:]) < np.mean(losses[:3])
    record = json.loads((run / "metrics.json").read_text())
    assert "val/acc" in record["metrics"]
    # the test figures are the tested (best) model's on the test batch: recomputed here from the clips
    best = load_model(record["best_checkpoint"], AudioClassifier)
    data = instantiate(OmegaConf.load(run / "config.yaml").data)
    waves, labels, *_ = data.on_after_batch_transfer(next(iter(data.test_dataloader())), 0)
    with torch.no_grad():
        predicted = best(waves).argmax(dim=1)
    matrix = torch.bincount(labels * 10 + predicted, minlength=100).view(10, 10)
    assert int(matrix.sum()) == 16  # one test batch (limit_test_batches=1) of eval_batch_size
    assert record["metrics"]["test/acc"] == pytest.approx(float((predicted == labels).float().mean()))
    with open(run / "confusion_matrix.csv") as f:
        assert [[int(v) for v in row[1:]] for row in list(csv.reader(f))[1:]] == matrix.tolist()
    ConfusionMatrix.write(  # the picture of this matrix, drawn afresh, is the one in the run dir
        SimpleNamespace(loggers=[]),
        SimpleNamespace(run_dir=tmp_path, hparams=best.hparams, test_confusion=best.test_confusion),
        matrix,
    )
    assert same_picture(run / "confusion_matrix.png", tmp_path / "confusion_matrix.png")
    # short clips are padded with silence to the training clips' length, their samples kept as they are
    model = load_model(classifier_ckpt, AudioClassifier)
    clip = torch.from_numpy(digit_clip(3, 0, 0)[:900]).float().repeat(2, 1)  # no sample is 0
    heard: list[torch.Tensor] = []
    hook = model.net.register_forward_pre_hook(lambda _, args: heard.append(args[0]))
    with torch.no_grad():
        short = model(clip)
        hook.remove()
        silence_after = model(F.pad(clip, (0, model.clip_samples - 900)))
    assert short.shape == (2, 10) and torch.equal(short, silence_after)
    assert clip.all() and heard[0].shape == (2, model.clip_samples)
    assert torch.equal(heard[0][:, :900], clip) and not heard[0][:, 900:].any()


def test_wavenet_trains_its_nll_falls_and_logs_quality(
    make_cfg, digits_root: Path, classifier_ckpt: Path, tmp_path: Path
) -> None:
    from dlforge.callbacks.wavenet import AudioSamples, DigitQualityMonitor
    from dlforge.sound import joined, sound_figure
    from dlforge.viz import save_figure

    cfg = train_cfg(
        make_cfg, digits_root, *TINY_WAVENET, "trainer.max_epochs=3", "trainer.limit_train_batches=8",
        f"quality_classifier={classifier_ckpt}",
        "quality_samples=20", "quality_every_n_epochs=3", "model.samples.seconds=0.05",
    )  # fmt: skip
    summary = train(cfg)
    run = Path(cfg.paths.output_dir)
    nll = logged(run / "metrics.csv", "train/nll_step")
    assert nll[0] > 7.5 and np.mean(nll[-4:]) < np.mean(nll[:4]) - 0.5, nll  # from a uniform guess (8 bits)
    metrics = summary["metrics"]
    assert metrics["test/nll"] < 8 and metrics["receptive_field_ms"] == pytest.approx(1000 * 16 / RATE)
    quality = json.loads((run / "sample_quality.json").read_text())
    assert quality["test"]["num_samples"] == 20 and sum(quality["test"]["class_counts"]) == 20
    assert quality["test"]["extractor"].startswith(f"{classifier_ckpt.name} (audio_cnn on spoken_digits")
    # the test's quality figures: how the classifier hears the tested (best) model's 20 clips, digits in
    # turn from the monitor's seed, recomputed here from the clips
    best = load_model(summary["best_checkpoint"], WaveNetModel)
    asked = torch.arange(20) % 10
    monitor = DigitQualityMonitor(str(classifier_ckpt))
    clips = best.generate(asked, quality["test"]["seconds"], monitor.seed, quality["test"]["temperature"])
    with torch.no_grad():
        probs = load_model(classifier_ckpt, AudioClassifier)(clips).softmax(dim=1)
    heard = probs.argmax(dim=1)
    assert metrics["quality/digit_acc"] == pytest.approx(float((heard == asked).float().mean()))
    assert metrics["quality/confidence"] == pytest.approx(float(probs.max(dim=1).values.mean()), abs=1e-6)
    assert quality["test"]["class_counts"] == torch.bincount(heard, minlength=10).tolist()
    # the last epoch's clips (one per digit, from the samples' seed), as written and as drawn
    model = load_model(summary["last_checkpoint"], WaveNetModel)
    sampler = AudioSamples(**model.hparams.samples)
    waves = model.generate(torch.arange(10), sampler.seconds, sampler.seed, sampler.temperature)
    written = read_wav(run / "samples" / "epoch_002.wav", RATE)
    assert len(written) == 10 * 400 + 9 * 2000
    assert torch.allclose(written, joined(waves, RATE), rtol=0, atol=2 / 32768)  # 16-bit samples
    names = model.hparams.data["class_names"]
    figure = sound_figure(list(waves), RATE, [f"digit {names[k]}" for k in range(10)], columns=5)
    save_figure(figure, tmp_path / "epoch_002.png")
    assert same_picture(run / "samples" / "epoch_002.png", tmp_path / "epoch_002.png")
    labels = torch.tensor([1, 7])
    clips = model.generate(labels, 0.01, seed=3)
    # every sample is one of the 256 mu-law levels: y = 2k/255 - 1 decoded as sign(y)((1 + 255)^|y| - 1)/255
    y = torch.arange(256, dtype=torch.float64) * 2 / 255 - 1
    mu_law_levels = (y.sign() * (256 ** y.abs() - 1) / 255).float()
    nearest = (clips[..., None] - mu_law_levels).abs().min(dim=-1).values
    assert clips.shape == (2, 80) and nearest.max() < 1e-6 and len(clips.unique()) > 1
    assert torch.equal(clips, model.generate(labels, 0.01, seed=3, naive=True))
    assert not torch.equal(clips, model.generate(labels, 0.01, seed=4))
    with pytest.raises(DlforgeError, match="not conditioned on the speaker"):
        model.generate(labels, 0.01, speaker="anna")


def test_an_exported_audio_classifier_hears_what_its_checkpoint_hears(
    make_cfg, tmp_path: Path, digits_root: Path, classifier_ckpt: Path
) -> None:
    from dlforge.export import export
    from dlforge.inference import load

    data = ("data=spoken_digits", f"data.root={digits_root}", "data.clip_seconds=0.25")
    output = tmp_path / "digits.onnx"
    export(make_cfg(f"ckpt_path={classifier_ckpt}", f"output={output}", *data, config_name="export"))
    card = json.loads(output.with_suffix(".json").read_text())
    assert card["task"] == "audio_classification" and card["inputs"][0]["name"] == "waves"
    exported, checkpoint = load(output), load(classifier_ckpt)
    clips = [read_wav(write_pcm(tmp_path / f"{d}.wav", digit_clip(d, 0, 1)), RATE) for d in (2, 5)]
    assert torch.allclose(exported.classify(clips), checkpoint.classify(clips), atol=1e-4)
    with pytest.raises(AudioInputError, match=r"takes at most 0\.25 s"):
        exported.classify([torch.zeros(3000)])
    assert checkpoint.classify([torch.zeros(3000)]).shape == (1, 10)  # a checkpoint takes any length


# --- the command lines, as a user types them ----------------------------------------------------


def test_cli_train_generate_and_predict(
    run_cli, run_main, tmp_path: Path, digits_root: Path, classifier_ckpt: Path
) -> None:
    result = run_cli(
        "train.py", *FAST_AUDIO, f"data.root={digits_root}", *TINY_WAVENET, "trainer.max_epochs=1",
        "model.net.speaker_conditioning=true", "test=false",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    run = max((tmp_path / "outputs" / "train").glob("*_wavenet_spoken_digits"))
    ckpt = run / "checkpoints" / "last.ckpt"
    speaker = load_model(ckpt, WaveNetModel).speakers[0]

    result = run_main(
        "-m", "dlforge.generate", f"ckpt_path={ckpt}", "label=7", "seconds=0.05", "n=3", "output=sevens.wav",
        f"speaker={speaker}", "temperature=0.9",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "sevens.wav"
    assert len(read_wav(tmp_path / "sevens.wav", RATE)) == 3 * 400 + 2 * 2000  # the clips with gaps
    singles = sorted((tmp_path / "sevens").glob("*.wav"))
    assert [len(read_wav(p, RATE)) for p in singles] == [400] * 3
    assert (tmp_path / "sevens.png").stat().st_size > 10_000

    clip = write_pcm(tmp_path / "clip.wav", digit_clip(4, 0, 0))
    result = run_main("-m", "dlforge.predict", f"ckpt_path={classifier_ckpt}", f"audio={clip}", "top_k=2")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].split("\t")[0] in [str(d) for d in range(10)]
    assert 0 < float(lines[0].split("\t")[1]) <= 1


# --- held-out voices: a list or a pattern of names, as a user types them ---------------------------


def held_out(test_speakers: object, val_speakers: object = 0, seed: int = 0) -> dict[str, list[str]]:
    """The speaker split of :data:`SPEAKERS` (no files needed: the split sees only names)."""
    data = SpokenDigitsDataModule(test_speakers=test_speakers, val_speakers=val_speakers, seed=seed)
    return data.split_speakers(SPEAKERS)


def test_a_pattern_holds_out_exactly_the_speakers_it_matches() -> None:
    import itertools
    import re

    # every proper subset of the voices, by alternation, and patterns on parts of the names
    subsets = [names for k in range(1, 5) for names in itertools.combinations(SPEAKERS, k)]
    patterns = [f"^({'|'.join(names)})$" for names in subsets]
    patterns += ["e", "^[a-c]", "a$", "r", "^(?!anna)[a-d]", "(?i)E"]
    for pattern, seed in itertools.product(patterns, (0, 1, 7)):
        matching = sorted(name for name in SPEAKERS if re.search(pattern, name))
        split = held_out(f"re:{pattern}", seed=seed)
        assert split["test"] == matching, pattern
        assert split["train"] == sorted(set(SPEAKERS) - set(matching)) and split["val"] == []
    both = held_out("re:^a", "re:^b")  # validation voices by a pattern too, from the rest
    assert both == {"train": ["cleo", "dave", "erik"], "val": ["bert"], "test": ["anna"]}
    assert held_out("cleo")["test"] == ["cleo"]  # one name, as a text


@pytest.mark.parametrize(
    ("test_speakers", "message"),
    [
        ("re:^zed", "data.test_speakers='re:^zed' matches no speaker; write a pattern that holds out "
         "some of: anna, bert, cleo, dave, erik"),
        ("re:[a-e]", "data.test_speakers='re:[a-e]' matches every speaker (all 5)"),
        ("re:(anna", "data.test_speakers='re:(anna' is not a regular expression (missing ), unterminated"),
        ("^anna", "data.test_speakers: no recordings of ['^anna'] (a pattern is written 're:^anna')"),
    ],
)  # fmt: skip
def test_a_pattern_that_holds_out_no_voice_or_every_voice_is_one_clear_error(
    test_speakers: str, message: str
) -> None:
    with pytest.raises(DlforgeError) as caught:
        held_out(test_speakers)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("test_speakers", "val_speakers"),
    [("\"data.test_speakers='re:^(anna|bert)$'\"", "data.val_speakers=[cleo]"),
     ("data.test_speakers=[anna,bert]", "\"data.val_speakers='re:^c'\"")],
    ids=["pattern", "list"],
)  # fmt: skip
def test_cli_holds_out_voices_by_a_list_and_by_a_pattern(
    run_main, tmp_path: Path, digits_root: Path, test_speakers: str, val_speakers: str
) -> None:
    """Both forms pass the command line's check (a list or a text, where the default is a number) and
    hold out exactly the named or matching voices: the model hears only the other two."""
    # as the shell hands them over: the outer double quotes are the shell's, the inner quotes Hydra's
    args = [arg.strip('"') for arg in (test_speakers, val_speakers)]
    result = run_main(
        "train.py", "model=audio_cnn", "data=spoken_digits", *FAST_AUDIO, f"data.root={digits_root}", *args,
        "trainer.max_epochs=1", "hydra.run.dir=outputs/voices",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "outputs" / "voices"
    model = load_model(run / "checkpoints" / "last.ckpt", AudioClassifier)
    assert model.hparams.data["speakers"] == ["dave", "erik"]  # anna, bert: test; cleo: validation
    assert json.loads((run / "metrics.json").read_text())["status"] == "ok"
