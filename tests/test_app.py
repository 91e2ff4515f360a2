"""The web app's JSON API (``dlforge.app``): every panel, and bad input that must never bring it down."""

from __future__ import annotations

import base64
import io
import socket
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from torch import nn

from dlforge.app import PANELS, create_app, listening_socket, load_panels, serve
from dlforge.errors import DlforgeError
from dlforge.export import write_onnx
from dlforge.inference import describe, graph_of, load
from dlforge.models.base import GenerativeModule
from dlforge.preprocess import load_image
from dlforge.serving.generative import GeneratorModel, example_latents
from dlforge.serving.seq2seq import ATTENTION_WORDS
from dlforge.serving.served import onnx_runner
from dlforge.serving.web import Limits
from dlforge.sound import AudioInputError, read_wav
from tests.app_fixtures import (
    drawn_seven,
    png_bytes,
    tiny_audio_checkpoints,
    tiny_checkpoints,
    tiny_export,
    wav_file,
)
from tests.test_audio import digit_clip
from tests.test_predict_images import shirt_photo

NOISE = png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 256, (470, 470), dtype=np.uint8)))


@pytest.fixture(scope="module")
def models(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    checkpoints = tiny_checkpoints(data_dir, tmp_path_factory)
    return {**checkpoints, "digit": str(tiny_export(data_dir, tmp_path_factory, "digit"))}  # one ONNX panel


@pytest.fixture(scope="module")
def client(models) -> TestClient:
    limits = Limits(upload_bytes=200_000, max_pixels=1_000_000, text_chars=300)
    return TestClient(create_app(load_panels(models), limits), raise_server_exceptions=False)


def upload(client: TestClient, panel: str, data: bytes, name: str = "image.png", mime: str = "image/png"):
    return client.post(f"/api/classify/{panel}", files={"image": (name, data, mime)})


def decoded(url: str) -> Image.Image:
    assert url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


def test_the_page_and_its_panels(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and 'id="digit-canvas"' in page.text
    assert client.get("/static/app.js").status_code == 200
    panels = client.get("/api/panels").json()["panels"]
    served = {"digit", "photo", "review", "generator", "piglatin", "speech", "wavenet"}
    # every registered panel is listed; those without a model (no vectors=, no caption=) as null
    assert set(panels) == {*served, "embeddings", "caption"}
    assert panels["embeddings"] is None and panels["caption"] is None
    assert panels["digit"]["backend"] == "onnx" and panels["digit"]["input"] == [1, 28, 28]
    assert panels["photo"]["data"] == "fashion_mnist" and panels["photo"]["backend"] == "pytorch"
    assert panels["review"]["class_names"] == ["negative", "positive"]
    assert panels["generator"]["latent_dim"] == 4 and panels["generator"]["num_classes"] == 0


def test_a_drawing_is_classified_like_predict_does(client: TestClient, models) -> None:
    drawing = png_bytes(drawn_seven().convert("RGBA"))
    answer = upload(client, "digit", drawing, "drawing.png").json()
    model = load(models["digit"])
    expected = model.classify(load_image(drawing, model.spec)[None])[0]
    assert answer["label"] == model.class_names[int(expected.argmax())]
    probabilities = [c["probability"] for c in answer["probabilities"]]
    assert [c["label"] for c in answer["probabilities"]] == model.class_names
    assert probabilities == pytest.approx(expected.tolist(), abs=1e-6)
    seen = decoded(answer["input"])
    assert seen.size == (112, 112) and seen.getpixel((0, 0)) == 0  # 28x28 enlarged 4x, black margin
    assert answer["ms"] > 0


def test_a_photo_of_any_format_and_mode_is_classified(client: TestClient) -> None:
    photo = shirt_photo()
    for data, mime in [
        (png_bytes(photo, "JPEG", quality=80), "image/jpeg"),
        (png_bytes(photo.convert("RGBA")), "image/png"),
        (png_bytes(photo.convert("L").resize((90, 60))), "image/png"),
        (png_bytes(photo, "WEBP"), "image/webp"),
    ]:
        response = upload(client, "photo", data, "shirt", mime)
        assert response.status_code == 200, response.text
        assert sum(c["probability"] for c in response.json()["probabilities"]) == pytest.approx(1, abs=1e-5)


def test_a_review_gets_its_sentiment(client: TestClient) -> None:
    answer = client.post("/api/review", json={"text": "A gorgeous, witty and moving film!"}).json()
    assert answer["label"] == "positive" and answer["probability"] > 0.5
    assert answer["tokens"][:3] == ["a", "gorgeous", ","]
    assert (
        client.post("/api/review", json={"text": "dull , boring and tedious ."}).json()["label"] == "negative"
    )


def test_samples_follow_the_seed_and_the_latent_slider(client: TestClient, models) -> None:
    first = client.post("/api/sample", json={"seed": 3}).json()
    again = client.post("/api/sample", json={"seed": 3}).json()
    other = client.post("/api/sample", json={"seed": 4}).json()
    assert first == {**again, "ms": first["ms"]} and other["image"] != first["image"]
    assert decoded(first["image"]).size == (224, 224) and len(first["latent"]) == 4
    vae = load(models["generator"])
    assert first["latent"] == pytest.approx(vae.latent(1, 3)[0].tolist(), abs=1e-4)
    moved = client.post("/api/sample", json={"seed": 3, "dim": 2, "value": 2.5}).json()
    assert moved["latent"][2] == 2.5 and moved["latent"][:2] == first["latent"][:2]
    assert moved["image"] != first["image"]


@pytest.mark.parametrize(
    ("request_args", "status", "message"),
    [
        ({"panel": "digit", "data": b"GIF89a? no: plain text"}, 415, "not an image file"),
        ({"panel": "digit", "data": b""}, 415, "empty"),
        ({"panel": "photo", "data": png_bytes(drawn_seven())[:300]}, 415, "damaged or truncated"),
        ({"panel": "photo", "data": png_bytes(drawn_seven(), "TIFF")}, 415, "TIFF images are not accepted"),
        ({"panel": "digit", "data": png_bytes(Image.new("1", (2_000, 2_000)))}, 413, "more than 1,000,000"),
        ({"panel": "digit", "data": NOISE}, 413, "the image file is larger than 0.2 MB"),
        ({"panel": "nope", "data": png_bytes(drawn_seven())}, 404, "no panel 'nope'"),
        ({"panel": "review", "data": png_bytes(drawn_seven())}, 404, "does not classify images"),
    ],
    ids=["text", "empty", "truncated", "tiff", "bomb", "too_many_bytes", "no_panel", "text_panel"],
)
def test_bad_uploads_get_a_clear_answer_and_the_server_goes_on(
    client: TestClient, request_args: dict, status: int, message: str
) -> None:
    response = upload(client, request_args["panel"], request_args["data"])
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert upload(client, "digit", png_bytes(drawn_seven())).status_code == 200


def test_bad_requests_of_every_other_kind(client: TestClient) -> None:
    checks = [
        (client.post("/api/classify/digit"), 422, "image: Field required"),
        (client.post("/api/review", json={"text": "   "}), 400, "the text is empty"),
        (client.post("/api/review", json={"text": "word " * 100}), 413, "the limit is 300"),
        (
            client.post("/api/review", content=b"{not json", headers={"content-type": "application/json"}),
            422,
            "",
        ),
        (client.post("/api/review", json={"review": "wrong key"}), 422, "text: Field required"),
        (client.post("/api/sample", json={"seed": 1, "dim": 4}), 400, "below the latent size 4"),
        (client.post("/api/sample", json={"seed": -1}), 422, "seed"),
        (client.post("/api/sample", json={"seed": 1, "value": 1e9}), 422, "value"),
        (client.post("/api/sample", json={"seed": "x"}), 422, "seed"),
    ]
    for response, status, message in checks:
        assert response.status_code == status, response.text
        assert message in response.json()["error"]
    headers = {"content-type": "multipart/form-data; boundary=x", "content-length": str(10**9)}
    huge = client.post("/api/classify/digit", content=b"--x--", headers=headers)
    assert huge.status_code == 413 and "upload limit" in huge.json()["error"]
    assert client.post("/api/review", json={"text": "great fun"}).status_code == 200


def test_an_unexpected_failure_is_a_500_with_a_message_and_the_server_goes_on(models) -> None:
    panels = load_panels({"review": models["review"]})

    def explode(texts, batch_size=256):
        raise RuntimeError("boom")

    panels["review"].classify = explode
    client = TestClient(create_app(panels), raise_server_exceptions=False)
    response = client.post("/api/review", json={"text": "fine"})
    assert response.status_code == 500 and "internal error (RuntimeError)" in response.json()["error"]
    assert client.get("/api/panels").status_code == 200
    missing = upload(client, "digit", png_bytes(drawn_seven()))
    assert missing.status_code == 404 and "the digit panel has no model" in missing.json()["error"]


def test_panels_need_models_of_their_kind(models, make_cfg) -> None:
    with pytest.raises(DlforgeError, match=r"the review panel needs a text classifier, not this image_class"):
        load_panels({"review": models["photo"]})
    with pytest.raises(DlforgeError, match=r"generator=nothing\.ckpt: no checkpoint at"):
        load_panels({"generator": "nothing.ckpt"})
    with pytest.raises(DlforgeError, match="no model configured"):
        serve(make_cfg(config_name="app"))


def test_the_listening_socket() -> None:
    sock = listening_socket("127.0.0.1", 0)
    try:
        # a TCP socket by protocol number, so that asyncio turns Nagle's algorithm off on each
        # connection: without it, every answer on a kept-alive connection waited 40 ms for a delayed ACK
        assert sock.proto == socket.IPPROTO_TCP and sock.getsockname()[1] > 0
        with pytest.raises(DlforgeError, match=r"cannot listen on 127\.0\.0\.1:.*or port=0"):
            listening_socket("127.0.0.1", sock.getsockname()[1])
    finally:
        sock.close()
    for host in ("", "  ", None):  # '' would listen on every interface without being asked to
        with pytest.raises(
            DlforgeError, match=r"names no address; pass host=127\.0\.0\.1 .* or host=0\.0\.0\.0"
        ):
            listening_socket(host, 0)


class TinyConditionalGenerator(GenerativeModule):
    """The smallest conditional generator: 4x4 images from z (3-d) and a class label (2 classes)."""

    kind = "tiny_conditional"

    def __init__(self) -> None:
        super().__init__()
        self.latent_dim, self.num_classes = 3, 2
        self.linear = nn.Linear(3, 16)
        self.embed = nn.Embedding(2, 16)

    def decode_latent(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(self.linear(z) + 3 * self.embed(labels)).view(-1, 1, 4, 4)


def test_a_conditional_generator_exports_z_and_labels_and_samples_each_class(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = TinyConditionalGenerator().eval()
    card = {**describe(model), "format": "onnx"}
    assert [i["name"] for i in card["inputs"]] == ["z", "labels"] and card["class_names"] == ["0", "1"]
    z, labels = example_latents(model, 6)
    assert labels.tolist() == [0, 1, 0, 1, 0, 1]
    write_onnx(graph_of(model), (z[:2], labels[:2]), tmp_path / "g.onnx", card, None)
    run = onnx_runner(tmp_path / "g.onnx")
    with torch.no_grad():
        expected = model.decode_latent(z, labels)
    np.testing.assert_allclose(run(z.numpy(), labels.numpy())[0], expected.numpy(), atol=1e-6)

    client = TestClient(create_app({"generator": GeneratorModel(card, run, "g.onnx", "onnx")}))
    assert client.get("/api/panels").json()["panels"]["generator"]["num_classes"] == 2
    zero, one = (client.post("/api/sample", json={"seed": 1, "label": k}).json() for k in (0, 1))
    assert zero["label"] == "0" and one["label"] == "1" and zero["image"] != one["image"]
    assert zero["latent"] == one["latent"]  # the same z, another class
    wrong = client.post("/api/sample", json={"seed": 1, "label": 2})
    assert wrong.status_code == 400 and "label must be below 2" in wrong.json()["error"]


# --- the pig-latin panel ------------------------------------------------------------------------
def tiny_translator(factory: pytest.TempPathFactory) -> dict[str, str]:
    """The tiny seq2seq of tests/test_seq2seq.py (it translates "Hello, world!" right): its checkpoint
    and its TorchScript export, made once per test session."""
    from dlforge.export import export
    from tests.app_fixtures import export_cfg
    from tests.conftest import once_per_session
    from tests.test_seq2seq import TINY_DATA
    from tests.test_seq2seq import tiny_translator as trained_translator

    def build(folder: Path) -> dict[str, str]:
        trained = trained_translator(factory)
        output = folder / "piglatin.pt"
        data = [f"data.paths=[{trained['corpus']}]", *TINY_DATA, "seed=1"]
        export(
            export_cfg(
                Path(trained["corpus"]).parent,
                trained["best_checkpoint"],
                output,
                "format=torchscript",
                *data,
            )
        )
        return {"ckpt": trained["best_checkpoint"], "export": str(output)}

    return once_per_session(factory, "tiny_translator_export", build)


@pytest.fixture(scope="module")
def translator(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return tiny_translator(tmp_path_factory)


def test_the_pig_latin_panel_translates_and_shows_where_it_looked(translator, make_cfg) -> None:
    cfg = make_cfg(f"piglatin={translator['export']}", config_name="app")  # as python -m dlforge.app takes it
    panels = load_panels({panel: cfg.get(panel) for panel in PANELS})
    client = TestClient(create_app(panels, Limits(text_chars=300)), raise_server_exceptions=False)
    info = client.get("/api/panels").json()["panels"]
    assert info["piglatin"]["backend"] == "torchscript" and info["piglatin"]["max_word_len"] == 40
    assert info["digit"] is None

    answer = client.post("/api/piglatin", json={"text": "Hello, world! Hello?"}).json()
    assert answer["translation"] == "Ellohay, orldway! Ellohay?" and answer["kept"] == []
    assert answer["translation"] == load(translator["ckpt"]).translate(["Hello, world! Hello?"])[0]
    assert [(a["word"], a["output"]) for a in answer["attention"]] == [
        ("Hello", "Ellohay"),
        ("world", "orldway"),
    ]
    weights = np.array(answer["attention"][1]["weights"])  # a row per output letter and the end
    assert weights.shape == (len("orldway") + 1, len("world"))
    np.testing.assert_allclose(weights.sum(axis=1), 1, atol=1e-3)
    assert weights[0].argmax() == 1  # "o" is read from the input's "o"

    accents = client.post("/api/piglatin", json={"text": "a café, naïve"}).json()
    assert accents["kept"] == ["café", "naïve"] and accents["translation"].endswith(" café, naïve")
    words = " ".join(f"w{chr(97 + i % 26)}rd" for i in range(40))
    assert len(client.post("/api/piglatin", json={"text": words}).json()["attention"]) == ATTENTION_WORDS


def test_the_pig_latin_panel_refuses_bad_text_in_one_line(translator, models) -> None:
    client = TestClient(
        create_app(load_panels({"piglatin": translator["ckpt"]}), Limits(text_chars=300)),
        raise_server_exceptions=False,
    )
    checks = [
        (client.post("/api/piglatin", json={"text": "  \n "}), 400, "the text is empty"),
        (client.post("/api/piglatin", json={"text": "a" * 45}), 400, "has 45 letters; this model translates"),
        (client.post("/api/piglatin", json={"text": "word " * 100}), 413, "the limit is 300"),
        (client.post("/api/piglatin", json={"english": "wrong key"}), 422, "text: Field required"),
    ]
    for response, status, message in checks:
        assert response.status_code == status, response.text
        assert message in response.json()["error"]
    assert client.post("/api/piglatin", json={"text": "fine"}).json()["translation"]
    missing = TestClient(create_app(load_panels({"review": models["review"]}))).post(
        "/api/piglatin", json={"text": "hi"}
    )
    assert missing.status_code == 404 and "start the app with piglatin=" in missing.json()["error"]
    with pytest.raises(DlforgeError, match=r"the piglatin panel needs a translator .*, not this text_class"):
        load_panels({"piglatin": models["review"]})
    with pytest.raises(DlforgeError, match="the review panel needs a text classifier, not this seq2seq"):
        load_panels({"review": translator["ckpt"]})


# --- spoken digits: classify an uploaded clip (speech=), hear a WaveNet say a digit (wavenet=) --------
@pytest.fixture(scope="module")
def audio_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return tiny_audio_checkpoints(tmp_path_factory)


@pytest.fixture(scope="module")
def audio_client(audio_models) -> TestClient:
    limits = Limits(upload_bytes=100_000, audio_seconds=2, speech_seconds=0.1)
    return TestClient(create_app(load_panels(audio_models), limits), raise_server_exceptions=False)


def hear(client: TestClient, data: bytes, name: str = "clip.wav"):
    return client.post("/api/hear", files={"audio": (name, data, "audio/wav")})


def played(url: str) -> torch.Tensor:
    assert url.startswith("data:audio/wav;base64,")
    return read_wav(base64.b64decode(url.split(",", 1)[1]), 8000)


def test_an_uploaded_clip_is_classified_like_predict_does(audio_client: TestClient, audio_models) -> None:
    clip = wav_file(digit_clip(4, 0, 0))
    answer = hear(audio_client, clip).json()
    model = load(audio_models["speech"])
    expected = model.classify([model.read(clip)])[0]
    assert [c["probability"] for c in answer["probabilities"]] == pytest.approx(expected.tolist(), abs=1e-6)
    assert answer["label"] == model.class_names[int(expected.argmax())] and answer["converted"] is None
    assert answer["seconds"] == pytest.approx(len(model.read(clip)) / 8000, abs=1e-3)
    assert decoded(answer["input"]).size == (400, 200) and answer["ms"] > 0  # waveform over spectrogram
    panels = audio_client.get("/api/panels").json()
    assert (
        panels["panels"]["speech"]["sample_rate"] == 8000
        and panels["panels"]["speech"]["clip_seconds"] == 0.25
    )
    assert panels["panels"]["wavenet"]["receptive_field"] == 16 and panels["limits"]["speech_seconds"] == 0.1


def test_a_stereo_clip_at_another_rate_is_converted(audio_client: TestClient, audio_models) -> None:
    from torchaudio.functional import resample

    clip = digit_clip(7, 1, 0)
    fast = np.interp(np.arange(0, len(clip), 8000 / 44100), np.arange(len(clip)), clip)  # 44.1 kHz
    stereo = np.stack([fast, 0.5 * fast], axis=1).flatten()
    answer = hear(audio_client, wav_file(stereo, rate=44100, channels=2), "phone.wav").json()
    assert answer["converted"] == "44100 Hz 2 channels -> 8000 Hz mono"
    left_right = torch.from_numpy(np.round(np.clip(stereo, -1, 1) * 32767) / 32768).float().view(-1, 2)
    wave_ = resample(left_right.mean(dim=1), 44100, 8000)
    expected = load(audio_models["speech"]).classify([wave_])[0]
    assert [c["probability"] for c in answer["probabilities"]] == pytest.approx(expected.tolist(), abs=1e-5)


def bad_clip(kind: str) -> bytes:
    clip = wav_file(digit_clip(2, 0, 0))
    return {
        "text": b"RIFF? no: a shopping list",
        "empty": b"",
        "truncated": clip[:-500],
        "no_samples": wav_file(np.zeros(0)),
        "float": clip[:20] + struct.pack("<H", 3) + clip[22:],  # format tag 3: IEEE float
        "too_long": wav_file(np.zeros(3 * 8000)),
        "too_many_bytes": wav_file(np.zeros(60_000)),
    }[kind]


@pytest.mark.parametrize(
    ("kind", "status", "message"),
    [
        ("text", 415, "clip.wav is not a PCM WAV file"),
        ("empty", 415, "clip.wav is an empty file"),
        ("truncated", 415, "clip.wav is truncated"),
        ("no_samples", 415, "clip.wav holds no samples"),
        ("float", 415, "not a PCM WAV file (unknown format: 3)"),
        ("too_long", 413, "clip.wav lasts 3.0 s; the limit is 2 s"),
        ("too_many_bytes", 413, "the sound file is larger than 0.1 MB"),
    ],
)
def test_bad_clips_get_a_clear_answer_and_the_server_goes_on(
    audio_client: TestClient, kind: str, status: int, message: str
) -> None:
    response = hear(audio_client, bad_clip(kind))
    assert response.status_code == status, response.text
    assert message in response.json()["error"] and "\n" not in response.json()["error"]
    assert hear(audio_client, wav_file(digit_clip(2, 0, 0))).status_code == 200


def test_the_wavenet_says_a_digit_and_the_classifier_judges_it(
    audio_client: TestClient, audio_models
) -> None:
    request = {"label": 3, "seed": 1, "temperature": 0.9, "seconds": 0.05}
    answer = audio_client.post("/api/speak", json=request).json()
    wavenet, speech = load(audio_models["wavenet"]), load(audio_models["speech"])
    expected = wavenet.generate(3, 0.05, seed=1, temperature=0.9)
    heard = played(answer["audio"])
    assert heard.shape == (400,) and torch.allclose(heard, expected, atol=1 / 32767)  # 16-bit PCM
    assert answer["label"] == "3" and answer["seconds"] == 0.05
    assert answer["generation_ms"] > 0 and answer["realtime"] > 0 and answer["ms"] >= answer["generation_ms"]
    verdict = speech.classify([expected])[0]
    assert [c["probability"] for c in answer["verdict"]["probabilities"]] == pytest.approx(
        verdict.tolist(), abs=1e-5
    )
    assert decoded(answer["picture"]).size == (400, 200)
    again = audio_client.post("/api/speak", json=request).json()
    other = audio_client.post("/api/speak", json={**request, "seed": 2}).json()
    assert again["audio"] == answer["audio"] and other["audio"] != answer["audio"]


def test_bad_speak_requests_and_a_busy_wavenet(audio_client: TestClient, audio_models) -> None:
    checks = [
        ({"label": 10}, 400, "label must be below 10, not 10"),
        ({"seconds": 0.5}, 400, "seconds=0.5: a clip lasts at most 0.1 s (limits.speech_seconds)"),
        ({"temperature": 0}, 422, "temperature"),
        ({"temperature": 5}, 422, "temperature"),
        ({"seed": -1}, 422, "seed"),
        ({"seconds": "long"}, 422, "seconds"),
    ]
    for body, status, message in checks:
        response = audio_client.post("/api/speak", json={"seconds": 0.01, **body})
        assert response.status_code == status, response.text
        assert message in response.json()["error"]

    panels = load_panels({"wavenet": audio_models["wavenet"]})
    started, release = threading.Event(), threading.Event()

    def slow(label, seconds, seed=0, temperature=1.0):
        started.set()
        release.wait(30)
        return torch.zeros(80)

    panels["wavenet"].generate = slow
    client = TestClient(create_app(panels), raise_server_exceptions=False)
    first: list = []
    thread = threading.Thread(target=lambda: first.append(client.post("/api/speak", json={"seconds": 0.01})))
    thread.start()
    assert started.wait(30)
    busy = client.post("/api/speak", json={"seconds": 0.01})
    release.set()
    thread.join(30)
    assert busy.status_code == 503 and "saying another clip" in busy.json()["error"]
    assert first[0].status_code == 200 and first[0].json()["verdict"] is None  # no speech model: no verdict
    missing = hear(client, wav_file(digit_clip(2, 0, 0)))
    assert missing.status_code == 404 and "start the app with speech=" in missing.json()["error"]


def test_audio_panels_need_models_of_their_kind(audio_models) -> None:
    with pytest.raises(DlforgeError, match=r"the speech panel needs an audio classifier, not this wavenet"):
        load_panels({"speech": audio_models["wavenet"]})
    with pytest.raises(
        DlforgeError, match=r"the wavenet panel needs a WaveNet checkpoint, not this audio_class"
    ):
        load_panels({"wavenet": audio_models["speech"]})


def test_a_clip_the_speech_model_cannot_take_is_still_said(audio_models) -> None:
    panels = load_panels(audio_models)

    def refuse(waves):
        raise AudioInputError("a clip of 0.30 s: this exported model takes at most 0.25 s; trim it")

    panels["speech"].classify = refuse
    client = TestClient(create_app(panels, Limits(speech_seconds=0.3)))
    answer = client.post("/api/speak", json={"seconds": 0.3}).json()
    assert played(answer["audio"]).shape == (2400,) and answer["verdict"] is None
    assert answer["verdict_error"].startswith("the speech model cannot judge this clip: a clip of 0.30 s")


# --- the embeddings panel: neighbours and analogies of word vectors --------------------------------
def write_royal_glove(path: Path) -> Path:
    """A GloVe-format file where king - man + woman is queen: each word is the sum of two of five
    orthonormal axes (royal, human, male, female, fruit); pear is apple's nearest word."""
    axes = {"royal": 0, "human": 1, "male": 2, "female": 3, "fruit": 4}
    table = {
        "king": ("royal", "male"),
        "queen": ("royal", "female"),
        "man": ("human", "male"),
        "woman": ("human", "female"),
        "apple": ("fruit", "fruit"),
        "pear": ("fruit", "female"),
    }
    lines = []
    for word, (a, b) in table.items():
        row = [0.0] * 5
        row[axes[a]] += 1
        row[axes[b]] += 1
        lines.append(word + " " + " ".join(str(x) for x in row))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_embeddings_panel_finds_neighbours_and_analogies(tmp_path: Path) -> None:
    from dlforge.word_vectors import from_glove

    glove = write_royal_glove(tmp_path / "royal.txt")
    vectors = from_glove(glove)
    client = TestClient(create_app(load_panels({"embeddings": str(glove)})), raise_server_exceptions=False)
    assert client.get("/api/embeddings").json() == {"source": "royal.txt", "words": 6, "dim": 5}
    assert 'id="emb-query"' in client.get("/").text
    answer = client.post("/api/embeddings", json={"query": "king - man + woman", "k": 2}).json()
    assert answer["positive"] == ["king", "woman"] and answer["negative"] == ["man"]
    assert answer["results"][0]["word"] == "queen" and len(answer["results"]) == 2
    assert answer["results"][0]["cosine"] == pytest.approx(
        vectors.analogy(["king", "woman"], ["man"])[0][1], abs=1e-4
    )
    neighbours = client.post("/api/embeddings", json={"query": "Apple"}).json()["results"]
    assert neighbours[0]["word"] == "pear" and neighbours[0]["cosine"] == pytest.approx(1 / 2**0.5, abs=1e-4)
    assert "apple" not in [r["word"] for r in neighbours] and len(neighbours) == 5  # all but the word
    for query, status, message in [
        ("unicorn", 400, "'unicorn' is not among the 6 words of"),
        ("   ", 400, "type a word, or an analogy"),
        ("- man", 400, "write words joined by + and -"),
    ]:
        bad = client.post("/api/embeddings", json={"query": query})
        assert bad.status_code == status and message in bad.json()["error"], bad.json()
    assert client.post("/api/embeddings", json={"query": "king", "k": 0}).status_code == 422
    assert client.post("/api/embeddings", json={"query": "king"}).status_code == 200  # it goes on


def test_without_vectors_the_embeddings_panel_says_so(tmp_path: Path, make_cfg) -> None:
    client = TestClient(create_app({}))
    assert client.get("/api/embeddings").json() is None
    answer = client.post("/api/embeddings", json={"query": "king"})
    assert answer.status_code == 404 and "start the app with vectors=" in answer.json()["error"]
    cfg = make_cfg(f"vectors={tmp_path / 'nothing.txt'}", config_name="app")
    with pytest.raises(DlforgeError, match=r"^vectors=.*nothing\.txt: "):
        serve(cfg)
