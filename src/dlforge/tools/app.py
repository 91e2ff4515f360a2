"""A web app over trained models: ``python -m dlforge.app digit=<ckpt> photo=... review=... generator=...``.

One page with panels, each served by a model given in ``conf/app.yaml`` as a checkpoint or an
exported file. A panel belongs to its family (``dlforge/serving/<family>.py`` names it in ``panels``,
opens its model, adds its ``/api/...`` routes, and keeps its ``<panel>.html`` and ``<panel>.js``);
this module assembles the page (``app_static/``) and holds no family names. A panel's model is given
as ``<panel>=<path>``, or as the option its family names (``vectors=`` for the embeddings panel).
The panels: draw a digit (an MNIST classifier), upload a photo (any image
classifier, e.g. Fashion-MNIST), type a review (a text classifier), sample a GAN/VAE (seed, class,
one latent coordinate on a slider), type English and get pig latin (a seq2seq translator, with where
it looked), classify a spoken clip (``speech=``: an audio classifier), hear a WaveNet say a digit
(``wavenet=``: a checkpoint, judged by the speech model when there is one), find word neighbours and
analogies (``vectors=``: a word2vec checkpoint or a GloVe-format file). A panel without a model says
so. The page talks to a small
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
- ``GET /api/embeddings``: the word vectors of the embeddings panel, or null;
  ``POST /api/embeddings``: ``{"query": "king - man + woman", "k"}`` -> the nearest words of one word,
  or an analogy's answers (3CosAdd).

Bad input (not an image, too large, a decompression bomb, an empty text) gets a 4xx answer with
``{"error": "<one line>"}``; an unexpected failure a 500 with the same shape; the server goes on.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from omegaconf import DictConfig

from dlforge.cli import hydra_entry
from dlforge.errors import DlforgeError
from dlforge.serving import all_served
from dlforge.serving.served import ServedModel
from dlforge.serving.web import AppContext, BadRequest, Limits

log = logging.getLogger("dlforge")

STATIC = Path(__file__).resolve().parent.parent / "app_static"  # the package's, beside tools/


def panel_table() -> dict[str, type[ServedModel]]:
    """Every panel the registered families offer, and the family that serves it (the class that names
    it: a subclass, e.g. the scikit-learn baselines', is served by its base's panels)."""
    return {panel: served for served in all_served() if "panels" in vars(served) for panel in served.panels}


#: Each panel and the kind of model it needs (the families registered when this module loads).
PANELS = panel_table()


def option_of(panel: str, served: type[ServedModel]) -> str:
    """The app option that names ``panel``'s model (``conf/app.yaml``): the panel's name unless its
    family names another (``vectors`` for ``embeddings``)."""
    return served.panel_options.get(panel, panel)


def load_panels(paths: dict[str, str | None], cache_dir: str | None = None) -> dict[str, ServedModel]:
    """The model of every configured panel (panel name -> path), opened by the panel's family and
    checked to be of the kind the panel needs."""
    panels = panel_table()
    models = {}
    for panel, path in paths.items():
        if panel not in panels:
            raise DlforgeError(f"unknown panel {panel!r}; the panels are {', '.join(panels)}")
        if not path:
            continue
        served = panels[panel]
        option = option_of(panel, served)
        try:
            model = served.open_model(path, cache_dir)
        except DlforgeError as err:
            raise DlforgeError(f"{option}={path}: {err}") from None
        if not isinstance(model, served):
            raise DlforgeError(
                f"{option}={path}: the {panel} panel needs {served.what}, not this {model.kind}"
            )
        models[panel] = model
    return models


def describe_panel(model: ServedModel) -> dict[str, Any]:
    return {
        "source": Path(model.source).name,
        "backend": model.backend,
        "kind": model.kind,
        "data": model.card.get("data", {}).get("name"),
        "class_names": model.class_names,
        **model.panel_info(),
    }


def panel_file(served: type[ServedModel], panel: str, suffix: str) -> Path:
    path = served.panel_files / f"{panel}{suffix}"
    if not path.is_file():
        raise DlforgeError(f"the {panel} panel of {served.__name__} has no {path}")
    return path


def page(panels: dict[str, type[ServedModel]]) -> str:
    """``app_static/index.html`` with every panel's HTML and script in place."""
    sections = "\n".join(panel_file(served, name, ".html").read_text() for name, served in panels.items())
    scripts = "\n".join(f'  <script src="/panels/{name}.js" defer></script>' for name in panels)
    html = (STATIC / "index.html").read_text()
    return html.replace("<!-- panels -->", sections).replace("<!-- scripts -->", scripts)


def create_app(
    models: dict[str, ServedModel], limits: Limits | None = None, preprocess: str = "auto"
) -> BodyLimit:
    """The FastAPI application serving ``models`` (panel name -> model)."""
    limits = limits or Limits()
    panels = panel_table()
    context = AppContext(models, limits, preprocess, panels)
    index = page(panels)
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

    @app.get("/")
    def home() -> HTMLResponse:
        return HTMLResponse(index)

    @app.get("/panels/{name}.js")
    def panel_script(name: str) -> FileResponse:
        if name not in panels:
            raise BadRequest(f"no panel {name!r}", 404)
        return FileResponse(panel_file(panels[name], name, ".js"), media_type="text/javascript")

    @app.get("/api/panels")
    def panel_list() -> dict[str, Any]:
        return {
            "panels": {p: describe_panel(models[p]) if p in models else None for p in panels},
            "limits": {
                "upload_bytes": limits.upload_bytes,
                "text_chars": limits.text_chars,
                "audio_seconds": limits.audio_seconds,
                "speech_seconds": limits.speech_seconds,
            },
        }

    for served in dict.fromkeys(panels.values()):
        served.add_routes(app, context)

    return BodyLimit(app, limits.upload_bytes + 64_000)


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
    if not isinstance(host, str) or not host.strip():  # '' would bind every interface, unasked
        raise DlforgeError(
            f"host={host!r} names no address; pass host=127.0.0.1 (this machine only) or host=0.0.0.0 "
            "(every interface: other machines too)"
        )
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

    options = {panel: option_of(panel, served) for panel, served in PANELS.items()}
    models = load_panels({panel: cfg.get(option) for panel, option in options.items()}, cfg.paths.cache_dir)
    if not models:
        listed = ", ".join(f"{option}=" for option in options.values())
        raise DlforgeError(
            f"no model configured: pass at least one of {listed} "
            "(a checkpoint or a file from python -m dlforge.export)"
        )
    limits = Limits(
        upload_bytes=int(cfg.limits.upload_mb * 1_000_000),
        max_pixels=int(cfg.limits.max_pixels),
        text_chars=int(cfg.limits.text_chars),
        audio_seconds=float(cfg.limits.audio_seconds),
        speech_seconds=float(cfg.limits.speech_seconds),
    )
    app = create_app(models, limits, cfg.preprocess)
    sock = listening_socket(cfg.host, cfg.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    for panel in PANELS:
        model = models.get(panel)
        log.info("%s panel: %s", panel, f"{model.kind} from {model.source}" if model else "not configured")
    print(f"dlforge app on http://{shown}:{port}/ (panels: {', '.join(models)}); Ctrl+C stops it", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level=cfg.log_level, timeout_graceful_shutdown=2))
    server.run(sockets=[sock])


@hydra_entry("app")
def main(cfg: DictConfig) -> None:
    serve(cfg)


if __name__ == "__main__":
    main()
