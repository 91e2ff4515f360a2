"""Captioned digits and clothes for text to image (issue 30): canvases built on the fly from MNIST or
Fashion-MNIST items, captions from a small grammar, and a judge that checks an image against its caption.

**Canvas.** A ``canvas`` x ``canvas`` (64) black canvas holds ``items`` (1 or 2) items of the source set.
Each item stands at one of nine :data:`POSITIONS` (a 3 x 3 layout: top left ... bottom right) at one of
two :data:`SIZES`: ``small`` (the 28 x 28 item scaled to ``canvas / 4`` = 16 px) or ``large``
(``canvas * 7 / 16`` = 28 px, the item's own size at 64), its box ``margin`` (1 px) from the canvas's
edge at the left/top, centred, or at the right/bottom (:func:`item_boxes`): both sizes fit at every
position. MNIST canvases are grey (1 channel). Fashion canvases are RGB and each item is tinted with one
of the named :data:`COLOURS` (its grey value times the colour; every colour has a channel at 1, so
the brightest channel is the item's grey value). Two items stand at different positions whose boxes
do not overlap. A property a data set's captions do not mention (``properties``) takes a fixed value:
position centre, size large, colour white.

**Captions.** An item's phrase comes from one of eight :data:`TEMPLATES` (word orders) with synonyms
(:data:`NOUNS`, :data:`SIZE_WORDS`, :data:`POSITION_WORDS`, prepositions, an optional "corner"):
"a large 7 in the top left corner", "seven, small, at the bottom", "a red sneaker on the right,
small", "there is a tiny number four on the left". Digits are written as numerals and as words. Two
items' phrases are joined by "and". Words are lower case; a comma is a token of its own, other
punctuation (``. ! ? ; : " ( )``) is dropped when a caption is read (:func:`tokenize`). The
vocabulary (``spec["vocab"]``) is ``<pad>`` (id 0), ``<unk>`` (id 1, never produced: an unknown word
is an error) and every word the grammar can write for the data's options, sorted.

**Properties.** Each caption records its items' properties, an int64 tensor (N, items, 4) of
``[class, position, size, colour]`` (indices into ``class_names``, :data:`POSITIONS`, :data:`SIZES`,
:data:`COLOURS`); -1 where a property is not used (colour on MNIST) or the item is absent.

**Held out for testing, never in training or validation.**

- Phrasings: templates 5 ("in the top left corner, a large 7": the place first) and 6 ("the 7, large,
  is in the top left corner") of :data:`TEMPLATES` (:data:`HELD_OUT_TEMPLATES`) occur only in the test
  set ``phrasings`` (whose classes and positions follow the training rule); every word they use also
  occurs in the six training templates.
- Combinations: class ``k`` never stands at position ``(k + 4) mod 9`` in training or validation
  (:func:`held_out_combinations`): 0 centre, 1 right, 2 bottom left, 3 bottom, 4 bottom right, 5 top
  left, 6 top, 7 top right, 8 left, 9 centre. Every class still occurs at the eight other positions
  and every position with at least eight classes. In the test set ``combinations`` every item is
  such a pair (written with the training templates). The rule needs both ``class`` and ``position``
  among the properties; without them that test set is made like the training canvases.

Training and validation canvases use the item images of the official training split (validation a
seeded twelfth of each class that training never uses), the test sets those of the test split.
Each split is a fixed seeded draw (``train_size`` canvases, ...): the item index, the properties and
the caption's token ids are kept; the pictures are rendered per batch (:func:`render`, tensor ops).

**Judge.** :func:`judge` checks images against the properties asked for: position and size from the
item's ink (pixels brighter than :data:`INK` in their brightest channel, inside the item's region:
with two items each pixel belongs to the item whose asked box is nearest), colour from the ink's mean
tint, class by a classifier on the item cropped and resized to 28 x 28 grey (:func:`measure_items`).
"""

from __future__ import annotations

import difflib
import functools
import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision.ops import roi_align

from dlforge.data.standard import FashionMNISTDataModule, MNISTDataModule
from dlforge.data.tensors import TensorBatches, TensorDataModule
from dlforge.errors import DlforgeError

log = logging.getLogger(__name__)

#: the two test sets, in the order of :meth:`CaptionedDataModule.test_dataloader`'s loaders
TEST_SETS = ("phrasings", "combinations")
#: the columns of a properties row
PROPERTIES = ("class", "position", "size", "colour")
CLASS, POSITION, SIZE, COLOUR = range(4)
POSITIONS = (
    "top left", "top", "top right",
    "left", "centre", "right",
    "bottom left", "bottom", "bottom right",
)  # fmt: skip
CENTRE = POSITIONS.index("centre")
CORNERS = frozenset({0, 2, 6, 8})
SIZES = ("small", "large")
SMALL, LARGE = range(2)
#: the tints of Fashion items (RGB multipliers of the item's grey value)
COLOURS = {
    "red": (1.0, 0.15, 0.15),
    "green": (0.15, 1.0, 0.15),
    "blue": (0.2, 0.4, 1.0),
    "yellow": (1.0, 1.0, 0.15),
    "white": (1.0, 1.0, 1.0),
}
WHITE = list(COLOURS).index("white")
ITEM = 28  # the source images' side
PAD, UNK = 0, 1
SPECIALS = ("<pad>", "<unk>")
#: a pixel is ink when its brightest channel is above this (Fashion items have dark parts: a black
#: coat's body is 5-20% grey)
INK = {"mnist": 0.3, "fashion_mnist": 0.05}
EXTENT_TRIM = 0.01  # the ink's extent runs from its 1% to its 99% quantile (stray pixels ignored)
HELD_OUT_SHIFT = 4  # class k is held out at position (k + 4) mod 9

SOURCES: dict[str, type] = {"mnist": MNISTDataModule, "fashion_mnist": FashionMNISTDataModule}
DATA_NAMES = {"mnist": "captioned_mnist", "fashion_mnist": "captioned_fashion"}
CLASS_NAMES = {"mnist": [str(d) for d in range(10)], "fashion_mnist": list(datasets.FashionMNIST.classes)}
#: how much of an item's 28 x 28 box its ink spans (MNIST digits were fit into 20 x 20)
FILL = {"mnist": 20 / 28, "fashion_mnist": 1.0}
#: how the source centred its items in their box: MNIST by centre of mass, Fashion by bounding box
CENTRING = {"mnist": "mass", "fashion_mnist": "extent"}

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
#: each class's nouns (token sequences); "digit", "number", "pair of" are fillers when read back
NOUNS: dict[str, list[list[tuple[str, ...]]]] = {
    "mnist": [
        [(str(k),), (NUMBER_WORDS[k],), ("digit", str(k)), ("number", NUMBER_WORDS[k])] for k in range(10)
    ],
    "fashion_mnist": [
        [("t-shirt",), ("tee",)],
        [("pair", "of", "trousers"), ("pair", "of", "pants")],
        [("pullover",), ("sweater",), ("jumper",)],
        [("dress",)],
        [("coat",), ("jacket",)],
        [("sandal",)],
        [("shirt",), ("blouse",)],
        [("sneaker",), ("trainer",)],
        [("bag",), ("handbag",)],
        [("ankle", "boot"), ("boot",)],
    ],
}
#: the noun of an item whose class the captions do not mention
GENERIC_NOUNS = {"mnist": [("digit",), ("number",)], "fashion_mnist": [("item",), ("garment",)]}
SIZE_WORDS = ([("small",), ("little",), ("tiny",)], [("large",), ("big",)])
POSITION_WORDS = (
    [("top", "left"), ("upper", "left")],
    [("top",)],
    [("top", "right"), ("upper", "right")],
    [("left",)],
    [("centre",), ("center",), ("middle",)],
    [("right",)],
    [("bottom", "left"), ("lower", "left")],
    [("bottom",)],
    [("bottom", "right"), ("lower", "right")],
)
PREPOSITIONS = tuple(
    ("in", "at") if p in CORNERS or p == CENTRE else ("at", "on") for p in range(len(POSITIONS))
)

# template elements: the slots, the article ("a"/"an" by the next word), literal words
NOUN, SIZE_SLOT, COLOUR_SLOT, WHERE, ARTICLE = "<noun>", "<size>", "<colour>", "<where>", "<a>"
SLOT_PROPERTY = {NOUN: CLASS, SIZE_SLOT: SIZE, COLOUR_SLOT: COLOUR, WHERE: POSITION}
#: an item's phrase: parts of template elements; a part whose slots all go unused (the data's
#: ``properties``) is left out with its literal words (the noun is always said: "digit" if no class)
TEMPLATES: tuple[tuple[tuple[str, ...], ...], ...] = (
    ((ARTICLE,), (SIZE_SLOT,), (COLOUR_SLOT,), (NOUN,), (WHERE,)),  # a large red 7 in the top left corner
    ((NOUN,), (",", COLOUR_SLOT), (",", SIZE_SLOT), (",", WHERE)),  # seven, small, at the bottom
    (("there", "is", ARTICLE), (SIZE_SLOT,), (COLOUR_SLOT,), (NOUN,), (WHERE,)),  # there is a small 3 ...
    ((SIZE_SLOT,), (COLOUR_SLOT,), (NOUN,), (WHERE,)),  # big 4 on the left
    ((ARTICLE,), (COLOUR_SLOT,), (NOUN,), (WHERE,), (",", SIZE_SLOT)),  # a red sneaker on the right, small
    ((WHERE, ","), (ARTICLE,), (SIZE_SLOT,), (COLOUR_SLOT,), (NOUN,)),  # in the top left corner, a large 7
    (("the",), (NOUN,), (",", SIZE_SLOT, COLOUR_SLOT, ","), ("is", WHERE)),  # the 7, large, is at the top
    ((NOUN,), (WHERE,), (",", SIZE_SLOT, COLOUR_SLOT)),  # sneaker at the bottom, small red
)
HELD_OUT_TEMPLATES = (5, 6)
SEEN_TEMPLATES = tuple(t for t in range(len(TEMPLATES)) if t not in HELD_OUT_TEMPLATES)
AND = "and"
FILLERS = frozenset({"a", "an", "the", "there", "is", "in", "at", "on", "corner", ","})
#: words of a noun that say no class ("digit 7", "pair of trousers")
NOUN_FILLERS = frozenset({"digit", "number", "pair", "of"})
TOKEN = re.compile(r"[^\W_]+(?:-[^\W_]+)*|[^\w\s]")
DROPPED = frozenset('.!?;:"()')
CHOICES = 6  # random numbers per phrase: noun, size word, colour word, preposition, place word, corner


# --- words ---------------------------------------------------------------------------------------
def tokenize(text: str) -> list[str]:
    """A caption's tokens: lower-case words (``t-shirt`` is one), commas; ``. ! ? ; : " ( )`` dropped."""
    return [t for t in TOKEN.findall(text.lower()) if t not in DROPPED]


def join_tokens(tokens: Sequence[str]) -> str:
    """Tokens back to a caption: spaces between words, none before a comma."""
    return " ".join(tokens).replace(" ,", ",")


@functools.lru_cache(maxsize=32)
def _grammar(source: str, properties: tuple[str, ...], items: int) -> dict[str, Any]:
    """The words, the lexicon (phrase -> (property column, value)) and the longest caption."""
    used = set(properties)
    nouns = NOUNS[source] if "class" in used else [GENERIC_NOUNS[source]]
    words: set[str] = {w for forms in nouns for form in forms for w in form}
    lexicon: dict[tuple[str, ...], tuple[int, int]] = {}
    if "class" in used:
        for k, forms in enumerate(NOUNS[source]):
            for form in forms:
                key = tuple(w for w in form if w not in NOUN_FILLERS)
                lexicon[key] = (CLASS, k)
    fillers = set(FILLERS) | set(NOUN_FILLERS) | {w for form in GENERIC_NOUNS[source] for w in form}
    if "size" in used:
        for s, forms in enumerate(SIZE_WORDS):
            lexicon.update({form: (SIZE, s) for form in forms})
    if "colour" in used:
        lexicon.update({(name,): (COLOUR, c) for c, name in enumerate(COLOURS)})
    if "position" in used:
        for p, forms in enumerate(POSITION_WORDS):
            lexicon.update({form: (POSITION, p) for form in forms})
            words |= set(PREPOSITIONS[p]) | {"the"} | ({"corner"} if p in CORNERS else set())
    words |= {w for form in lexicon for w in form}
    lengths = {
        NOUN: max(len(form) for forms in nouns for form in forms),
        SIZE_SLOT: 1,
        COLOUR_SLOT: 1,
        WHERE: 2 + max(len(f) + (p in CORNERS) for p, forms in enumerate(POSITION_WORDS) for f in forms),
        ARTICLE: 1,
    }
    longest = 0
    for template in TEMPLATES:
        n = 0
        for part in _kept_parts(template, used):  # unused slots are gone from the kept parts
            n += sum(lengths.get(e, 1) for e in part)
            words |= {e for e in part if e not in lengths}
        longest = max(longest, n)
    words |= {"a", "an"}
    if items == 2:
        words.add(AND)
    return {
        "words": sorted(words),
        "lexicon": lexicon,
        "fillers": frozenset(fillers & words),
        "max_len": items * longest + (items - 1),
    }


def _slot_used(element: str, used: set[str]) -> bool:
    return element == NOUN or element not in SLOT_PROPERTY or PROPERTIES[SLOT_PROPERTY[element]] in used


def _kept_parts(template: tuple[tuple[str, ...], ...], used: set[str]) -> list[tuple[str, ...]]:
    """A template's parts that have something to say: any part without slots, or with a slot in use."""
    kept = []
    for part in template:
        slots = [e for e in part if e in SLOT_PROPERTY]
        if not slots or any(_slot_used(e, used) for e in slots):
            kept.append(tuple(e for e in part if _slot_used(e, used)))
    return kept


def template_pattern(template: int, properties: Sequence[str]) -> tuple[str, ...]:
    """The word order of a template under the properties in use (slots and literal words)."""
    return tuple(e for part in _kept_parts(TEMPLATES[template], set(properties)) for e in part)


def _grammar_of(spec: dict[str, Any]) -> dict[str, Any]:
    return _grammar(spec["source"], tuple(spec["properties"]), int(spec["items"]))


def _vocab_index(spec: dict[str, Any]) -> dict[str, int]:
    return _index(tuple(spec["vocab"]))


@functools.lru_cache(maxsize=32)
def _index(vocab: tuple[str, ...]) -> dict[str, int]:
    return {word: i for i, word in enumerate(vocab)}


def _unknown(word: str, text: str, spec: dict[str, Any]) -> DlforgeError:
    known = [w for w in spec["vocab"][len(SPECIALS) :] if w != ","]
    close = difflib.get_close_matches(word, known, n=3, cutoff=0.6)
    content = [w for w in known if w not in FILLERS and w != AND]
    examples = close + [w for w in content if w not in close][: 8 - len(close)]
    return DlforgeError(
        f"unknown word {word!r} in the caption {text!r}: {spec['name']} captions use {len(known)} words, "
        f"such as {', '.join(examples)}"
    )


def encode_caption(text: str, spec: dict[str, Any]) -> torch.Tensor:
    """A caption's token ids (1-D int64 of ``max_len``, PAD after the words).

    Raises :class:`~dlforge.errors.DlforgeError` naming a word the vocabulary does not hold (no UNK is
    ever produced), and for an empty caption or one longer than ``max_len`` tokens.
    """
    tokens = tokenize(text)
    if not tokens:
        raise DlforgeError(
            f"the caption {text!r} has no words; write e.g. 'a large 7 in the top left corner'"
        )
    index = _vocab_index(spec)
    for token in tokens:
        if token not in index:
            raise _unknown(token, text, spec)
    if len(tokens) > spec["max_len"]:
        raise DlforgeError(
            f"the caption {text!r} has {len(tokens)} tokens; {spec['name']} captions have at most "
            f"{spec['max_len']}"
        )
    ids = torch.full((int(spec["max_len"]),), PAD, dtype=torch.long)
    ids[: len(tokens)] = torch.tensor([index[t] for t in tokens], dtype=torch.long)
    return ids


def encode_captions(texts: Sequence[str], spec: dict[str, Any]) -> torch.Tensor:
    """:func:`encode_caption` of each text, stacked (N, max_len)."""
    if not texts:
        return torch.zeros(0, int(spec["max_len"]), dtype=torch.long)
    return torch.stack([encode_caption(text, spec) for text in texts])


def caption_text(tokens: torch.Tensor, spec: dict[str, Any]) -> list[str]:
    """Token ids (N, T) (or one row) back to captions."""
    rows = tokens.detach().cpu().long().view(-1, tokens.shape[-1]).tolist()
    vocab = spec["vocab"]
    return [join_tokens([vocab[i] for i in row if i != PAD]) for row in rows]


def parse_caption(text: str, spec: dict[str, Any]) -> list[list[int]]:
    """The properties a caption asks for: one ``[class, position, size, colour]`` row per item (-1 for
    a property the data does not use), read from its words in any order (fillers such as "a", "the",
    "in", "corner", "digit" ignored; phrases of two items joined by "and").

    Raises :class:`~dlforge.errors.DlforgeError` (one line) for an unknown word, a word that says
    nothing here ("lower" without "left"), a property given twice or missing for an item, more items
    than the data has, or two items at the same place or with overlapping boxes.
    """
    tokens = tokenize(text)
    index = _vocab_index(spec)
    for token in tokens:
        if token not in index:
            raise _unknown(token, text, spec)
    grammar = _grammar_of(spec)
    lexicon, fillers = grammar["lexicon"], grammar["fillers"]
    phrases: list[list[str]] = [[]]
    for token in tokens:
        if token == AND:
            phrases.append([])
        else:
            phrases[-1].append(token)
    if len(phrases) > spec["items"]:
        raise DlforgeError(
            f"the caption {text!r} describes {len(phrases)} items; {spec['name']} canvases hold at most "
            f"{spec['items']}"
        )
    used = [PROPERTIES.index(p) for p in spec["properties"]]
    rows = []
    for n, phrase in enumerate(phrases, 1):
        if not phrase:
            raise DlforgeError(f"the caption {text!r} has no words for item {n}; describe each item")
        row, i = [-1] * len(PROPERTIES), 0
        while i < len(phrase):
            for length in (3, 2, 1):
                found = lexicon.get(tuple(phrase[i : i + length]))
                if found is not None:
                    column, value = found
                    if row[column] != -1:
                        raise DlforgeError(
                            f"the caption {text!r} gives item {n} two {PROPERTIES[column]}s; give one"
                        )
                    row[column] = value
                    i += length
                    break
            else:
                if phrase[i] not in fillers:
                    raise DlforgeError(
                        f"cannot read {phrase[i]!r} in the caption {text!r}; write e.g. 'a large 7 in "
                        "the top left corner'"
                    )
                i += 1
        missing = [PROPERTIES[c] for c in used if row[c] == -1]
        if missing:
            raise DlforgeError(
                f"the caption {text!r} gives no {' or '.join(missing)} for item {n}; {spec['name']} "
                f"captions give {', '.join(spec['properties'])}"
            )
        rows.append(row)
    if len(rows) == 2:
        check_layout(rows, spec, text)
    return rows


def caption_properties(texts: Sequence[str], spec: dict[str, Any]) -> torch.Tensor:
    """:func:`parse_caption` of each text as an int64 tensor (N, items, 4), -1 for absent items."""
    out = torch.full((len(texts), int(spec["items"]), len(PROPERTIES)), -1, dtype=torch.long)
    for i, text in enumerate(texts):
        rows = parse_caption(text, spec)
        out[i, : len(rows)] = torch.tensor(rows, dtype=torch.long)
    return out


def check_layout(rows: Sequence[Sequence[int]], spec: dict[str, Any], text: str = "") -> None:
    """Fail when two items stand at one place or their boxes overlap."""
    (a, b), boxes = rows[:2], item_boxes(spec)
    pa, pb = (CENTRE if r[POSITION] < 0 else r[POSITION] for r in (a, b))
    sa, sb = (LARGE if r[SIZE] < 0 else r[SIZE] for r in (a, b))
    where = f" in the caption {text!r}" if text else ""
    if pa == pb:
        raise DlforgeError(f"two items at the {POSITIONS[pa]}{where}; put them at different places")
    if _overlap(boxes[pa][sa], boxes[pb][sb]):
        raise DlforgeError(
            f"a {SIZES[sa]} item at the {POSITIONS[pa]} and a {SIZES[sb]} one at the {POSITIONS[pb]} "
            f"overlap{where}; make one small or move it"
        )


# --- the canvas ----------------------------------------------------------------------------------
def canvas_geometry(canvas: int) -> tuple[list[int], int]:
    """The sides of the small and large items and the margin on a ``canvas``-pixel canvas."""
    return [round(canvas / 4), round(canvas * 7 / 16)], max(1, round(canvas / 64))


def item_boxes(spec: dict[str, Any]) -> list[list[tuple[int, int, int]]]:
    """``[position][size] -> (top, left, side)`` of an item's box on the canvas."""
    canvas, margin = int(spec["height"]), int(spec["margin"])
    boxes = []
    for p in range(len(POSITIONS)):
        row, col = divmod(p, 3)
        per_size = []
        for side in spec["size_px"]:
            starts = (margin, (canvas - side) // 2, canvas - side - margin)
            per_size.append((starts[row], starts[col], int(side)))
        boxes.append(per_size)
    return boxes


def _overlap(a: tuple[int, int, int], b: tuple[int, int, int]) -> bool:
    (ya, xa, sa), (yb, xb, sb) = a, b
    return ya < yb + sb and yb < ya + sa and xa < xb + sb and xb < xa + sa


def valid_pairs(spec: dict[str, Any]) -> torch.Tensor:
    """(18, 18) bool: may item states ``position * 2 + size`` stand together (apart, no overlap)."""
    boxes = item_boxes(spec)
    states = [(p, s) for p in range(len(POSITIONS)) for s in range(len(SIZES))]
    return torch.tensor(
        [[pa != pb and not _overlap(boxes[pa][sa], boxes[pb][sb]) for pb, sb in states] for pa, sa in states]
    )


def render(item_images: torch.Tensor, properties: torch.Tensor, spec: dict[str, Any]) -> torch.Tensor:
    """Canvases (N, C, H, W) of item images (N, items, 28, 28) at the places, sizes and colours of
    ``properties`` (N, items, 4); -1: the default (centre, large, white); a row of -1s: no item.

    uint8 items give uint8 canvases, float items in [0, 1] float canvases. The items of each size are
    resized at once (bilinear, antialiased), tinted, and pasted by slicing, those of one place
    together; where boxes overlap (never in captions that :func:`parse_caption` accepts) the
    brighter pixel wins.
    """
    n, k = properties.shape[:2]
    device, as_bytes = item_images.device, item_images.dtype == torch.uint8
    rows = properties.reshape(n * k, len(PROPERTIES)).long().to(device)
    present = (rows != -1).any(dim=1)
    position = torch.where(rows[:, POSITION] < 0, CENTRE, rows[:, POSITION])
    size = torch.where(rows[:, SIZE] < 0, LARGE, rows[:, SIZE])
    channels, side_of_canvas = int(spec["channels"]), int(spec["height"])
    canvas = torch.zeros(n, channels, side_of_canvas, side_of_canvas, device=device, dtype=item_images.dtype)
    flat = item_images.reshape(n * k, 1, ITEM, ITEM)
    table = torch.tensor(spec["colour_rgb"] or [[1.0, 1.0, 1.0]], device=device)
    white = spec["colours"].index("white") if "white" in spec["colours"] else 0
    owner = torch.arange(n * k, device=device) // k
    boxes = item_boxes(spec)
    for s, side in enumerate(spec["size_px"]):
        chosen = (present & (size == s)).nonzero().squeeze(1)
        if not len(chosen):
            continue
        scaled = flat[chosen]
        if side != ITEM or channels == 3:
            scaled = scaled.float() / 255 if as_bytes else scaled.float()
            if side != ITEM:
                scaled = F.interpolate(scaled, size=(side, side), mode="bilinear", antialias=True).clamp_(
                    0, 1
                )
            if channels == 3:
                colour = rows[chosen, COLOUR]
                scaled = scaled * table[torch.where(colour < 0, white, colour)][:, :, None, None]
            if as_bytes:
                scaled = scaled.mul_(255).round_().to(torch.uint8)
        at, canvases = position[chosen], owner[chosen]
        for p in at.unique().tolist():
            here = (at == p).nonzero().squeeze(1)
            top, left, _ = boxes[p][s]
            window = (canvases[here], slice(None), slice(top, top + side), slice(left, left + side))
            canvas[window] = torch.maximum(canvas[window], scaled[here].to(canvas.dtype))
    return canvas


# --- drawing the properties and captions -------------------------------------------------------
def held_out_combinations(spec: dict[str, Any]) -> list[list[int]]:
    """The ``[class, position]`` pairs of the test set ``combinations`` (none in training or validation):
    class k at position (k + 4) mod 9; empty when the captions do not give both class and position."""
    if not {"class", "position"} <= set(spec["properties"]):
        return []
    return [[k, (k + HELD_OUT_SHIFT) % len(POSITIONS)] for k in range(int(spec["num_classes"]))]


def sample_properties(
    n: int, spec: dict[str, Any], generator: torch.Generator, combinations: bool = False
) -> torch.Tensor:
    """Properties of ``n`` canvases (n, items, 4), every column filled (the class always; unused
    properties at their default), drawn uniformly under the rules: training combinations only, or
    (``combinations``) only held-out ones; two items at places whose boxes do not overlap."""
    items, used = int(spec["items"]), set(spec["properties"])
    classes, places = int(spec["num_classes"]), len(POSITIONS)
    held = held_out_combinations(spec)
    at_held = torch.zeros(places, classes, dtype=torch.bool)
    for k, p in held:
        at_held[p, k] = True
    allowed = at_held if combinations and held else ~at_held  # [position, class]
    out = torch.empty(n, items, len(PROPERTIES), dtype=torch.long)

    def pick(rows: torch.Tensor) -> torch.Tensor:
        return torch.multinomial(rows.float(), 1, generator=generator).squeeze(1)

    if combinations and held:
        out[:, 0, CLASS] = torch.randint(classes, (n,), generator=generator)
        out[:, 0, POSITION] = torch.tensor([p for _, p in held])[out[:, 0, CLASS]]
    else:
        if "position" in used:
            out[:, 0, POSITION] = torch.randint(places, (n,), generator=generator)
        else:
            out[:, 0, POSITION] = CENTRE
        out[:, 0, CLASS] = pick(allowed[out[:, 0, POSITION]])
    sizes = torch.randint(len(SIZES), (n, items), generator=generator)
    out[:, 0, SIZE] = sizes[:, 0] if "size" in used else LARGE
    if items == 2:
        partners = valid_pairs(spec)[out[:, 0, POSITION] * 2 + out[:, 0, SIZE]]
        state = pick(partners)
        out[:, 1, POSITION], out[:, 1, SIZE] = state // 2, state % 2
        out[:, 1, CLASS] = pick(allowed[out[:, 1, POSITION]])
    if "colour" in used:
        out[..., COLOUR] = torch.randint(len(spec["colours"]), (n, items), generator=generator)
    else:
        out[..., COLOUR] = spec["colours"].index("white") if "white" in spec["colours"] else -1
    return out


def recorded(properties: torch.Tensor, spec: dict[str, Any]) -> torch.Tensor:
    """The properties captions record: the unused columns set to -1."""
    out = properties.clone()
    for column, name in enumerate(PROPERTIES):
        if name not in spec["properties"]:
            out[..., column] = -1
    return out


def sample_templates(n: int, items: int, generator: torch.Generator, held_out: bool = False) -> torch.Tensor:
    """Template indices (n, items): training templates, or (``held_out``) the held-out ones."""
    pool = torch.tensor(HELD_OUT_TEMPLATES if held_out else SEEN_TEMPLATES)
    return pool[torch.randint(len(pool), (n, items), generator=generator)]


def _phrase(template: int, row: list[int], u: list[float], source: str, used: set[str]) -> list[str]:
    """An item's words by a template: ``u`` picks the synonyms (numbers in [0, 1))."""

    def choose(options: Sequence[tuple[str, ...]], x: float) -> list[str]:
        return list(options[min(int(x * len(options)), len(options) - 1)])

    out: list[str] = []
    for part in _kept_parts(TEMPLATES[template], used):
        for element in part:
            if element == NOUN:
                out += choose(NOUNS[source][row[CLASS]] if row[CLASS] >= 0 else GENERIC_NOUNS[source], u[0])
            elif element == SIZE_SLOT:
                out += choose(SIZE_WORDS[row[SIZE]], u[1])
            elif element == COLOUR_SLOT:
                out.append(list(COLOURS)[row[COLOUR]])
            elif element == WHERE:
                p = row[POSITION]
                corner = ["corner"] if p in CORNERS and u[5] < 0.5 else []
                out += [
                    *choose([(w,) for w in PREPOSITIONS[p]], u[3]),
                    "the",
                    *choose(POSITION_WORDS[p], u[4]),
                ]
                out += corner
            else:
                out.append(element)
    if ARTICLE in out:
        i = out.index(ARTICLE)
        out[i] = "an" if out[i + 1][0] in "aeiou" or out[i + 1] == "8" else "a"
    return out


def caption_tokens(
    properties: torch.Tensor, templates: torch.Tensor, spec: dict[str, Any], generator: torch.Generator
) -> list[list[str]]:
    """The caption of each canvas as tokens: each present item's phrase by its template, joined by "and"."""
    n, k = properties.shape[:2]
    choices = torch.rand(n, k, CHOICES, generator=generator).tolist()
    used, source = set(spec["properties"]), spec["source"]
    out = []
    for rows, temps, us in zip(properties.tolist(), templates.tolist(), choices, strict=True):
        words: list[str] = []
        for row, template, u in zip(rows, temps, us, strict=True):
            if all(v == -1 for v in row):
                continue
            words += ([AND] if words else []) + _phrase(template, row, u, source, used)
        out.append(words)
    return out


def describe(
    properties: torch.Tensor,
    spec: dict[str, Any],
    templates: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> list[str]:
    """Captions of property rows (N, items, 4) as the data writes them (-1: not mentioned); templates
    (N, items) default to random training templates."""
    generator = generator or torch.Generator().manual_seed(0)
    if templates is None:
        templates = sample_templates(len(properties), properties.shape[1], generator)
    return [join_tokens(t) for t in caption_tokens(properties.long(), templates, spec, generator)]


# --- the judge -----------------------------------------------------------------------------------
def measure_items(
    images: torch.Tensor, properties: torch.Tensor, spec: dict[str, Any]
) -> dict[str, torch.Tensor]:
    """What each item of ``images`` (N, C, H, W; float in [0, 1] or uint8) shows, for the items asked
    for in ``properties`` (N, items, 4).

    The ink is the pixels whose brightest channel is above :data:`INK`; with two items a pixel belongs
    to the item whose asked box (position and size, defaults for -1) is nearest. Per item (N, items):
    ``ink`` (bool: any ink), ``position`` (the centre's third of the canvas across and down: the
    centre of mass for MNIST, the middle of the extent for Fashion, as the sources centred their
    items), ``size`` (the extent, larger of height and width between the ink's 1% and 99% quantiles,
    above :func:`size_threshold` or not), ``colour`` (RGB only: the
    named colour nearest the ink's mean RGB divided by its mean brightness) and ``crops``
    (N, items, 1, 28, 28): the brightness in a square of the measured size's side around the centre,
    resized to 28 x 28 (bilinear), what a classifier of the source's items reads.
    """
    x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    n, k = properties.shape[:2]
    height, width = x.shape[-2:]
    device = x.device
    rows = properties.long().to(device)
    present = (rows != -1).any(dim=-1)
    brightness = x.amax(dim=1)  # (N, H, W): the item's grey value under any tint
    ink = brightness > spec.get("ink", INK[spec["source"]])
    if k == 1:
        region = present[:, :, None, None].expand(n, k, height, width)
    else:
        boxes = torch.tensor(item_boxes(spec), device=device, dtype=torch.float32)  # (9, 2, 3)
        position = torch.where(rows[..., POSITION] < 0, CENTRE, rows[..., POSITION])
        size = torch.where(rows[..., SIZE] < 0, LARGE, rows[..., SIZE])
        top, left, side = boxes[position, size].unbind(-1)  # (N, k)
        ys = torch.arange(height, device=device, dtype=torch.float32)[None, None, :]
        xs = torch.arange(width, device=device, dtype=torch.float32)[None, None, :]
        dy = (top[..., None] - ys).clamp_min(0) + (ys - (top + side - 1)[..., None]).clamp_min(0)
        dx = (left[..., None] - xs).clamp_min(0) + (xs - (left + side - 1)[..., None]).clamp_min(0)
        distance = dy[..., :, None] ** 2 + dx[..., None, :] ** 2
        distance = distance.masked_fill(~present[..., None, None], math.inf)
        region = F.one_hot(distance.argmin(dim=1), k).permute(0, 3, 1, 2).bool() & present[:, :, None, None]
    mask = region & ink[:, None]  # (N, k, H, W)
    weight = brightness[:, None] * mask
    mass = weight.sum(dim=(2, 3))
    has_ink = mass > 0
    safe = mass.clamp_min(1e-8)[..., None]
    profile_y, profile_x = weight.sum(dim=3), weight.sum(dim=2)
    mass_y = (profile_y * (torch.arange(height, device=device) + 0.5)).sum(-1) / safe[..., 0]
    mass_x = (profile_x * (torch.arange(width, device=device) + 0.5)).sum(-1) / safe[..., 0]

    def extent(profile: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cdf = profile.cumsum(-1) / safe
        low = (cdf < EXTENT_TRIM).sum(-1)
        high = (cdf < 1 - EXTENT_TRIM).sum(-1).clamp_max(profile.shape[-1] - 1)
        return (high - low + 1).float(), (low + high + 1).float() / 2

    extent_y, middle_y = extent(profile_y)
    extent_x, middle_x = extent(profile_x)
    if spec.get("centring", CENTRING[spec["source"]]) == "mass":
        centre_y, centre_x = mass_y, mass_x
    else:
        centre_y, centre_x = middle_y, middle_x
    row = (centre_y >= height / 3).long() + (centre_y >= 2 * height / 3).long()
    col = (centre_x >= width / 3).long() + (centre_x >= 2 * width / 3).long()
    measured_extent = torch.maximum(extent_y, extent_x)
    size = (measured_extent > size_threshold(spec)).long()
    side = torch.tensor(spec["size_px"], device=device, dtype=torch.float32)[size]
    rois = torch.stack(
        [
            torch.arange(n, device=device, dtype=torch.float32)[:, None].expand(n, k),
            centre_x - side / 2,
            centre_y - side / 2,
            centre_x + side / 2,
            centre_y + side / 2,
        ],
        dim=-1,
    ).reshape(n * k, 5)
    crops = roi_align(brightness[:, None], rois, output_size=ITEM, aligned=True).view(n, k, 1, ITEM, ITEM)
    out = {
        "ink": has_ink,
        "position": row * 3 + col,
        "size": size,
        "extent": measured_extent,
        "centre": torch.stack([centre_y, centre_x], dim=-1),
        "crops": crops.clamp(0, 1),
    }
    if x.shape[1] == 3 and spec["colours"]:
        rgb = torch.einsum("nkhw,nchw->nkc", mask.float(), x)
        tint = rgb / (mask.float() * brightness[:, None]).sum(dim=(2, 3)).clamp_min(1e-8)[..., None]
        table = torch.tensor(spec["colour_rgb"], device=device)
        out["colour"] = torch.cdist(tint, table[None].expand(n, -1, -1)).argmin(dim=-1)
    return out


def size_threshold(spec: dict[str, Any]) -> float:
    """The ink extent (pixels) above which an item is large: a third of the way (on a log scale) from a
    small item's expected extent to a large one's (``fill`` of the side; measured on real canvases:
    MNIST small <= 12 px, large >= 15, threshold 13.8; Fashion small <= 16, large >= 22, threshold 19.3)."""
    small, large = spec["size_px"]
    return float(spec.get("fill", FILL[spec["source"]]) * small ** (2 / 3) * large ** (1 / 3))


def judge(
    images: torch.Tensor,
    properties: torch.Tensor,
    spec: dict[str, Any],
    classifier: torch.nn.Module | None = None,
) -> dict[str, torch.Tensor]:
    """Does each item of ``images`` show what ``properties`` asked for? Booleans (N, items) per
    property the data uses: ``class`` (only with a ``classifier``: logits for (N, 1, 28, 28) grey
    images in [0, 1], e.g. a dlforge image classifier of the source set), ``position``, ``size``,
    ``colour``. An absent item, or one with no ink, is judged wrong on every property
    (see :func:`measure_items`)."""
    measured = measure_items(images, properties, spec)
    rows = properties.long().to(measured["position"].device)
    judged = measured["ink"] & (rows != -1).any(dim=-1)
    out: dict[str, torch.Tensor] = {}
    if "class" in spec["properties"] and classifier is not None:
        n, k = rows.shape[:2]
        was_training = classifier.training
        classifier.eval()
        try:
            with torch.no_grad():
                logits = classifier(measured["crops"].reshape(n * k, 1, ITEM, ITEM))
        finally:
            classifier.train(was_training)
        out["class"] = judged & (logits.argmax(dim=-1).view(n, k) == rows[..., CLASS])
    for name, column in (("position", POSITION), ("size", SIZE), ("colour", COLOUR)):
        if name in spec["properties"]:
            out[name] = judged & (measured[name] == rows[..., column])
    return out


# --- the data module -----------------------------------------------------------------------------
class CaptionedCanvases(TensorBatches):
    """A split: per canvas its items' indices into ``items`` (N, k), properties (N, k, 4) and caption
    token ids (N, max_len), stored small; :meth:`__getitems__` renders a batch and serves
    ``(images uint8 (B, C, H, W), tokens int64 (B, max_len), properties int64 (B, k, 4))``."""

    def __init__(
        self,
        items: torch.Tensor,
        item_index: torch.Tensor,
        properties: torch.Tensor,
        tokens: torch.Tensor,
        spec: dict[str, Any],
    ) -> None:
        super().__init__(item_index, properties, tokens)
        self.items = items
        self.spec = spec

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        return tuple(t[0] for t in self.__getitems__([index]))

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, ...]:
        idx = torch.as_tensor(indices, dtype=torch.long, device=self.items.device)
        item_index, properties, tokens = (t[idx] for t in self.tensors)
        properties = properties.long()
        images = render(self.items[item_index.long().clamp_min(0)], properties, self.spec)
        return images, tokens.long(), properties

    def to(self, device: torch.device | str) -> CaptionedCanvases:
        return CaptionedCanvases(self.items.to(device), *(t.to(device) for t in self.tensors), spec=self.spec)


class CaptionedDataModule(TensorDataModule):
    """Captioned canvases of MNIST digits (``source="mnist"``) or Fashion-MNIST items
    (``"fashion_mnist"``, :class:`CaptionedFashionDataModule`); the module docstring has the canvas,
    the grammar and the held-out rule.

    Batches are ``(images, tokens, properties)``: images float in [0, 1] (N, C, canvas, canvas) after
    the transfer to the device (uint8 before, in the loader), caption token ids int64 (N, max_len)
    padded with PAD=0, and the properties int64 (N, items, 4). :meth:`test_dataloader` returns two
    loaders, :data:`TEST_SETS`: held-out phrasings, held-out combinations.

    Args:
        data_dir: data root (``paths.data_dir``) holding the source's files.
        source: ``mnist`` or ``fashion_mnist``.
        canvas: the canvas side in pixels (at least 32).
        items: items per canvas, 1 or 2 (2 needs ``position`` and ``size`` among the properties).
        properties: what captions mention, of ``class``, ``position``, ``size``, ``colour`` (Fashion
            only); default all that the source has.
        train_size: training canvases (a fixed seeded draw).
        val_size: validation canvases (training phrasings and combinations, unseen item images).
        test_size: canvases of each test set.
        seed: seed of the draws (the same seed gives the same canvases and captions).
        download: fetch the source's files when missing.
        loader: ``batch_size``, ``eval_batch_size``, ``num_workers``, ``pin_memory``, ``on_device``
            (:class:`~dlforge.data.datamodule.LoaderOptions`).
    """

    name = "captioned_mnist"
    default_source = "mnist"
    loader_defaults: ClassVar[dict[str, Any]] = {"batch_size": 64, "eval_batch_size": 500}
    #: seed offsets of the splits' draws
    SPLIT_SEEDS: ClassVar[dict[str, int]] = {
        "train": 0,
        "val": 1,
        "test_phrasings": 2,
        "test_combinations": 3,
    }

    def __init__(
        self,
        data_dir: str = "data",
        source: str | None = None,
        canvas: int = 64,
        items: int = 1,
        properties: Sequence[str] | None = None,
        train_size: int = 20000,
        val_size: int = 2000,
        test_size: int = 2000,
        seed: int = 0,
        download: bool = True,
        **loader: Any,
    ) -> None:
        super().__init__(**loader)
        self.data_dir = Path(data_dir).expanduser()
        self.source = source or self.default_source
        if self.source not in SOURCES:
            raise DlforgeError(f"data.source={self.source!r}: choose one of {', '.join(SOURCES)}")
        self.name = DATA_NAMES[self.source]
        self.canvas = int(canvas)
        self.items = int(items)
        self.properties = self._check_properties(properties)
        for option, value in (("train_size", train_size), ("val_size", val_size), ("test_size", test_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise DlforgeError(f"data.{option}={value}: use a whole number of canvases, at least 1")
        self.train_size, self.val_size, self.test_size = train_size, val_size, test_size
        self.seed = seed
        self.download = download
        self.vocab: list[str] | None = None  # a checkpoint's vocabulary (adopt_spec); None: the grammar's
        self.templates: dict[str, torch.Tensor] = {}  # split -> template of each item (N, items)
        self._check_options()

    def _check_properties(self, properties: Sequence[str] | None) -> list[str]:
        allowed = [p for p in PROPERTIES if p != "colour" or self.source != "mnist"]
        if properties is None:
            return allowed
        given = [str(p) for p in properties]
        wrong = [p for p in given if p not in allowed]
        if wrong or not given or len(set(given)) != len(given):
            raise DlforgeError(
                f"data.properties={given}: give some of {', '.join(allowed)} once each"
                + (" (MNIST canvases are grey: no colour)" if "colour" in wrong else "")
            )
        return [p for p in PROPERTIES if p in given]

    def _check_options(self) -> None:
        if not isinstance(self.canvas, int) or self.canvas < 32:
            raise DlforgeError(f"data.canvas={self.canvas}: use at least 32 pixels (64: the default)")
        if self.items not in (1, 2):
            raise DlforgeError(f"data.items={self.items}: canvases hold 1 or 2 items")
        if self.items == 2 and not {"position", "size"} <= set(self.properties):
            raise DlforgeError(
                "data.items=2 needs position and size among data.properties (to lay out two items)"
            )
        if self.items == 2 and not valid_pairs(self.spec).any(dim=1).all():
            raise DlforgeError(f"data.canvas={self.canvas} leaves an item no room for a second one")

    # --- what a model needs --------------------------------------------------------------------
    @property
    def spec(self) -> dict[str, Any]:
        """Plain data: shapes, vocabulary, the property names and the canvas geometry (no setup needed)."""
        grammar = _grammar(self.source, tuple(self.properties), self.items)
        sizes_px, margin = canvas_geometry(self.canvas)
        colours = list(COLOURS) if self.source != "mnist" else []
        spec = {
            "name": self.name,
            "source": self.source,
            "channels": 3 if colours else 1,
            "height": self.canvas,
            "width": self.canvas,
            "items": self.items,
            "vocab": list(self.vocab) if self.vocab is not None else [*SPECIALS, *grammar["words"]],
            "max_len": grammar["max_len"],
            "class_names": list(CLASS_NAMES[self.source]),
            "positions": list(POSITIONS),
            "sizes": list(SIZES),
            "colours": colours,
            "properties": list(self.properties),
            "num_classes": len(CLASS_NAMES[self.source]),
            # the canvas geometry and the judge's constants, so render/judge need only the spec
            "size_px": sizes_px,
            "margin": margin,
            "colour_rgb": [list(COLOURS[c]) for c in colours],
            "fill": FILL[self.source],
            "ink": INK[self.source],
            "centring": CENTRING[self.source],
            "held_out_templates": list(HELD_OUT_TEMPLATES),
        }
        spec["held_out_combinations"] = held_out_combinations(spec)
        return spec

    def adopt_spec(self, spec: dict[str, Any]) -> None:
        """Make canvases and token ids as a checkpoint's data was (canvas, items, properties, vocabulary)."""
        if not spec or spec.get("source") not in (None, self.source):
            return  # a different set: check_same_data says so
        self.canvas = int(spec.get("height", self.canvas))
        self.items = int(spec.get("items", self.items))
        self.properties = self._check_properties(spec.get("properties"))
        self.vocab = list(spec["vocab"]) if spec.get("vocab") else None
        self._check_options()
        self.splits, self.templates = {}, {}

    # --- loading -------------------------------------------------------------------------------
    def _source(self) -> Any:
        return SOURCES[self.source](data_dir=str(self.data_dir), download=self.download, seed=self.seed)

    def prepare_data(self) -> None:
        self._source().prepare_data()

    def setup(self, stage: str | None = None) -> None:
        """Draw the test sets, and for fitting (any stage but test/predict) the training and validation
        sets (once)."""
        source = None
        if "test_phrasings" not in self.splits:
            source = self._source()
            images, labels = source.load_split(train=False)
            for name in ("test_phrasings", "test_combinations"):
                self.splits[name] = self._draw(name, images[:, 0], labels, self.test_size)
        if stage in ("test", "predict") or "train" in self.splits:
            return
        images, labels = (source or self._source()).load_split(train=True)
        val_pool = self._val_pool(labels)
        train_pool = torch.ones(len(labels), dtype=torch.bool)
        train_pool[val_pool] = False
        self.splits["train"] = self._draw("train", images[train_pool, 0], labels[train_pool], self.train_size)
        self.splits["val"] = self._draw("val", images[val_pool, 0], labels[val_pool], self.val_size)
        log.info(
            "%s: %d train / %d val / %d + %d test canvases (%s) of %d item(s), %d x %d; vocabulary %d, "
            "max_len %d",
            self.name,
            self.train_size,
            self.val_size,
            self.test_size,
            self.test_size,
            " + ".join(TEST_SETS),
            self.items,
            self.canvas,
            self.canvas,
            len(self.spec["vocab"]),
            self.spec["max_len"],
        )

    def _val_pool(self, labels: torch.Tensor) -> torch.Tensor:
        """Indices of the training split's items kept for validation: a seeded twelfth of each class."""
        generator = torch.Generator().manual_seed(self.seed)
        chosen = []
        for k in range(len(CLASS_NAMES[self.source])):
            members = (labels == k).nonzero().squeeze(1)
            members = members[torch.randperm(len(members), generator=generator)]
            chosen.append(members[: max(1, len(members) // 12) if len(members) > 1 else 0])
        return torch.cat(chosen)

    def _draw(self, split: str, images: torch.Tensor, labels: torch.Tensor, n: int) -> CaptionedCanvases:
        """``n`` seeded canvases of ``split``: properties, templates, item images, caption token ids."""
        spec = self.spec
        generator = torch.Generator().manual_seed(self.seed * 16 + self.SPLIT_SEEDS[split])
        combinations = split == "test_combinations"
        if combinations and not spec["held_out_combinations"]:
            log.warning("%s: no held-out combinations without class and position in properties", self.name)
        full = sample_properties(n, spec, generator, combinations=combinations)
        templates = sample_templates(n, self.items, generator, held_out=split == "test_phrasings")
        item_index = self._pick_items(labels, full[..., CLASS], generator, split)
        properties = recorded(full, spec)
        index = _vocab_index(spec)
        rows = []
        for words in caption_tokens(properties, templates, spec, generator):
            missing = [w for w in words if w not in index]
            if missing:
                raise DlforgeError(
                    f"the vocabulary has no {missing[0]!r}, which {self.name} captions now use; "
                    "retrain the model"
                )
            rows.append([index[w] for w in words] + [PAD] * (spec["max_len"] - len(words)))
        tokens = torch.tensor(rows, dtype=torch.uint8 if len(spec["vocab"]) <= 256 else torch.int16)
        self.templates[split] = templates
        return CaptionedCanvases(
            images.contiguous(), item_index.int(), properties.to(torch.int8), tokens, spec=spec
        )

    def _pick_items(
        self, labels: torch.Tensor, classes: torch.Tensor, generator: torch.Generator, split: str
    ) -> torch.Tensor:
        """An item image of each asked class, uniformly among the pool's images of that class."""
        order = torch.argsort(labels, stable=True)
        counts = torch.bincount(labels, minlength=len(CLASS_NAMES[self.source]))
        if (counts == 0).any():
            empty = [CLASS_NAMES[self.source][k] for k in (counts == 0).nonzero().squeeze(1).tolist()]
            raise DlforgeError(
                f"{self.name}: the {split} items hold no image of class {', '.join(empty)}; the source's "
                f"files under {self.data_dir} are too small"
            )
        starts = counts.cumsum(0) - counts
        offset = (torch.rand(classes.shape, generator=generator) * counts[classes]).long()
        return order[starts[classes] + offset.clamp_max(counts[classes] - 1)]

    # --- serving -------------------------------------------------------------------------------
    def test_dataloader(self) -> list[DataLoader]:  # type: ignore[override]
        """Two loaders, :data:`TEST_SETS`: 0 held-out phrasings, 1 held-out combinations."""
        return [self.loader(f"test_{name}", self._device()) for name in TEST_SETS]

    def move_to(self, device: torch.device) -> None:
        for name, split in self.splits.items():
            if split.items.device != device:
                self.splits[name] = split.to(device)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 canvases -> float in [0, 1]."""
        return images.float().div_(255) if images.dtype == torch.uint8 else images

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        images, *rest = batch
        return (self.preprocess(images), *rest)


class CaptionedFashionDataModule(CaptionedDataModule):
    """Captioned Fashion-MNIST canvases: RGB, items tinted with named colours (``source=fashion_mnist``)."""

    name = "captioned_fashion"
    default_source = "fashion_mnist"
