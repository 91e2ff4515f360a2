"""A web app over trained models: ``python -m dlforge.app digit=<ckpt> photo=... review=... generator=...``.

One page (``app_static/``) with panels, each served by a model given in ``conf/app.yaml`` as a
checkpoint or an exported file: draw a digit (an MNIST classifier), upload a photo (any image
classifier, e.g. Fashion-MNIST), type a review (a text classifier), sample a GAN/VAE (seed, class,
one latent coordinate on a slider), type English and get pig latin (a seq2seq translator, with where
it looked), classify a spoken clip (``speech=``: an audio classifier), hear a WaveNet say a digit
(``wavenet=``: a checkpoint, judged by the speech model when there is one). A panel without a model
says so. The page talks to a small
JSON API (FastAPI), which the tests and ``benchmarks/app_latency.py`` call directly:

- ``GET /api/panels``: the configured panels and their models;
- ``POST /api/classify/{digit,photo}``: multipart ``image`` file -> top classes, probabilities, and
  the prepared input the model saw;
- ``POST /api/review``: ``{"text": ...}`` -> the same for a text;
- ``POST /api/sample``: ``{"seed", "label", "dim", "value"}`` -> an image and its latent vector;
- ``POST /api/piglatin``: ``{"text": ...}`` -> the translation, and the attention of the first words;
- ``POST /api/hear``: multipart ``audio`` WAV file -> top classes, probabilities, and a picture of
  what the model hears (any rate and channel count is converted to the model's mono rate);
- ``POST /api/speak``: ``{"label", "seed", "temperature", "seconds"}`` -> a WAV clip, its picture, the
  generation time, and the speech model's verdict on it;
- ``GET /api/embeddings``: the word vectors of the embeddings panel (``vectors=``: a word2vec checkpoint
  or a GloVe-format file), or null; ``POST /api/embeddings``: ``{"query": "king - man + woman", "k"}``
  -> the nearest words of one word, or an analogy's answers (3CosAdd).

Bad input (not an image, too large, a decompression bomb, an empty text) gets a 4xx answer with
``{"error": "<one line>"}``; an unexpected failure a 500 with the same shape; the server goes on.
"""

from __future__ import annotations

import base64
import logging
import math
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import torch
from fastapi import FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from omegaconf import DictConfig
from pydantic import BaseModel, Field

from dlforge.audio import AudioInputError, decode_wav, sound_picture, to_mono, wav_bytes
from dlforge.cli import hydra_entry
from dlforge.data.piglatin import TOKEN, foreign_words, is_word
from dlforge.errors import DlforgeError
from dlforge.inference import (
    AudioClassifierModel,
    AudioGeneratorModel,
    GeneratorModel,
    ImageClassifierModel,
    ServedModel,
    TextClassifierModel,
    TranslatorModel,
    load,
)
from dlforge.preprocess import ImageInputError, ImageTooLarge, load_image, to_png
from dlforge.word_vectors import WordVectors, load_vectors

log = logging.getLogger("dlforge")

STATIC = Path(__file__).with_name("app_static")
#: Each panel and the kind of model it needs.
PANELS: dict[str, type[ServedModel]] = {
    "digit": ImageClassifierModel,
    "photo": ImageClassifierModel,
    "review": TextClassifierModel,
    "generator": GeneratorModel,
    "piglatin": TranslatorModel,
    "speech": AudioClassifierModel,
    "wavenet": AudioGeneratorModel,
}
TASK_NAMES = {
    ImageClassifierModel: "an image classifier",
    TextClassifierModel: "a text classifier",
    GeneratorModel: "a generative model (GAN or VAE)",
    TranslatorModel: "a translator (model=seq2seq or seq2seq_transformer on data=piglatin)",
    AudioClassifierModel: "an audio classifier",
    AudioGeneratorModel: "a WaveNet checkpoint",
}


@dataclass(frozen=True)
class Limits:
    """What one request may carry."""

    upload_bytes: int = 5_000_000
    max_pixels: int = 40_000_000
    text_chars: int = 5_000
    audio_seconds: float = 10.0
    speech_seconds: float = 1.0


class Review(BaseModel):
    text: str


class Translate(BaseModel):
    text: str


#: The pig-latin panel shows the attention of this many distinct words of a text.
ATTENTION_WORDS = 12


class Sample(BaseModel):
    seed: int = Field(0, ge=0, le=2**31 - 1)
    label: int | None = Field(None, ge=0)
    dim: int = Field(0, ge=0)
    value: float | None = Field(None, ge=-10, le=10)


class Speak(BaseModel):
    label: int = Field(0, ge=0)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    temperature: float = Field(1.0, gt=0, le=2)
    seconds: float = Field(0.5, gt=0)


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def load_panels(paths: dict[str, str | None]) -> dict[str, ServedModel]:
    """The model of every configured panel, checked to be of the kind the panel needs."""
    models = {}
    for panel, path in paths.items():
        if panel not in PANELS:
            raise DlforgeError(f"unknown panel {panel!r}; the panels are {', '.join(PANELS)}")
        if not path:
            continue
        try:
            model = load(path)
        except DlforgeError as err:
            raise DlforgeError(f"{panel}={path}: {err}") from None
        if not isinstance(model, PANELS[panel]):
            raise DlforgeError(
                f"{panel}={path}: the {panel} panel needs {TASK_NAMES[PANELS[panel]]}, not this {model.kind}"
            )
        models[panel] = model
    return models


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def classes(model: ServedModel, probs: torch.Tensor) -> dict[str, Any]:
    """The answer of a classifier: best label, every class's probability (in class order)."""
    row = probs.tolist()
    best = max(range(len(row)), key=row.__getitem__)
    return {
        "label": model.class_names[best],
        "probability": row[best],
        "probabilities": [
            {"label": name, "probability": p} for name, p in zip(model.class_names, row, strict=True)
        ],
    }


def wav_url(wave: torch.Tensor, sample_rate: int) -> str:
    return "data:audio/wav;base64," + base64.b64encode(wav_bytes(wave, sample_rate)).decode("ascii")


def heard(model: AudioClassifierModel, wave: torch.Tensor) -> dict[str, Any]:
    """What an audio classifier hears in a (T,) waveform at its rate (413 when an export cannot take it)."""
    try:
        return classes(model, model.classify([wave])[0])
    except AudioInputError as err:
        raise BadRequest(str(err), 413) from None


def describe_panel(panel: str, model: ServedModel) -> dict[str, Any]:
    info: dict[str, Any] = {
        "source": Path(model.source).name,
        "backend": model.backend,
        "kind": model.kind,
        "data": model.card.get("data", {}).get("name"),
        "class_names": model.class_names,
    }
    if isinstance(model, ImageClassifierModel):
        info["input"] = [model.spec["channels"], model.spec["height"], model.spec["width"]]
    if isinstance(model, TextClassifierModel):
        info["max_len"] = model.encoder.max_len
    if isinstance(model, GeneratorModel):
        info.update(latent_dim=model.latent_dim, num_classes=model.num_classes)
    if isinstance(model, TranslatorModel):
        info["max_word_len"] = model.max_word_len
    if isinstance(model, AudioClassifierModel):
        info.update(sample_rate=model.sample_rate, clip_seconds=model.clip_samples / model.sample_rate)
    if isinstance(model, AudioGeneratorModel):
        info.update(sample_rate=model.sample_rate, receptive_field=model.card["receptive_field"])
    return info


def create_app(
    models: dict[str, ServedModel],
    limits: Limits = Limits(),
    preprocess: str = "auto",
    vectors: WordVectors | None = None,
) -> BodyLimit:
    """The FastAPI application serving ``models`` (panel name -> model) and word ``vectors``."""
    app = FastAPI(title="dlforge", docs_url=None, redoc_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, err: BadRequest) -> JSONResponse:
        return JSONResponse({"error": str(err)}, status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(map(str, e.get('loc', ())[1:])) or 'body'}: {e.get('msg')}" for e in err.errors()
        )
        return JSONResponse({"error": f"invalid request: {problems}"}, status_code=422)

    @app.exception_handler(Exception)
    async def crashed(request: Request, err: Exception) -> JSONResponse:
        log.exception("request %s failed", request.url.path)
        return JSONResponse({"error": f"internal error ({type(err).__name__}); see the server log"}, 500)

    def model_of(panel: str) -> ServedModel:
        if panel not in PANELS:
            raise BadRequest(f"no panel {panel!r}; the panels are {', '.join(PANELS)}", 404)
        if panel not in models:
            raise BadRequest(f"the {panel} panel has no model: start the app with {panel}=<checkpoint>", 404)
        return models[panel]

    @app.get("/")
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/panels")
    def panels() -> dict[str, Any]:
        return {
            "panels": {p: describe_panel(p, models[p]) if p in models else None for p in PANELS},
            "limits": {
                "upload_bytes": limits.upload_bytes,
                "text_chars": limits.text_chars,
                "audio_seconds": limits.audio_seconds,
                "speech_seconds": limits.speech_seconds,
            },
        }

    @app.post("/api/classify/{panel}")
    def classify(panel: str, image: Annotated[UploadFile, File()]) -> dict[str, Any]:
        start = time.perf_counter()
        model = model_of(panel)
        if not isinstance(model, ImageClassifierModel):
            raise BadRequest(f"the {panel} panel does not classify images", 404)
        data = image.file.read(limits.upload_bytes + 1)
        try:
            pixels = load_image(data, model.spec, preprocess, limits.max_pixels, limits.upload_bytes)
        except ImageTooLarge as err:
            raise BadRequest(str(err), 413) from None
        except ImageInputError as err:
            raise BadRequest(f"{image.filename or 'the upload'}: {err}", 415) from None
        answer = classes(model, model.classify(pixels[None])[0])
        answer["input"] = data_url(to_png(pixels, scale=4))
        answer["ms"] = round(1000 * (time.perf_counter() - start), 2)
        return answer

    def check_text(text: str, ask: str) -> None:
        """A typed text must hold something and stay within ``limits.text_chars``."""
        if not text.strip():
            raise BadRequest(f"{ask}: the text is empty")
        if len(text) > limits.text_chars:
            raise BadRequest(
                f"the text has {len(text):,} characters; the limit is {limits.text_chars:,}", 413
            )

    @app.post("/api/review")
    def review(body: Review) -> dict[str, Any]:
        start = time.perf_counter()
        model = model_of("review")
        assert isinstance(model, TextClassifierModel)
        check_text(body.text, "type a review first")
        answer = classes(model, model.classify([body.text])[0])
        answer["tokens"] = model.encoder.tokenize(body.text)[: model.encoder.max_len]
        answer["ms"] = round(1000 * (time.perf_counter() - start), 2)
        return answer

    @app.post("/api/sample")
    def sample(body: Sample) -> dict[str, Any]:
        start = time.perf_counter()
        model = model_of("generator")
        assert isinstance(model, GeneratorModel)
        if body.dim >= model.latent_dim:
            raise BadRequest(f"dim must be below the latent size {model.latent_dim}, not {body.dim}")
        labels = None
        if model.num_classes > 0:
            label = body.label or 0
            if label >= model.num_classes:
                raise BadRequest(f"label must be below {model.num_classes}, not {label}")
            labels = torch.tensor([label])
        z = model.latent(1, body.seed)
        if body.value is not None and math.isfinite(body.value):
            z[0, body.dim] = body.value
        image = model.generate(z, labels)[0]
        scale = max(1, 224 // max(image.shape[1:]))
        return {
            "image": data_url(to_png(image, scale=scale)),
            "latent": [round(v, 4) for v in z[0].tolist()],
            "label": None if labels is None else model.class_names[int(labels[0])],
            "ms": round(1000 * (time.perf_counter() - start), 2),
        }

    @app.post("/api/piglatin")
    def piglatin(body: Translate) -> dict[str, Any]:
        start = time.perf_counter()
        model = model_of("piglatin")
        assert isinstance(model, TranslatorModel)
        check_text(body.text, "type some English first")
        try:
            translation = model.translate([body.text])[0]
        except DlforgeError as err:  # a word longer than the model takes
            raise BadRequest(str(err)) from None
        words = list(dict.fromkeys(t for t in TOKEN.findall(body.text) if is_word(t)))[:ATTENTION_WORDS]
        attention = []
        for word in words:
            output, weights = model.attention(word)
            attention.append({"word": word, "output": output, "weights": weights.round(4).tolist()})
        return {
            "translation": translation,
            "kept": foreign_words([body.text]),
            "attention": attention,
            "ms": round(1000 * (time.perf_counter() - start), 2),
        }

    # --- spoken digits: classify an uploaded clip; hear a WaveNet say one -------------------------
    @app.post("/api/hear")
    def hear(audio: Annotated[UploadFile, File()]) -> dict[str, Any]:
        start = time.perf_counter()
        model = model_of("speech")
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
            raise BadRequest(f"{name} lasts {seconds:.1f} s; the limit is {limits.audio_seconds:g} s", 413)
        wave = to_mono(samples, rate, model.sample_rate)  # what a phone records: stereo, 44.1 kHz
        converted = None
        if rate != model.sample_rate or len(samples) > 1:
            channels = "mono" if len(samples) == 1 else f"{len(samples)} channels"
            converted = f"{rate} Hz {channels} -> {model.sample_rate} Hz mono"
        answer = heard(model, wave)
        answer.update(
            seconds=round(seconds, 3),
            converted=converted,
            input=data_url(to_png(sound_picture(wave, model.sample_rate))),
            ms=round(1000 * (time.perf_counter() - start), 2),
        )
        return answer

    speaking = threading.Lock()  # one clip at a time: sampling is seconds of CPU

    @app.post("/api/speak")
    def speak(body: Speak) -> dict[str, Any]:
        start = time.perf_counter()
        model = model_of("wavenet")
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
        speech = models.get("speech")
        verdict, unjudged = None, None
        if isinstance(speech, AudioClassifierModel):
            try:
                verdict = heard(speech, to_mono(wave[None], rate, speech.sample_rate))
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
            "ms": round(1000 * (time.perf_counter() - start), 2),
        }

    add_embeddings_routes(app, vectors)

    return BodyLimit(app, limits.upload_bytes + 64_000)


# --- the embeddings panel: neighbours and analogies of word vectors -------------------------------
class Explore(BaseModel):
    query: str = Field(max_length=500)
    k: int = Field(10, ge=1, le=100)


def describe_vectors(vectors: WordVectors) -> dict[str, Any]:
    return {"source": Path(vectors.source).name, "words": len(vectors), "dim": vectors.dim}


def load_word_vectors(path: str | None, cache_dir: str | None) -> WordVectors | None:
    """The embeddings panel's vectors (``vectors=``: a word2vec checkpoint or a GloVe-format file)."""
    if not path:
        return None
    try:
        return load_vectors(path, cache_dir)
    except DlforgeError as err:
        raise DlforgeError(f"vectors={path}: {err}") from None


def add_embeddings_routes(app: FastAPI, vectors: WordVectors | None) -> None:
    @app.get("/api/embeddings")
    def embeddings_panel() -> dict[str, Any] | None:
        return describe_vectors(vectors) if vectors is not None else None

    @app.post("/api/embeddings")
    def explore(body: Explore) -> dict[str, Any]:
        start = time.perf_counter()
        if vectors is None:
            raise BadRequest("the embeddings panel has no vectors: start the app with vectors=<file>", 404)
        if not body.query.strip():
            raise BadRequest("type a word, or an analogy such as king - man + woman")
        try:
            answer = vectors.explore(body.query, body.k)
        except DlforgeError as err:
            raise BadRequest(str(err)) from None
        return {**answer, "ms": round(1000 * (time.perf_counter() - start), 2)}


class BodyLimit:
    """ASGI middleware: answer 413 to a request body over ``max_bytes`` before it is read into memory."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await self.reject(send)
        seen = 0
        started = False

        async def counted_receive() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _TooLarge
            return message

        async def tracked_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _TooLarge:
            if not started:
                await self.reject(send)

    async def reject(self, send: Any) -> None:
        body = b'{"error": "the request is larger than the upload limit"}'
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound socket (``port=0``: any free port), so the address is known before the server starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP: asyncio sets TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise DlforgeError(
            f"cannot listen on {host}:{port} ({err.strerror}); pass port=<another> or port=0"
        ) from None
    sock.listen(128)
    return sock


def serve(cfg: DictConfig) -> None:
    """Load the configured models and serve the app until interrupted."""
    import uvicorn

    models = load_panels({panel: cfg.get(panel) for panel in PANELS})
    vectors = load_word_vectors(cfg.get("vectors"), cfg.paths.cache_dir)
    if not models and vectors is None:
        options = ", ".join(f"{panel}=" for panel in [*PANELS, "vectors"])
        raise DlforgeError(
            f"no model configured: pass at least one of {options} "
            "(a checkpoint or a file from python -m dlforge.export)"
        )
    limits = Limits(
        upload_bytes=int(cfg.limits.upload_mb * 1_000_000),
        max_pixels=int(cfg.limits.max_pixels),
        text_chars=int(cfg.limits.text_chars),
        audio_seconds=float(cfg.limits.audio_seconds),
        speech_seconds=float(cfg.limits.speech_seconds),
    )
    app = create_app(models, limits, cfg.preprocess, vectors)
    sock = listening_socket(cfg.host, cfg.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    for panel in PANELS:
        model = models.get(panel)
        log.info("%s panel: %s", panel, f"{model.kind} from {model.source}" if model else "not configured")
    served = [*models, *(["embeddings"] if vectors is not None else [])]
    print(f"dlforge app on http://{shown}:{port}/ (panels: {', '.join(served)}); Ctrl+C stops it", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level=cfg.log_level, timeout_graceful_shutdown=2))
    server.run(sockets=[sock])


@hydra_entry("app")
def main(cfg: DictConfig) -> None:
    serve(cfg)


if __name__ == "__main__":
    main()
