"""Every error a user can cause ends in one line ``error: <what>; <how to fix>``, exit status 2, no
traceback, and nothing half-written: a table of malformed inputs across data files, configs,
checkpoints and tools (docs/reliability.md lists the same cases).

The tools run in this process (``sys.argv`` as typed, ``main()`` as the command calls it) so that the
table stays fast; ``test_the_table_holds_through_real_processes`` runs a sample as real commands.
"""

from __future__ import annotations

import pickle
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from dlforge.training import train
from tests.app_fixtures import tiny_audio_checkpoints, wav_file
from tests.conftest import FAST, run_tool, write_cifar_like, write_mnist_like
from tests.test_audio import FAST_AUDIO, write_spoken_digits
from tests.text_fixtures import write_csv, write_glove, write_mr

SEARCH = ("-m", "hparams_search=lenet_mnist_optuna", *FAST, "model.net.hidden=[32]")


@dataclass
class Case:
    """A command (``tool`` and its arguments, where ``{root}`` is a data root and ``{ckpt:<name>}`` a
    trained checkpoint) that must fail with a line containing ``expect``."""

    name: str
    tool: str
    args: tuple[str, ...]
    expect: str
    setup: Callable[[Path], None] = field(default=lambda root: None)


def idx(path: Path, array: np.ndarray, magic: int = 0x08) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">BBBB", 0, 0, magic, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def mnist(root: Path) -> None:
    write_mnist_like(root, "MNIST", n_train=64, n_test=32)


def truncated_images(root: Path) -> None:
    mnist(root)
    path = root / "MNIST/raw/train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:1000])


def fewer_labels(root: Path) -> None:
    mnist(root)
    idx(root / "MNIST/raw/train-labels-idx1-ubyte", np.zeros(50))


def bad_magic(root: Path) -> None:
    mnist(root)
    idx(root / "MNIST/raw/t10k-images-idx3-ubyte", np.zeros((32, 28, 28)), magic=0x0D)


def cifar_not_pickled(root: Path) -> None:
    write_cifar_like(root, n_per_batch=8, n_test=8)
    (root / "cifar-10-batches-py/data_batch_3").write_bytes(b"not a pickle at all")


def cifar_missing_batch(root: Path) -> None:
    write_cifar_like(root, n_per_batch=8, n_test=8)
    (root / "cifar-10-batches-py/data_batch_5").unlink()


def cifar_wrong_shape(root: Path) -> None:
    write_cifar_like(root, n_per_batch=8, n_test=8)
    with open(root / "cifar-10-batches-py/test_batch", "wb") as f:
        pickle.dump({"data": np.zeros((8, 100), np.uint8), "labels": [0] * 8}, f)


def folder_without_classes(root: Path) -> None:
    (root / "shapes/train").mkdir(parents=True)
    (root / "shapes/train/loose.png").write_bytes(b"")


def folder_without_images(root: Path) -> None:
    (root / "shapes/train/cats").mkdir(parents=True)
    (root / "shapes/train/cats/readme.txt").write_text("no pictures here")


def folder_of_broken_images(root: Path) -> None:
    for name in ("a", "b"):
        path = root / f"shapes/train/{name}/0.png"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")


def mr(root: Path) -> None:
    write_mr(root, n=30)
    write_glove(root / "glove" / "tiny.txt")


def mr_one_file(root: Path) -> None:
    mr(root)
    (root / "rt-polaritydata/rt-polarity.neg").unlink()


def mr_empty(root: Path) -> None:
    mr(root)
    for polarity in ("pos", "neg"):
        (root / f"rt-polaritydata/rt-polarity.{polarity}").write_text("")


def mr_binary(root: Path) -> None:
    mr(root)
    (root / "rt-polaritydata/rt-polarity.pos").write_bytes(bytes(range(256)) * 4)


def glove_ragged(root: Path) -> None:
    mr(root)
    (root / "glove/tiny.txt").write_text("good 0.1 0.2 0.3\nbad 0.1 0.2\n")


def glove_words_only(root: Path) -> None:
    mr(root)
    (root / "glove/tiny.txt").write_text("good\nbad\n")


def csv_table(root: Path, header: str | None = None, rows: list[str] | None = None) -> None:
    write_glove(root / "glove" / "tiny.txt")
    path = write_csv(root / "reviews.csv")
    if header is not None or rows is not None:
        lines = path.read_text().splitlines()
        path.write_text("\n".join([header or lines[0], *(rows if rows is not None else lines[1:])]) + "\n")


def not_a_checkpoint(root: Path) -> None:
    (root / "junk.ckpt").write_bytes(b"definitely not a zip or a pickle")


def foreign_checkpoint(root: Path) -> None:
    torch.save({"state_dict": {"w": torch.zeros(2)}}, root / "foreign.ckpt")


def text_file(root: Path) -> None:
    (root / "notes.png").write_text("a text file with a picture's name")


def runs_dir(root: Path) -> None:
    (root / "sweep" / "0").mkdir(parents=True)


# --- English -> pig latin (data=piglatin, model=seq2seq) -----------------------------------------
def piglatin_text(root: Path, n: int = 300) -> Path:
    """Sentences of ``n`` made-up words at ``{root}/english.txt``."""
    from tests.test_seq2seq import write_corpus

    return write_corpus(root / "english.txt", n)


def piglatin_checkpoint(root: Path) -> str:
    """A seq2seq trained for two steps on made-up words: enough to test what the tools refuse."""
    from hydra import compose, initialize_config_dir

    from dlforge import CONF_DIR

    overrides = [
        f"paths.data_dir={root}", "model=seq2seq", "data=piglatin", f"data.paths=[{piglatin_text(root)}]",
        "data.val_words=10", "data.test_words=10", "data.test_sentences=0", "model.net.hidden=8",
        "model.net.embed_dim=8", "model.pictures=null", *(o for o in FAST if not o.startswith("data.")),
        "trainer.max_epochs=1", "trainer.limit_train_batches=2",
    ]  # fmt: skip
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    cfg.paths.output_dir = str(root / "piglatin")
    return train(cfg)["last_checkpoint"]


PIGLATIN = ("model=seq2seq", "data=piglatin", "trainer=cpu", "trainer.max_epochs=1")
# --- sound files: spoken-digit training clips, and clips for predict and the app ------------------
TONE = np.sin(np.linspace(0, 50, 800)) * 0.5
GOOD_WAV = wav_file(TONE)
BAD_WAVS = {
    "not-wav": b"a shopping list, not a sound",
    "empty-file": b"",
    "truncated": GOOD_WAV[:-600],
    "stereo": wav_file(np.repeat(TONE, 2), channels=2),
    "rate": wav_file(TONE, rate=44100),
    "no-samples": wav_file(np.zeros(0)),
    "float": GOOD_WAV[:20] + struct.pack("<H", 3) + GOOD_WAV[22:],  # format tag 3: IEEE float samples
}


def digits_with(kind: str) -> Callable[[Path], None]:
    """Spoken digits under the data root, one clip (``3_anna_0.wav``) replaced by a bad file."""

    def setup(root: Path) -> None:
        write_spoken_digits(root / "spoken-digits", takes=1)
        (root / "spoken-digits/recordings/3_anna_0.wav").write_bytes(BAD_WAVS[kind])

    return setup


def clip_file(kind: str) -> Callable[[Path], None]:
    """``{root}/clip.wav``: a bad file (or a good one, ``kind="good"``) for predict and the app."""
    return lambda root: (root / "clip.wav").write_bytes(GOOD_WAV if kind == "good" else BAD_WAVS[kind])


def misnamed_clips(root: Path) -> None:
    (root / "spoken-digits/recordings").mkdir(parents=True)
    (root / "spoken-digits/recordings/hello.wav").write_bytes(GOOD_WAV)


def folder_without_clips(root: Path) -> None:
    (root / "clips").mkdir()
    (root / "clips/readme.txt").write_text("no sound here")


AUDIO = ("model=audio_cnn", *FAST_AUDIO)
AUDIO_CASES = [
    Case(
        "audio-missing", "train", (*AUDIO, "data.download=false"), "no spoken digits at",
    ),
    Case(
        "audio-misnamed", "train", AUDIO, "no clips named {digit}_{speaker}_{index}.wav in", misnamed_clips
    ),
    Case("audio-not-wav", "train", AUDIO, "3_anna_0.wav is not a PCM WAV file", digits_with("not-wav")),
    Case("audio-empty-file", "train", AUDIO, "3_anna_0.wav is an empty file", digits_with("empty-file")),
    Case("audio-truncated", "train", AUDIO, "3_anna_0.wav is truncated", digits_with("truncated")),
    Case("audio-stereo", "train", AUDIO, "3_anna_0.wav has 2 channels", digits_with("stereo")),
    Case("audio-rate", "train", AUDIO, "3_anna_0.wav is sampled at 44100 Hz", digits_with("rate")),
    Case("audio-no-samples", "train", AUDIO, "3_anna_0.wav holds no samples", digits_with("no-samples")),
    Case("audio-float", "train", AUDIO, "not a PCM WAV file (unknown format: 3)", digits_with("float")),
    Case(
        "predict-audio-missing", "predict", ("ckpt_path={ckpt:speech}", "audio={root}/none.wav"),
        "no WAV file or folder at",
    ),
    Case(
        "predict-audio-not-wav", "predict", ("ckpt_path={ckpt:speech}", "audio={root}/clip.wav"),
        "clip.wav is not a PCM WAV file", clip_file("not-wav"),
    ),
    Case(
        "predict-audio-empty-file", "predict", ("ckpt_path={ckpt:speech}", "audio={root}/clip.wav"),
        "clip.wav is an empty file", clip_file("empty-file"),
    ),
    Case(
        "predict-audio-truncated", "predict", ("ckpt_path={ckpt:speech}", "audio={root}/clip.wav"),
        "clip.wav is truncated", clip_file("truncated"),
    ),
    Case(
        "predict-audio-stereo", "predict", ("ckpt_path={ckpt:speech}", "audio={root}/clip.wav"),
        "has 2 channels; give a mono clip", clip_file("stereo"),
    ),
    Case(
        "predict-audio-rate", "predict", ("ckpt_path={ckpt:speech}", "audio={root}/clip.wav"),
        "sampled at 44100 Hz, the model's audio at 8000 Hz; resample it (sox in.wav -r 8000 out.wav)",
        clip_file("rate"),
    ),
    Case(
        "predict-audio-no-samples", "predict", ("ckpt_path={ckpt:speech}", "audio={root}/clip.wav"),
        "clip.wav holds no samples", clip_file("no-samples"),
    ),
    Case(
        "predict-audio-folder-without-clips", "predict", ("ckpt_path={ckpt:speech}", "audio={root}/clips"),
        "no usable .wav clips in", folder_without_clips,
    ),
    Case(
        "predict-image-to-audio-model", "predict", ("ckpt_path={ckpt:speech}", "image={root}/notes.png"),
        "is an audio classifier: pass audio=", text_file,
    ),
    Case(
        "predict-audio-to-image-model", "predict", ("ckpt_path={ckpt:lenet}", "audio={root}/clip.wav"),
        "pass image=", clip_file("good"),
    ),
    Case(
        "predict-a-wavenet", "predict", ("ckpt_path={ckpt:wavenet}", "audio={root}/clip.wav"),
        "predict does not handle wavenet models", clip_file("good"),
    ),
    Case(
        "app-speech-a-wavenet", "app", ("speech={ckpt:wavenet}",),
        "the speech panel needs an audio classifier, not this wavenet",
    ),
    Case(
        "app-wavenet-a-classifier", "app", ("wavenet={ckpt:speech}",),
        "the wavenet panel needs a WaveNet checkpoint, not this audio_classifier",
    ),
    Case(
        "app-speech-a-wav-file", "app", ("speech={root}/clip.wav",), "clip.wav is not a PyTorch checkpoint",
        clip_file("good"),
    ),
]  # fmt: skip

TEXT = ("data=mr", "data.glove.path={root}/glove/tiny.txt", "data.max_len=8", *FAST)
TABLE = ("model=tabular_mlp", "data=csv_table", "data.path={root}/bad.csv", "data.label_column=class")


def table_file(text: str) -> Callable[[Path], None]:
    """``{root}/bad.csv`` holding ``text``."""
    return lambda root: (root / "bad.csv").write_text(text)


CSV = ("data=csv_text", "data.path={root}/reviews.csv", "data.glove.path={root}/glove/tiny.txt", *FAST)

CASES = [
    # --- data files: IDX, pickles, image folders, text corpora, CSV, GloVe ---------------------------
    Case(
        "idx-missing",
        "train",
        ("model=lenet", "data.download=false", *FAST),
        "mnist not found in {root}/MNIST/raw and download is off",
    ),
    Case(
        "idx-truncated",
        "train",
        ("model=lenet", "data.download=false", *FAST),
        "truncated or not",
        truncated_images,
    ),
    Case("idx-label-count", "train", ("model=lenet", *FAST), "64 images but 50 labels", fewer_labels),
    Case("idx-magic", "train", ("model=lenet", *FAST), "truncated or not in the expected format", bad_magic),
    Case(
        "cifar-not-pickled",
        "train",
        ("model=cifar_cnn", "data=cifar10", *FAST),
        "cifar-10-batches-py",
        cifar_not_pickled,
    ),
    Case(
        "cifar-missing-batch",
        "train",
        ("model=cifar_cnn", "data=cifar10", "data.download=false", *FAST),
        "cifar10 not found in",
        cifar_missing_batch,
    ),
    Case(
        "cifar-wrong-shape",
        "train",
        ("model=cifar_cnn", "data=cifar10", *FAST),
        "cifar-10-batches-py",
        cifar_wrong_shape,
    ),
    Case(
        "folder-missing",
        "train",
        ("model=lenet", "data=image_folder", "data.root={root}/nowhere", *FAST),
        "no image folder at",
    ),
    Case(
        "folder-no-classes",
        "train",
        ("model=lenet", "data=image_folder", "data.root={root}/shapes", *FAST),
        "no class folders in",
        folder_without_classes,
    ),
    Case(
        "folder-no-images",
        "train",
        ("model=lenet", "data=image_folder", "data.root={root}/shapes", *FAST),
        "no images (.png, .jpg, ...) found",
        folder_without_images,
    ),
    Case(
        "folder-broken-images",
        "train",
        ("model=lenet", "data=image_folder", "data.root={root}/shapes", *FAST),
        "decode",
        folder_of_broken_images,
    ),
    Case("mr-missing", "train", ("model=textcnn_kim", *TEXT, "data.download=false"), "mr not found in"),
    Case(
        "mr-one-polarity",
        "train",
        ("model=textcnn_kim", *TEXT, "data.download=false"),
        "rt-polarity.neg",
        mr_one_file,
    ),
    Case("mr-empty", "train", ("model=textcnn_kim", *TEXT), "holds no texts", mr_empty),
    Case("mr-not-text", "train", ("model=textcnn_kim", *TEXT, "data.encoding=utf-8"), "utf-8", mr_binary),
    Case(
        "glove-missing",
        "train",
        (
            "model=textcnn_kim",
            *TEXT[:1],
            "data.glove.path={root}/glove/none.txt",
            "data.download=false",
            *TEXT[2:],
        ),
        "none.txt",
        mr,
    ),
    Case("glove-ragged", "train", ("model=textcnn_kim", *TEXT), "GloVe", glove_ragged),
    Case("glove-no-vectors", "train", ("model=textcnn_kim", *TEXT), "GloVe", glove_words_only),
    Case("csv-missing", "train", ("model=textcnn_kim", *CSV), "reviews.csv"),
    Case(
        "csv-no-text-column",
        "train",
        ("model=textcnn_kim", *CSV, "data.text_column=body"),
        "'body'",
        csv_table,
    ),
    Case(
        "csv-no-label",
        "train",
        ("model=textcnn_kim", *CSV),
        "label",
        lambda r: csv_table(r, rows=["a fine film,", "a dull film,"]),
    ),
    # --- tabular CSV (data=csv_table) -----------------------------------------------------------
    Case(
        "table-no-label-column",
        "train",
        TABLE,
        "has no column 'class'",
        table_file("id,amount,kind\n1,2.5,a\n2,3.5,b\n"),
    ),
    Case(
        "table-text-in-a-number-column",
        "train",
        TABLE,
        "line 4: column 'amount' holds '12a', not a number",
        table_file("amount,class\n1.5,a\n2.5,b\n12a,a\n3.0,b\n"),
    ),
    Case(
        "table-one-class",
        "train",
        TABLE,
        "every row has class='a'",
        table_file("amount,class\n1.5,a\n2.5,a\n3.5,a\n"),
    ),
    Case(
        "table-unknown-categorical-column",
        "train",
        (*TABLE, "data.categorical_columns=[color]"),
        "no column 'color'",
        table_file("amount,colour,class\n1,red,a\n2,blue,b\n"),
    ),
    # --- configs --------------------------------------------------------------------------------
    Case(
        "unknown-option",
        "train",
        ("model=lenett",),
        "model=lenett: no such option; choose one of audio_cnn, autoencoder, cbow",
    ),
    Case(
        "unknown-key",
        "train",
        ("model.nonexistent=1",),
        "model has no option 'nonexistent'; its options: kind, net",
    ),
    Case(
        "unknown-trainer-key",
        "train",
        ("trainer.max_epoch=3",),
        "its options: _target_, default_root_dir, max_epochs",
    ),
    Case("batch-size-word", "train", ("data.batch_size=abc",), "data.batch_size takes a number"),
    Case(
        "batch-size-negative",
        "train",
        ("model=lenet", "data.batch_size=-1", *FAST[:-2]),
        "data.batch_size=-1: use a whole number",
        mnist,
    ),
    Case(
        "lr-negative",
        "train",
        ("model=lenet", "optimizer.lr=-1", *FAST),
        "optimizer.lr=-1: use a number above 0 (default 0.001)",
        mnist,
    ),
    Case("lr-word", "train", ("optimizer.lr=fast",), "optimizer.lr takes a number"),
    Case("flag-word", "train", ("test=maybe",), "test takes true or false"),
    Case("sweep-without-m", "train", ("optimizer.lr=0.1,0.01",), "gives several values: add -m"),
    Case("override-syntax", "train", ("data.batch_size=[1",), "cannot read the command line"),
    Case(
        "pix2pix-unpaired",
        "train",
        ("model=pix2pix", *FAST),
        "needs a paired data set (data=edges2mnist",
        mnist,
    ),
    Case(
        "classifier-on-pairs",
        "train",
        ("model=lenet", "data=edges2mnist", *FAST),
        "needs an image data set",
        mnist,
    ),
    Case("text-model-on-images", "train", ("model=textcnn_kim", *FAST), "needs a text data set", mnist),
    Case(
        "no-gpu",
        "train",
        ("model=lenet", "trainer.accelerator=gpu", *FAST[1:]),
        "check the trainer.* options",
        mnist,
    ),
    Case(
        "gan-optimizer-group",
        "train",
        ("optimizer=sgd", *FAST),
        "optimizer=sgd: this model has one optimizer per network and does not use the optimizer= group; "
        "set model.optimizer_g / model.optimizer_d instead",
        mnist,
    ),
    Case(
        "search-bad-storage-url",
        "train",
        (*SEARCH, "hydra.sweeper.storage=nosuchdb://host/x"),
        "cannot open the study storage nosuchdb://host/x",
    ),
    Case(
        "search-unknown-key-in-space",
        "train",
        (*SEARCH, "model.net.nosuch=choice(1,2)"),
        "the search space does not fit the config: Could not override",
    ),
    Case(
        "search-unknown",
        "train",
        ("-m", "hparams_search=nosuch"),
        "hparams_search=nosuch: no such option; choose one of lenet_mnist_optuna",
    ),
    Case(
        "val-size-too-big",
        "train",
        ("model=lenet", "data.val_size=1000000", *FAST[:-1]),
        "leaves no training images",
        mnist,
    ),
    Case(
        "plateau-without-metric",
        "train",
        ("scheduler=plateau", *FAST),
        "scheduler.monitor=<logged metric>",
        mnist,
    ),
    Case(
        "impossible-network",
        "train",
        ("model=lenet", "model.net.blocks=[[4],[6],[8]]", *FAST),
        "shrink",
        mnist,
    ),
    # --- checkpoints ----------------------------------------------------------------------------
    Case("evaluate-no-ckpt", "evaluate", (), "ckpt_path is required: pass ckpt_path=<...>"),
    Case("evaluate-missing-ckpt", "evaluate", ("ckpt_path={root}/none.ckpt",), "no checkpoint at"),
    Case(
        "evaluate-junk-ckpt",
        "evaluate",
        ("ckpt_path={root}/junk.ckpt",),
        "pass a .ckpt file that dlforge wrote",
        not_a_checkpoint,
    ),
    Case(
        "evaluate-foreign-ckpt",
        "evaluate",
        ("ckpt_path={root}/foreign.ckpt",),
        "is not a dlforge model checkpoint",
        foreign_checkpoint,
    ),
    Case(
        "evaluate-other-data",
        "evaluate",
        ("ckpt_path={ckpt:lenet}", "data=cifar10", "trainer=cpu"),
        "use the data set it was trained on (data=mnist)",
        lambda r: write_cifar_like(r, 8, 8),
    ),
    Case(
        "resume-other-network",
        "train",
        ("model=cifar_cnn", "ckpt_path={ckpt:lenet}", *FAST),
        "other network shapes",
        mnist,
    ),
    Case(
        "resume-other-kind",
        "train",
        ("ckpt_path={ckpt:lenet}", *FAST),
        "holds a image_classifier model but this run builds a gan",
        mnist,
    ),
    Case("export-no-ckpt", "export", (), "ckpt_path is required"),
    Case("generate-no-ckpt", "generate", (), "ckpt_path is required"),
    Case("dream-no-ckpt", "dream", (), "ckpt_path is required"),
    Case("translate-no-ckpt", "pix2pix", ("input=x.png",), "ckpt_path is required"),
    Case(
        "generate-a-classifier", "generate", ("ckpt_path={ckpt:lenet}",), "this tool needs a generative model"
    ),
    Case(
        "translate-a-classifier",
        "pix2pix",
        ("ckpt_path={ckpt:lenet}", "input=x.png"),
        "this tool needs a pix2pix model",
    ),
    Case("dream-a-gan", "dream", ("ckpt_path={ckpt:dcgan}",), "this tool needs an image classifier"),
    # --- tools ----------------------------------------------------------------------------------
    Case(
        "export-format",
        "export",
        ("ckpt_path={ckpt:lenet}", "format=tflite"),
        "format must be one of onnx, torchscript",
    ),
    Case(
        "export-unwritable",
        "export",
        ("ckpt_path={ckpt:lenet}", "output=/proc/dlforge/model.onnx", "check.samples=4"),
        "cannot write /proc/dlforge/model.onnx",
    ),
    Case(
        "generate-not-png", "generate", ("ckpt_path={ckpt:dcgan}", "output=samples.jpg"), "give a .png path"
    ),
    Case(
        "generate-label-unconditional",
        "generate",
        ("ckpt_path={ckpt:dcgan}", "label=7"),
        "is not conditional",
    ),
    Case(
        "generate-mode",
        "generate",
        ("ckpt_path={ckpt:dcgan}", "mode=collage"),
        "mode=collage: choose one of grid",
    ),
    Case(
        "translate-missing-picture",
        "pix2pix",
        ("ckpt_path={ckpt:pix2pix}", "input={root}/none.png"),
        "no picture at",
    ),
    Case(
        "translate-not-a-picture",
        "pix2pix",
        ("ckpt_path={ckpt:pix2pix}", "input={root}/notes.png"),
        "cannot decode",
        text_file,
    ),
    Case(
        "dream-unknown-class",
        "dream",
        ("ckpt_path={ckpt:lenet}", "target=11", "steps=1"),
        "target=11: not a class of this model",
    ),
    Case("predict-nothing", "predict", ("ckpt_path={ckpt:lenet}",), "image="),
    Case(
        "predict-not-an-image",
        "predict",
        ("ckpt_path={ckpt:lenet}", "image={root}/notes.png"),
        "notes.png",
        text_file,
    ),
    Case(
        "crossval-one-fold",
        "crossval",
        ("model=textcnn_kim", *TEXT, "data.folds=1"),
        "data.folds=1: use 0 or a whole number from 2 to 1000",
        mr,
    ),
    # --- English -> pig latin -------------------------------------------------------------------
    Case("piglatin-no-text-file", "train", (*PIGLATIN, "data.paths=[{root}/none.txt]"), "no text file at"),
    Case("piglatin-no-corpus", "train", (*PIGLATIN, "data.download=false"), "no English text under"),
    Case(
        "piglatin-no-words",
        "train",
        (*PIGLATIN, "data.paths=[{root}/numbers.txt]"),
        "the text holds no words of the letters a-z",
        lambda r: (r / "numbers.txt").write_text("1 2 3, 42; café naïve\n", encoding="utf-8"),
    ),
    Case(
        "piglatin-too-few-words",
        "train",
        (*PIGLATIN, "data.paths=[{root}/english.txt]"),
        "are too few for 1000 validation and 5000 test words",
        piglatin_text,
    ),
    Case(
        "piglatin-train-len",
        "train",
        (*PIGLATIN, "data.max_train_len=50"),
        "need 1 <= data.max_train_len <= data.max_word_len, got 50",
    ),
    Case("seq2seq-on-images", "train", ("model=seq2seq", *FAST), "needs word pairs (data=piglatin)", mnist),
    Case(
        "predict-translate-empty",
        "predict",
        ("ckpt_path={ckpt:piglatin}", "text=  "),
        "nothing to translate: pass some English",
    ),
    Case(
        "predict-translate-long-word",
        "predict",
        ("ckpt_path={ckpt:piglatin}", "text=a" + "b" * 44),
        "has 45 letters; this model translates words of up to 40 letters",
    ),
    Case(
        "predict-translator-image",
        "predict",
        ("ckpt_path={ckpt:piglatin}", "image={root}/notes.png"),
        "is a translator: pass text=... or input=<file>",
        text_file,
    ),
    Case(
        "export-translator-onnx",
        "export",
        ("ckpt_path={ckpt:piglatin}", "format=onnx"),
        "decodes in a loop that only TorchScript keeps; use format=torchscript",
    ),
    *AUDIO_CASES,
]


# --- word embeddings: text corpora, word-benchmark files, word-vector files -------------------------
def corpus(root: Path, content: bytes = b"the cat sat on the mat and the dog sat on the cat\n" * 20) -> None:
    (root / "corpus.txt").write_bytes(content)


def word_benchmarks(root: Path, name: str = "", content: str = "") -> None:
    corpus(root)
    folder = root / "word-benchmarks"
    folder.mkdir()
    (folder / "questions-words.txt").write_text(": s\ncat dog mat sat\n")
    for similarity in ("wordsim353.tsv", "simlex999.txt"):
        (folder / similarity).write_text("cat\tdog\t7\ncat\tmat\t2\nsat\ton\t1\n")
    if name:
        (folder / name).write_text(content)


def vectors_file(root: Path, content: str = "king 1 0\nqueen 0 1\nman 1 1\n") -> None:
    (root / "vectors.txt").write_text(content)


W2V = ("model=skipgram", "data=text_corpus", "data.paths=[{root}/corpus.txt]", "data.min_count=1")
W2V += ("trainer=cpu", "trainer.max_epochs=1", "trainer.limit_train_batches=2")
NO_BENCHMARKS = (*W2V, "data.benchmarks.folder=null")
EMBED = ("vectors={root}/vectors.txt",)

CASES += [
    Case("corpus-missing", "train", NO_BENCHMARKS, "no text file"),
    Case("corpus-empty", "train", NO_BENCHMARKS, "0 words, 0 of them seen 1 times", lambda r: corpus(r, b"")),
    Case(
        "corpus-not-utf8", "train", NO_BENCHMARKS, "is not UTF-8", lambda r: corpus(r, b"caf\xe9 au lait\n")
    ),
    Case(
        "corpus-no-repeated-words",
        "train",
        (*NO_BENCHMARKS, "data.min_count=2"),
        "word2vec needs text with repeated words",
        lambda r: corpus(r, b"one two three four\n"),
    ),
    Case("word-benchmarks-missing", "train", W2V, "word-benchmarks", corpus),
    Case(
        "analogies-three-words",
        "train",
        W2V,
        "questions-words.txt:2: an analogy question is four words",
        lambda r: word_benchmarks(r, "questions-words.txt", ": s\ncat dog mat\n"),
    ),
    Case(
        "similarity-score-not-a-number",
        "train",
        W2V,
        "wordsim353.tsv:1: a similarity line is",
        lambda r: word_benchmarks(r, "wordsim353.tsv", "cat\tdog\tvery\n"),
    ),
    Case(
        "similarity-too-few-pairs",
        "embeddings",
        ("evaluate", *EMBED, "benchmarks.folder={root}/word-benchmarks"),
        "holds 2 scored word pairs",
        lambda r: (vectors_file(r), word_benchmarks(r, "simlex999.txt", "cat\tdog\t7\ncat\tmat\t2\n")),
    ),
    Case("vectors-missing", "embeddings", ("neighbours", "king", *EMBED), "no word vectors at"),
    Case(
        "vectors-ragged",
        "embeddings",
        ("neighbours", "king", *EMBED),
        "a line does not hold a word and 2 numbers",
        lambda r: vectors_file(r, "king 1 0\nqueen 0\n"),
    ),
    Case(
        "vectors-not-word2vec",
        "embeddings",
        ("neighbours", "king", "vectors={ckpt:lenet}"),
        "a word2vec model",
    ),
    Case(
        "vectors-unknown-word",
        "embeddings",
        ("neighbours", "unicorn", *EMBED),
        "'unicorn' is not",
        vectors_file,
    ),
    Case(
        "analogy-nothing-to-add",
        "embeddings",
        ("analogy", "- king", *EMBED),
        "words joined by + and -",
        vectors_file,
    ),
    Case("export-not-a-checkpoint", "embeddings", ("export", *EMBED), "is not a .ckpt", vectors_file),
    Case(
        "app-vectors-missing",
        "app",
        ("vectors={root}/vectors.txt", "port=0"),
        "vectors.txt: no word vectors at",
    ),
]

# held-out voices by a pattern (spoken digits: anna, bert, cleo, dave, erik), and values in forms no
# option takes
DIGITS = ("model=audio_cnn", *FAST_AUDIO)


def good_digits(root: Path) -> None:
    write_spoken_digits(root / "spoken-digits", takes=1)


CASES += [
    Case(
        "speakers-pattern-matches-none",
        "train",
        (*DIGITS, "data.test_speakers='re:^zed'"),
        "data.test_speakers='re:^zed' matches no speaker; write a pattern that holds out some of: anna,",
        good_digits,
    ),
    Case(
        "speakers-pattern-matches-all",
        "train",
        (*DIGITS, "data.test_speakers='re:[a-e]'"),
        "data.test_speakers='re:[a-e]' matches every speaker (all 5)",
        good_digits,
    ),
    Case(
        "speakers-pattern-not-a-regex",
        "train",
        (*DIGITS, "data.test_speakers='re:(anna'"),
        "data.test_speakers='re:(anna' is not a regular expression",
        good_digits,
    ),
    Case(
        "speakers-a-flag",
        "train",
        ("data=spoken_digits", "data.test_speakers=true"),
        "data.test_speakers takes a number, a text or a list [a,b] (default 0.2)",
    ),
    Case(
        "speakers-pattern-unquoted",
        "train",
        ("data=spoken_digits", "data.test_speakers=re:^enus"),
        "cannot read the command line (LexerNoViableAltException: data.test_speakers=re:^enus); write "
        "key=value, lists as key=[a,b], and quote a value with other signs",
    ),
    Case(
        "trainer-flag-word",
        "train",
        ("trainer.deterministic=maybe",),
        "trainer.deterministic takes true, false or warn (default false)",
    ),
    Case("epochs-fraction", "train", ("trainer.max_epochs=2.5",), "trainer.max_epochs takes a whole number"),
]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Tiny trained checkpoints of a classifier, a GAN and pix2pix on MNIST-like data, a seq2seq on
    made-up words, and the app's tiny audio classifier (``speech``) and WaveNet (``wavenet``) on
    tone-and-noise digits."""
    from hydra import compose, initialize_config_dir

    from dlforge import CONF_DIR

    root = tmp_path_factory.mktemp("ckpt_data")
    mnist(root)
    runs = {
        "lenet": ("model=lenet",),
        "dcgan": ("model.net.features=8",),
        "pix2pix": (
            "model=pix2pix",
            "data=edges2mnist",
            "model.generator.channels=8",
            "model.generator.depth=3",
        ),
    }
    found = {}
    for name, overrides in runs.items():
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose(
                "train", overrides=[f"paths.data_dir={root}", *overrides, *FAST, "trainer.max_epochs=1"]
            )
        cfg.paths.output_dir = str(root / name)
        found[name] = train(cfg)["last_checkpoint"]
    found["piglatin"] = piglatin_checkpoint(root)
    return {**found, **tiny_audio_checkpoints(tmp_path_factory)}  # speech (audio_cnn), wavenet


def fill(args: tuple[str, ...], root: Path, checkpoints: dict[str, str] | None) -> list[str]:
    def checkpoint(match: re.Match) -> str:
        assert checkpoints is not None
        return checkpoints[match[1]]

    return [re.sub(r"\{ckpt:(\w+)\}", checkpoint, arg).replace("{root}", str(root)) for arg in args]


def test_the_table_has_at_least_forty_cases_with_unique_names() -> None:
    names = [case.name for case in CASES]
    assert len(names) >= 40 and len(set(names)) == len(names)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_bad_input_is_one_line_and_exit_2(
    case: Case, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    ckpts = request.getfixturevalue("checkpoints") if any("{ckpt:" in a for a in case.args) else None
    root = tmp_path / "data"
    root.mkdir()
    case.setup(root)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATA_DIR", str(root))
    monkeypatch.setenv("DLFORGE_CACHE", str(tmp_path / "cache"))
    code = run_tool(case.tool, fill(case.args, root, ckpts), monkeypatch)
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1] if err.strip() else ""
    assert code == 2, err[-2000:]
    assert "Traceback" not in err and last.startswith("error: "), err[-2000:]
    assert case.expect.replace("{root}", str(root)) in last, last
    outputs = tmp_path / "outputs"
    left = [p for p in outputs.rglob("*") if p.is_file()] if outputs.exists() else []
    assert not left, f"half-written run dir: {left[:5]}"


def test_the_table_holds_through_real_processes(run_cli, tmp_path: Path) -> None:
    """A sample of the table as real commands: the same one line, exit 2, and no run dir left."""
    for tool, args, expect in [
        ("train.py", ("model.nonexistent=1",), "model has no option 'nonexistent'"),
        ("dlforge.evaluate", (), "ckpt_path is required"),
    ]:
        argv = [tool, *args] if tool.endswith(".py") else ["-m", tool, *args]
        result = run_cli(*argv, env={"DATA_DIR": str(tmp_path / "empty")})
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
        assert result.stderr.strip().splitlines()[-1].startswith("error: ") and expect in result.stderr
    assert (
        not [p for p in (tmp_path / "outputs").rglob("*") if p.is_file()]
        if (tmp_path / "outputs").exists()
        else True
    )


def test_full_traceback_for_developers(run_cli) -> None:
    result = run_cli("-m", "dlforge.evaluate", "ckpt_path=/nonexistent.ckpt", env={"HYDRA_FULL_ERROR": "1"})
    assert result.returncode != 0 and "Traceback" in result.stderr and "CheckpointError" in result.stderr


def test_every_tool_in_the_table_is_a_command() -> None:
    from dlforge.__main__ import COMMANDS

    assert {case.tool for case in CASES} <= set(COMMANDS)


def test_docs_list_every_case() -> None:
    from tests.conftest import REPO

    doc = (REPO / "docs" / "reliability.md").read_text()
    assert [case.name for case in CASES if f"| `{case.name}` |" not in doc] == []
