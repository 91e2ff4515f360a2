"""User images -> model inputs, prepared the way the training images were (shared by predict and the app).

An image file of any size and colour mode is validated (format, pixel count: no decompression
bombs), turned the right way up (EXIF), flattened onto a background (transparency), converted to
the model's channels, and fitted to its input size in one of three styles:

- ``digit`` (MNIST's recipe): dark-on-light drawings are inverted to light-on-dark, the background
  level is subtracted, the strokes are cropped, scaled to fit a 20x20 box (aspect kept) and placed
  in the 28x28 frame so that their centre of mass is at the centre.
- ``object`` (Fashion-MNIST's recipe): a photo on a light background is inverted, the edges of
  background colour are trimmed, the longest side is scaled to the frame and the object centred.
- ``resize``: the whole image resized to the input size (as image-folder data sets are).

``auto`` picks the style from the name of the data set the model was trained on.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from dlforge.errors import DlforgeError

STYLES = ("auto", "digit", "object", "resize")
#: Data sets whose images were made by the digit / object recipes above.
STYLE_OF_DATA = {"mnist": "digit", "emnist": "digit", "fashion_mnist": "object"}
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
MAX_PIXELS = 40_000_000  # a 40-megapixel photo; larger ones (or decompression bombs) are refused
MAX_BYTES = 20_000_000


class ImageInputError(DlforgeError):
    """An image a user gave cannot be used (not an image, damaged, too large)."""


class ImageTooLarge(ImageInputError):
    """An image file or its pixel count is over the limit."""


def style_for(spec: dict[str, Any], style: str = "auto") -> str:
    """The preprocessing style for a model trained on ``spec`` (``auto``: by the data set's name)."""
    if style not in STYLES:
        raise DlforgeError(f"preprocess must be one of {', '.join(STYLES)}, not {style!r}")
    return STYLE_OF_DATA.get(str(spec.get("name")), "resize") if style == "auto" else style


def open_image(
    source: bytes | str | Path, max_pixels: int = MAX_PIXELS, max_bytes: int = MAX_BYTES
) -> Image.Image:
    """Decode an image file safely: a known format, at most ``max_pixels`` pixels, undamaged, upright."""
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if not path.is_file():
            raise ImageInputError(f"no image file at {path}")
        if path.stat().st_size > max_bytes:
            raise ImageTooLarge(f"{path.name} is larger than {max_bytes / 1e6:g} MB")
        data = path.read_bytes()
    else:
        data = source
    if len(data) > max_bytes:
        raise ImageTooLarge(f"the image file is larger than {max_bytes / 1e6:g} MB")
    if not data:
        raise ImageInputError("the image file is empty")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))  # reads the header only
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageTooLarge(f"the image has more than {max_pixels:,} pixels") from None
        except Exception:
            raise ImageInputError(
                f"not an image file this tool reads ({', '.join(ALLOWED_FORMATS)})"
            ) from None
        if image.format not in ALLOWED_FORMATS:
            raise ImageInputError(
                f"{image.format} images are not accepted; use one of {', '.join(ALLOWED_FORMATS)}"
            )
        width, height = image.size
        if width * height > max_pixels:  # checked before any pixel is decoded
            raise ImageTooLarge(f"the image has {width}x{height} pixels, more than {max_pixels:,}")
        try:
            image.load()
            image = ImageOps.exif_transpose(image)
        except Exception:
            raise ImageInputError("the image file is damaged or truncated") from None
    return image


def grey_levels(image: Image.Image) -> Image.Image:
    """16-bit and float images as 8-bit grey (PIL would clip them instead of scaling)."""
    if image.mode.startswith("I;16"):
        return Image.fromarray((np.asarray(image, dtype=np.float64) / 257).round().astype(np.uint8))
    if image.mode in ("I", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        top = pixels.max(initial=0)
        scale = 1 / 257 if top > 255 else (255 if image.mode == "F" and top <= 1 else 1)
        return Image.fromarray((pixels * scale).clip(0, 255).round().astype(np.uint8))
    return image


def flatten(image: Image.Image, channels: int) -> np.ndarray:
    """(H, W, channels) floats in [0, 1]. Transparent parts become the background that contrasts with
    the visible content (white behind dark strokes, black behind light ones), so drawings stay visible."""
    image = grey_levels(image)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255
        alpha = rgba[..., 3:]
        seen = float(alpha.sum())
        content = float((rgba[..., :3].mean(axis=2, keepdims=True) * alpha).sum() / seen) if seen else 1
        background = 1.0 if content < 0.5 else 0.0
        rgb = rgba[..., :3] * alpha + background * (1 - alpha)
        image = Image.fromarray((rgb * 255).round().astype(np.uint8))
    mode = "L" if channels == 1 else "RGB"
    array = np.asarray(image.convert(mode), dtype=np.float32) / 255
    return array[..., None] if array.ndim == 2 else array


def resize(pixels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(C, h, w) -> (C, height, width), bilinear with antialiasing (as image folders are resized)."""
    if tuple(pixels.shape[1:]) == (height, width):
        return pixels
    return F.interpolate(pixels[None], size=(height, width), mode="bilinear", antialias=True)[0].clamp(0, 1)


def light_on_dark(pixels: torch.Tensor, margin: float = 0.05) -> torch.Tensor:
    """Grey (H, W) with a dark background (inverted if the border is light), background level at 0."""
    border = torch.cat([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    if border.median() > 0.5:
        pixels = 1 - pixels
        border = 1 - border
    background = float(border.median())
    return ((pixels - background - margin) / max(1 - background - margin, 1e-6)).clamp(0, 1)


def content_box(pixels: torch.Tensor, threshold: float = 0.1) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) of the pixels above ``threshold`` of the brightest, or None if blank."""
    top_level = float(pixels.max())
    if top_level <= 0:
        return None
    rows = torch.nonzero((pixels > threshold * top_level).any(dim=1)).flatten()
    cols = torch.nonzero((pixels > threshold * top_level).any(dim=0)).flatten()
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def fit_into(pixels: torch.Tensor, box: int) -> torch.Tensor:
    """Scale (H, W) so that its longer side is ``box`` pixels, keeping the aspect ratio."""
    h, w = pixels.shape
    scale = box / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return resize(pixels[None], *size)[0]


def place(patch: torch.Tensor, height: int, width: int, centre: tuple[float, float]) -> torch.Tensor:
    """Paste ``patch`` into a black (height, width) frame so that its point ``centre`` lands mid-frame."""
    frame = torch.zeros(height, width)
    top = round(height / 2 - centre[0])
    left = round(width / 2 - centre[1])
    h, w = patch.shape
    r0, c0 = max(0, top), max(0, left)
    r1, c1 = min(height, top + h), min(width, left + w)
    if r1 > r0 and c1 > c0:
        frame[r0:r1, c0:c1] = patch[r0 - top : r1 - top, c0 - left : c1 - left]
    return frame


def centre_of_mass(patch: torch.Tensor) -> tuple[float, float]:
    """Intensity-weighted centre (row, column), in pixel-centre coordinates + 0.5."""
    total = float(patch.sum())
    rows = torch.arange(patch.shape[0], dtype=torch.float32) + 0.5
    cols = torch.arange(patch.shape[1], dtype=torch.float32) + 0.5
    return float((patch.sum(dim=1) * rows).sum()) / total, float((patch.sum(dim=0) * cols).sum()) / total


def as_digit(grey: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """MNIST's recipe: light strokes on black, cropped, fitted into a 20/28 box, centred by mass."""
    strokes = light_on_dark(grey)
    box = content_box(strokes)
    if box is None:
        return torch.zeros(height, width)
    top, bottom, left, right = box
    strokes = strokes[top:bottom, left:right]
    strokes = strokes / strokes.max()
    patch = fit_into(strokes, round(min(height, width) * 20 / 28))
    return place(patch, height, width, centre_of_mass(patch))


def as_object(grey: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Fashion-MNIST's recipe: inverted, background edges trimmed, longest side fitted, centred."""
    thing = light_on_dark(grey, margin=0.02)
    box = content_box(thing, threshold=0.05)
    if box is None:
        return torch.zeros(height, width)
    top, bottom, left, right = box
    patch = fit_into(thing[top:bottom, left:right], min(height, width))
    return place(patch, height, width, (patch.shape[0] / 2, patch.shape[1] / 2))


def prepare(image: Image.Image, spec: dict[str, Any], style: str = "auto") -> torch.Tensor:
    """A decoded image as the model's input: float (C, H, W) in [0, 1] with ``spec``'s shape."""
    channels, height, width = spec["channels"], spec["height"], spec["width"]
    style = style_for(spec, style)
    if style == "resize":
        pixels = torch.from_numpy(flatten(image, channels)).permute(2, 0, 1)
        return resize(pixels, height, width)
    grey = torch.from_numpy(flatten(image, 1)[..., 0])
    frame = as_digit(grey, height, width) if style == "digit" else as_object(grey, height, width)
    return frame[None].expand(channels, -1, -1).contiguous()


def load_image(
    source: bytes | str | Path,
    spec: dict[str, Any],
    style: str = "auto",
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_BYTES,
) -> torch.Tensor:
    """Open, validate and prepare one image file (bytes or a path) for a model trained on ``spec``."""
    return prepare(open_image(source, max_pixels, max_bytes), spec, style)


def to_png(pixels: torch.Tensor, scale: int = 1) -> bytes:
    """(C, H, W) or (H, W) in [0, 1] as PNG bytes, enlarged ``scale`` times without smoothing."""
    if pixels.dim() == 3:
        pixels = pixels[0] if pixels.shape[0] == 1 else pixels.permute(1, 2, 0)
    array = (pixels.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    image = Image.fromarray(array)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
