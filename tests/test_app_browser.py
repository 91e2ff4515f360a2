"""The web app in a real headless browser (Debian's Chromium driven by Playwright), started as typed:
``python -m dlforge.app digit=... photo=... review=... generator=... speech=... wavenet=... port=0``.

Draw a stroke, upload a photo (and a file that is not one), type a review, sample with the seed and
the latent slider, upload a clip (and a file that is not one), have the WaveNet say a digit.
Screenshots go to pytest's temp folder, and to ``$DLFORGE_SCREENSHOTS`` when set.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from dlforge.app import create_app, listening_socket, load_panels
from dlforge.inference import load
from dlforge.preprocess import load_image
from tests.app_fixtures import (
    CHROMIUM_ARGS,
    chromium_or_skip,
    tiny_audio_checkpoints,
    tiny_checkpoints,
    tiny_export,
    wav_file,
)
from tests.test_audio import digit_clip
from tests.test_predict_images import shirt_photo

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def models(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    checkpoints = tiny_checkpoints(data_dir, tmp_path_factory)
    audio = tiny_audio_checkpoints(tmp_path_factory)
    return {**checkpoints, "photo": str(tiny_export(data_dir, tmp_path_factory, "photo")), **audio}


@pytest.fixture(scope="module")
def browser() -> Iterator:
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextlib.contextmanager
def running_app(args: list[str], cwd: Path) -> Iterator[tuple[str, str]]:
    """``python -m dlforge.app *args port=0`` as a user starts it: its address and start-up line; stopped
    at the end."""
    process = subprocess.Popen(
        [sys.executable, "-m", "dlforge.app", *args, "port=0"],
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                pytest.fail(f"the app exited with {process.returncode}:\n{''.join(lines)[-3000:]}")
            lines.append(line)
            found = re.search(r"dlforge app on (http://127\.0\.0\.1:\d+/)", line)
            if found:
                threading.Thread(target=process.stdout.read, daemon=True).start()  # keep the pipe drained
                yield found.group(1), line
                break
        else:
            pytest.fail("the app did not start within 180 s")
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def server(models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app as a user starts it, on 127.0.0.1 and a free port; stopped at the end."""
    args = [f"{panel}={path}" for panel, path in models.items()]
    with running_app(args, tmp_path_factory.mktemp("app")) as (address, _):
        yield address


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("screenshots")
    yield folder
    target = os.environ.get("DLFORGE_SCREENSHOTS")
    if target:
        shutil.copytree(folder, target, dirs_exist_ok=True)


@pytest.fixture
def page(browser, server: str):
    page = browser.new_page(viewport={"width": 1280, "height": 960})
    page.set_default_timeout(60_000)
    page.goto(server)
    page.wait_for_selector("body[data-ready=true]")
    yield page
    page.close()


def label_shown(page, panel: str) -> None:
    page.wait_for_function(f"document.getElementById('{panel}-label').textContent.trim().length > 1")


def test_draw_a_digit_and_see_the_prediction(page, server: str, models, screenshots: Path) -> None:
    canvas = page.locator("#digit-canvas").bounding_box()
    page.mouse.move(canvas["x"] + 80, canvas["y"] + 70)
    page.mouse.down()
    for x, y in [(210, 70), (195, 100), (130, 240)]:  # a 7
        page.mouse.move(canvas["x"] + x, canvas["y"] + y, steps=12)
    page.mouse.up()
    label_shown(page, "digit")
    page.wait_for_load_state("networkidle")
    assert page.locator("#digit-probs .bar").count() == 10
    assert page.locator("#digit-input").get_attribute("src").startswith("data:image/png")
    page.locator("#digit").screenshot(path=screenshots / "digit.png")

    # the page shows what the model says about the drawing on the canvas
    data_url = page.evaluate("document.getElementById('digit-canvas').toDataURL()")
    drawing = base64.b64decode(data_url.split(",")[1])
    model = load(models["digit"])
    expected = model.class_names[int(model.classify(load_image(drawing, model.spec)[None])[0].argmax())]
    assert page.inner_text("#digit-label").split()[0] == expected
    answer = httpx.post(f"{server}api/classify/digit", files={"image": ("d.png", drawing)}, timeout=30).json()
    assert answer["label"] == expected

    page.click("#digit-clear")
    assert page.inner_text("#digit-label").strip() == "\u2013"
    assert page.locator("#digit-probs .bar").count() == 0


def test_upload_a_photo_and_a_file_that_is_not_one(page, tmp_path: Path, screenshots: Path) -> None:
    photo = tmp_path / "shirt.jpg"
    shirt_photo().save(photo, quality=90)
    page.set_input_files("#photo-file", str(photo))
    label_shown(page, "photo")
    assert page.locator("#photo-probs .bar").count() == 10
    assert page.inner_text("#photo-error") == ""
    page.locator("#photo").screenshot(path=screenshots / "photo.png")

    fake = tmp_path / "notes.png"
    fake.write_text("I am not a picture")
    page.set_input_files("#photo-file", str(fake))
    page.wait_for_function("document.getElementById('photo-error').textContent.length > 0")
    assert "not an image file" in page.inner_text("#photo-error")
    assert page.inner_text("#photo-label").strip() == "\u2013"
    page.locator("#photo").screenshot(path=screenshots / "photo_error.png")


def test_type_a_review_and_get_its_sentiment(page, screenshots: Path) -> None:
    page.fill("#review-text", "A gorgeous, witty and moving film. Great fun!")
    page.wait_for_function("document.getElementById('review-label').textContent.includes('positive')")
    assert page.locator("#review-probs .bar").count() == 2
    assert page.inner_text("#review-tokens").startswith("tokens: a gorgeous , witty")
    page.locator("#review").screenshot(path=screenshots / "review.png")
    page.fill("#review-text", "dull, boring and tedious.")
    page.click("#review-submit")
    page.wait_for_function("document.getElementById('review-label').textContent.includes('negative')")


def test_sample_with_the_seed_and_the_latent_slider(page, screenshots: Path) -> None:
    page.wait_for_function("document.getElementById('gen-image').src.startsWith('data:image/png')")
    assert page.locator("#gen-dim option").count() == 4
    first = page.get_attribute("#gen-image", "src")
    page.fill("#gen-seed", "5")
    page.press("#gen-seed", "Enter")
    page.wait_for_function(f"document.getElementById('gen-image').src !== {first!r}")
    seeded = page.get_attribute("#gen-image", "src")
    value = float(page.inner_text("#gen-value"))
    page.focus("#gen-slider")
    for _ in range(12):
        page.keyboard.press("ArrowRight")  # +0.05 each
    page.wait_for_function(f"document.getElementById('gen-image').src !== {seeded!r}")
    page.wait_for_load_state("networkidle")
    assert float(page.inner_text("#gen-value")) == pytest.approx(min(3, value + 0.6), abs=0.051)
    page.locator("#generator").screenshot(path=screenshots / "generator.png")
    page.screenshot(path=screenshots / "page.png", full_page=True)


def test_panels_without_a_model_say_so(browser, models, screenshots: Path) -> None:
    """An app with the drawing panel only (served in this process)."""
    import uvicorn

    sock = listening_socket("127.0.0.1", 0)
    app = create_app(load_panels({"digit": models["digit"]}))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    page = browser.new_page(viewport={"width": 1280, "height": 960})
    try:
        page.goto(f"http://127.0.0.1:{sock.getsockname()[1]}/")
        page.wait_for_selector("body[data-ready=true]")
        for panel in ["photo", "review", "generator", "speech", "wavenet"]:
            key = f"{panel}="
            assert page.locator(f"#{panel} .missing").is_visible()
            assert key in page.inner_text(f"#{panel} .missing")
            assert not page.locator(f"#{panel} .body").is_visible()
        assert page.locator("#digit-canvas").is_visible()
        page.screenshot(path=screenshots / "only_digit.png", full_page=True)
    finally:
        page.close()
        server.should_exit = True
        thread.join(timeout=10)


# --- the pig-latin panel ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def piglatin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app as typed with the pig-latin panel only, serving the tiny translator's TorchScript export."""
    from tests.test_app import tiny_translator

    export = tiny_translator(tmp_path_factory)["export"]
    with running_app([f"piglatin={export}"], tmp_path_factory.mktemp("piglatin_app")) as (address, _):
        yield address


def test_type_english_and_get_pig_latin_with_its_attention(
    browser, piglatin_server: str, screenshots: Path
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 960})
    page.set_default_timeout(60_000)
    try:
        page.goto(piglatin_server)
        page.wait_for_selector("body[data-ready=true]")
        assert (
            page.locator("#digit .missing").is_visible()
            and not page.locator("#piglatin .missing").is_visible()
        )
        assert "seq2seq" in page.inner_text("#piglatin .model")
        page.fill("#piglatin-text", "Hello, world!")
        page.wait_for_function(
            "document.getElementById('piglatin-output').textContent === 'Ellohay, orldway!'"
        )
        assert page.locator("#piglatin-word option").all_inner_texts() == [
            "Hello \u2192 Ellohay",
            "world \u2192 orldway",
        ]
        # "Hello" -> "Ellohay": a row of the 5 input letters, then 8 rows (7 letters and the end) of 5 weights
        assert page.locator("#piglatin-attention .weight").count() == 8 * 5
        assert page.locator("#piglatin-attention .in").all_inner_texts() == list("Hello")
        page.select_option("#piglatin-word", "1")
        assert page.locator("#piglatin-attention .in").all_inner_texts() == list("world")
        page.locator("#piglatin").screenshot(path=screenshots / "piglatin.png")

        page.fill("#piglatin-text", "a café")
        page.click("#piglatin-submit")
        page.wait_for_function("document.getElementById('piglatin-kept').textContent.includes('café')")
        assert page.inner_text("#piglatin-output").endswith(" café")
        page.fill("#piglatin-text", "a" * 45)
        page.wait_for_function("document.getElementById('piglatin-error').textContent.length > 0")
        assert "has 45 letters" in page.inner_text("#piglatin-error")
        assert page.inner_text("#piglatin-output").strip() == "\u2013"
        page.locator("#piglatin").screenshot(path=screenshots / "piglatin_error.png")
    finally:
        page.close()


# --- spoken digits -------------------------------------------------------------------------------
def test_upload_a_clip_a_phone_recording_and_a_file_that_is_not_one(
    page, tmp_path: Path, screenshots: Path
) -> None:
    clip = tmp_path / "four.wav"
    clip.write_bytes(wav_file(digit_clip(4, 0, 0)))
    page.set_input_files("#speech-file", str(clip))
    label_shown(page, "speech")
    assert page.locator("#speech-probs .bar").count() == 10
    assert page.locator("#speech-input").get_attribute("src").startswith("data:image/png")
    assert page.locator("#speech-audio").is_visible() and page.inner_text("#speech-error") == ""
    page.locator("#speech").screenshot(path=screenshots / "speech.png")

    phone = tmp_path / "phone.wav"  # stereo at 44.1 kHz: converted, and the page says so
    phone.write_bytes(wav_file(np.repeat(np.sin(np.arange(22050) / 9) * 0.3, 2), rate=44100, channels=2))
    page.set_input_files("#speech-file", str(phone))
    page.wait_for_function("document.getElementById('speech-note').textContent.includes('converted')")
    assert "44100 Hz 2 channels -> 8000 Hz mono" in page.inner_text("#speech-note")

    fake = tmp_path / "notes.wav"
    fake.write_text("I am not a sound")
    page.set_input_files("#speech-file", str(fake))
    page.wait_for_function("document.getElementById('speech-error').textContent.length > 0")
    assert "notes.wav is not a PCM WAV file" in page.inner_text("#speech-error")
    assert page.inner_text("#speech-label").strip() == "\u2013"


def test_say_a_digit_hear_it_and_see_the_verdict(page, models, screenshots: Path) -> None:
    page.select_option("#say-digit", "5")
    page.fill("#say-seconds", "0.05")
    page.fill("#say-seed", "3")
    page.click("#say-submit")
    page.wait_for_function("(document.getElementById('say-audio').src || '').startsWith('data:audio/wav')")
    page.wait_for_function("document.getElementById('say-audio').readyState >= 1")  # the browser decoded it
    assert page.evaluate("document.getElementById('say-audio').duration") == pytest.approx(0.05, abs=0.002)
    assert page.locator("#say-picture").is_visible() and "x real time" in page.inner_text("#say-timing")
    assert page.locator("#say-probs .bar").count() == 10
    clip = load(models["wavenet"]).generate(5, 0.05, seed=3, temperature=0.9)
    speech = load(models["speech"])
    expected = speech.class_names[int(speech.classify([clip])[0].argmax())]
    assert page.inner_text("#say-label").split()[0] == expected
    assert page.inner_text("#wavenet-error") == ""
    page.locator("#wavenet").screenshot(path=screenshots / "wavenet.png")


# --- the embeddings panel: neighbours and analogies of word vectors --------------------------------
def test_explore_word_vectors_neighbours_and_analogies(browser, tmp_path: Path, screenshots: Path) -> None:
    """The app started as typed with word vectors only: ``python -m dlforge.app vectors=<GloVe .txt>``."""
    from tests.test_app import write_royal_glove

    glove = write_royal_glove(tmp_path / "royal.txt")
    with running_app([f"vectors={glove}"], tmp_path) as (address, started):
        assert "(panels: embeddings)" in started
        page = browser.new_page(viewport={"width": 1280, "height": 960})
        page.set_default_timeout(60_000)
        try:
            page.goto(address)
            page.wait_for_selector("#embeddings[data-ready=true]")
            assert "6 words" in page.inner_text("#embeddings .model")
            page.wait_for_function("document.querySelectorAll('#emb-results li').length > 0")
            assert page.inner_text("#emb-results li >> nth=0").split()[0] == "queen"  # king - man + woman
            page.fill("#emb-query", "apple")
            page.press("#emb-query", "Enter")
            page.wait_for_function("document.querySelector('#emb-results li').textContent.startsWith('pear')")
            assert page.locator("#emb-results li").count() == 5
            page.locator("#embeddings").screenshot(path=screenshots / "embeddings.png")
            page.fill("#emb-query", "unicorn")
            page.click("#emb-submit")
            page.wait_for_function("document.getElementById('embeddings-error').textContent.length > 0")
            assert "'unicorn' is not among the 6 words" in page.inner_text("#embeddings-error")
            assert page.locator("#emb-results li").count() == 0
            assert page.locator("#digit .missing").is_visible()  # the model panels say they have none
        finally:
            page.close()
