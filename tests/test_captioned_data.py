"""Captioned digits and clothes (``dlforge.data.captioned``): the grammar, the held-out splits, the canvas
and the judge, on the tiny MNIST/Fashion-MNIST files of the ``data_dir`` fixture and synthetic items."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from dlforge.data import CaptionedDataModule, CaptionedFashionDataModule
from dlforge.data.captioned import (
    HELD_OUT_TEMPLATES,
    ITEM,
    POSITION,
    SEEN_TEMPLATES,
    TEMPLATES,
    TEST_SETS,
    caption_properties,
    caption_text,
    describe,
    encode_caption,
    held_out_combinations,
    item_boxes,
    judge,
    measure_items,
    parse_caption,
    recorded,
    render,
    sample_properties,
    sample_templates,
    template_pattern,
    tokenize,
    valid_pairs,
)
from dlforge.errors import DlforgeError

SMALL_SIZES = {"train_size": 300, "val_size": 60, "test_size": 60}


def module(data_dir: Path, fashion: bool = False, **options: Any) -> CaptionedDataModule:
    cls = CaptionedFashionDataModule if fashion else CaptionedDataModule
    return cls(data_dir=str(data_dir), download=False, **{**SMALL_SIZES, **options})


def batch_of(dm: CaptionedDataModule, split: str, n: int | None = None) -> tuple[torch.Tensor, ...]:
    data = dm.splits[split]
    return data.__getitems__(list(range(n or len(data))))


def synthetic_items(fashion: bool) -> torch.Tensor:
    """One item per class (10, 28, 28) uint8, centred as the source centres its items: an upright
    bar 20 px tall (MNIST's digits fit 20 x 20) or 28 px (Fashion's fill the box), 2 + 2k px wide
    (MNIST) or 10 + 2k (Fashion), bright edges around a dim body (Fashion items have dark parts)."""
    items = torch.zeros(10, ITEM, ITEM, dtype=torch.uint8)
    height = ITEM if fashion else 20
    for k in range(10):
        width = (10 if fashion else 2) + 2 * k
        top, left = (ITEM - height) // 2, (ITEM - width) // 2
        items[k, top : top + height, left : left + width] = 255
        if fashion and width > 4:
            items[k, top + 2 : top + height - 2, left + 2 : left + width - 2] = 60
    return items


# --- the grammar -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fashion", "items", "properties"),
    [
        (False, 1, None),
        (True, 2, None),
        (False, 2, ["class", "position", "size"]),
        (True, 1, ["class", "colour"]),
    ],
)
def test_any_caption_of_the_grammar_parses_back_to_its_properties(
    fashion: bool, items: int, properties: list[str] | None
) -> None:
    """A seeded sample of 500 captions over every template (hypothesis is not installed here)."""
    spec = module(Path("unused"), fashion=fashion, items=items, properties=properties).spec
    generator = torch.Generator().manual_seed(1)
    for held_out in (False, True):
        truth = recorded(sample_properties(250, spec, generator, combinations=held_out), spec)
        templates = sample_templates(250, items, generator, held_out=held_out)
        for caption, rows in zip(describe(truth, spec, templates, generator), truth.tolist(), strict=True):
            assert parse_caption(caption, spec) == rows, caption
            ids = encode_caption(caption, spec)
            assert ids.dtype == torch.int64 and ids.shape == (spec["max_len"],)
            assert 1 not in ids.tolist()  # UNK
            assert caption_text(ids, spec) == [caption]
            assert caption == caption.lower()


def test_the_data_sets_captions_record_their_properties(data_dir: Path) -> None:
    dm = module(data_dir, fashion=True, items=2)
    dm.setup()
    for split in ("train", "val", *(f"test_{name}" for name in TEST_SETS)):
        _, tokens, properties = batch_of(dm, split)
        captions = caption_text(tokens, dm.spec)
        assert torch.equal(caption_properties(captions, dm.spec), properties)
        assert all(1 not in row for row in tokens.tolist())


def test_captions_read_as_written_with_numbers_synonyms_and_word_orders() -> None:
    spec = module(Path("unused")).spec
    assert parse_caption("a large 7 in the top left corner", spec) == [[7, 0, 1, -1]]
    assert parse_caption("Seven, small, at the bottom.", spec) == [[7, 7, 0, -1]]
    assert parse_caption("there is a tiny number four on the left", spec) == [[4, 3, 0, -1]]
    assert tokenize("Seven, small, at the bottom.") == ["seven", ",", "small", ",", "at", "the", "bottom"]
    fashion = module(Path("unused"), fashion=True, items=2).spec
    assert parse_caption(
        "a red sneaker on the right, small and a pair of big blue trousers at the top", fashion
    ) == [
        [7, 5, 0, 0],
        [1, 1, 1, 2],
    ]
    assert parse_caption("an ankle boot, white, large, in the middle", fashion) == [[9, 4, 1, 4]]


@pytest.mark.parametrize(
    ("caption", "says"),
    [
        ("a purple 7 at the top", "'purple'"),
        ("a large 7 in the top left corner please", "'please'"),
        ("", "no words"),
        ("a small large 7 at the top", "two sizes"),
        ("a large 7", "no position"),
        ("a large 7 in the lower", "cannot read 'lower'"),
    ],
)
def test_a_caption_that_does_not_parse_is_a_one_line_error(caption: str, says: str) -> None:
    spec = module(Path("unused")).spec
    with pytest.raises(DlforgeError, match=says) as err:
        parse_caption(caption, spec)
    assert "\n" not in str(err.value)


def test_an_unknown_word_is_named_with_words_the_model_knows() -> None:
    spec = module(Path("unused")).spec
    with pytest.raises(DlforgeError, match="unknown word 'sevn'") as err:
        encode_caption("a large sevn at the top", spec)
    message = str(err.value)
    assert "\n" not in message and "seven" in message  # a close match among the examples
    with pytest.raises(DlforgeError, match="'red'"):
        encode_caption("a red 7 at the top", spec)  # MNIST captions have no colours


def test_two_items_must_stand_apart() -> None:
    spec = module(Path("unused"), items=2).spec
    with pytest.raises(DlforgeError, match="two items at the top"):
        parse_caption("a small 1 at the top and a small 2 at the top", spec)
    with pytest.raises(DlforgeError, match="overlap"):
        parse_caption("a large 1 in the centre and a large 2 in the top left corner", spec)
    with pytest.raises(DlforgeError, match="at most 2"):
        parse_caption("a small 1 at the top and a small 2 at the bottom and a small 3 on the left", spec)
    assert parse_caption("a large 1 in the centre and a small 2 at the top", spec) == [
        [1, 4, 1, -1],
        [2, 1, 0, -1],
    ]


# --- the held-out phrasings and combinations ---------------------------------------------------
@pytest.mark.parametrize("items", [1, 2])
def test_held_out_combinations_occur_only_in_their_test_set(data_dir: Path, items: int) -> None:
    dm = module(data_dir, items=items)
    dm.setup()
    held = {tuple(pair) for pair in held_out_combinations(dm.spec)}
    assert len(held) == 10 and {p for _, p in held} == set(range(9))

    def pairs(split: str) -> list[tuple[int, int]]:
        properties = batch_of(dm, split)[2]
        return [tuple(row[:2]) for row in properties.view(-1, 4).tolist()]

    train, combinations = pairs("train"), set(pairs("test_combinations"))
    assert not held & set(train + pairs("val") + pairs("test_phrasings"))
    assert combinations <= held and len(combinations) >= 8  # every item of the set is a held-out pair
    for k, p in held:  # "4" and "bottom right" each occur in training, not together
        assert any(c == k for c, _ in train) and any(q == p for _, q in train)


def test_held_out_templates_occur_only_in_their_test_set(data_dir: Path) -> None:
    dm = module(data_dir, fashion=True, items=2)
    dm.setup()
    for split in ("train", "val", "test_combinations"):
        assert set(dm.templates[split].unique().tolist()) <= set(SEEN_TEMPLATES)
    assert set(dm.templates["test_phrasings"].unique().tolist()) == set(HELD_OUT_TEMPLATES)
    spec = dm.spec
    seen = {template_pattern(t, spec["properties"]) for t in SEEN_TEMPLATES}
    assert all(template_pattern(t, spec["properties"]) not in seen for t in HELD_OUT_TEMPLATES)
    # the held-out word orders start with the place or with "the"; no training caption does
    first = {"train": set(), "test_phrasings": set()}
    words = {"train": set(), "test_phrasings": set()}
    for split in first:
        for caption in caption_text(batch_of(dm, split)[1], spec):
            tokens = tokenize(caption)
            first[split].add(tokens[0])
            words[split] |= set(tokens)
    assert first["test_phrasings"] <= {"in", "at", "on", "the"}
    assert not first["train"] & {"in", "at", "on", "the"}
    assert words["test_phrasings"] <= words["train"]  # new orders of known words
    assert len(TEMPLATES) == 8


# --- determinism, batches, the spec ------------------------------------------------------------
def test_canvases_and_captions_are_deterministic_by_seed(data_dir: Path) -> None:
    first, again, other = (module(data_dir, fashion=True, items=2, seed=s) for s in (3, 3, 4))
    for dm in (first, again, other):
        dm.setup()
    for split in ("train", "val", "test_phrasings", "test_combinations"):
        a, b, c = (batch_of(dm, split) for dm in (first, again, other))
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
        assert not torch.equal(a[0], c[0]) and not torch.equal(a[1], c[1])


@pytest.mark.parametrize(("fashion", "items"), [(False, 1), (True, 2)])
def test_batches_shapes_dtypes_and_spec(data_dir: Path, fashion: bool, items: int) -> None:
    dm = module(data_dir, fashion=fashion, items=items, batch_size=16, eval_batch_size=40)
    spec = dm.spec
    json.dumps(spec)  # plain data, for checkpoints
    assert dm.model_kwargs() == {"data": spec}
    assert spec["name"] == ("captioned_fashion" if fashion else "captioned_mnist")
    assert spec["channels"] == (3 if fashion else 1) and spec["height"] == spec["width"] == 64
    assert spec["vocab"][:2] == ["<pad>", "<unk>"] and spec["num_classes"] == 10
    assert spec["colours"] == (["red", "green", "blue", "yellow", "white"] if fashion else [])
    assert spec["positions"][0] == "top left" and spec["sizes"] == ["small", "large"]
    images, tokens, properties = next(iter(dm.train_dataloader()))
    assert images.dtype == torch.uint8 and images.shape == (16, spec["channels"], 64, 64)
    assert tokens.dtype == torch.int64 and tokens.shape == (16, spec["max_len"])
    assert properties.dtype == torch.int64 and properties.shape == (16, items, 4)
    floats, *_ = dm.on_after_batch_transfer((images, tokens, properties), 0)
    assert floats.dtype == torch.float32 and floats.min() >= 0 and floats.max() <= 1 and floats.max() > 0.5
    if not fashion:
        assert (properties[..., 3] == -1).all()  # no colour on MNIST
    loaders = dm.test_dataloader()
    assert len(loaders) == len(TEST_SETS) == 2
    for loader in loaders:
        images, tokens, properties = next(iter(loader))
        assert images.shape[0] == 40 and properties.shape == (40, items, 4)
    assert len(dm.val_dataloader().dataset) == 60


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"properties": ["class", "colour"]}, "no colour"),
        ({"items": 3}, "1 or 2"),
        ({"items": 2, "properties": ["class", "position"]}, "position and size"),
        ({"canvas": 16}, "at least 32"),
        ({"source": "cifar10"}, "mnist, fashion_mnist"),
    ],
)
def test_bad_options_are_one_line_errors(options: dict[str, Any], says: str) -> None:
    with pytest.raises(DlforgeError, match=says):
        module(Path("unused"), **options)


@pytest.mark.parametrize("name", ["captioned_mnist", "captioned_fashion"])
def test_the_data_configs_build_the_modules(make_cfg: Any, name: str) -> None:
    cfg = make_cfg(f"data={name}", "data.train_size=50", "data.val_size=20", "data.test_size=20")
    dm = instantiate(cfg.data)
    assert dm.name == name and dm.spec["name"] == name
    dm.setup()
    assert len(dm.splits["train"]) == 50


# --- the canvas and the judge ------------------------------------------------------------------
def every_layout(spec: dict[str, Any]) -> torch.Tensor:
    """Properties (N, items, 4) of every place x size (x colour), classes cycling; with two items every
    allowed pair of places and sizes."""
    colours = range(len(spec["colours"])) if spec["colours"] else [-1]
    if spec["items"] == 1:
        rows = [[[(3 * p + s + c) % 10, p, s, c]] for p in range(9) for s in range(2) for c in colours]
    else:
        allowed = valid_pairs(spec).nonzero().tolist()
        rows = [
            [
                [a % 10, a // 2, a % 2, colours[a % len(colours)]],
                [b % 10, b // 2, b % 2, colours[b % len(colours)]],
            ]
            for a, b in allowed
        ]
    return torch.tensor(rows)


@pytest.mark.parametrize(("fashion", "items"), [(False, 1), (True, 1), (False, 2), (True, 2)])
def test_the_canvas_shows_each_item_at_its_place_and_size_and_the_judge_agrees(
    fashion: bool, items: int
) -> None:
    spec = module(Path("unused"), fashion=fashion, items=items).spec
    properties = every_layout(spec)
    items_ = synthetic_items(fashion)[properties[..., 0]]
    canvases = render(items_, properties, spec)
    assert canvases.dtype == torch.uint8 and canvases.shape == (len(properties), spec["channels"], 64, 64)
    boxes = item_boxes(spec)
    for n, rows in enumerate(properties.tolist()):
        inside = torch.zeros(64, 64, dtype=torch.bool)
        for _, p, s, _ in rows:
            top, left, side = boxes[p][s]
            assert min(top, left) >= 0 and max(top, left) + side <= 64  # no clipping
            inside[top : top + side, left : left + side] = True
        assert not (canvases[n].amax(0).bool() & ~inside).any()  # ink only in the items' boxes
    verdict = judge(canvases, properties, spec)  # no classifier: no class verdict
    assert set(verdict) == ({"position", "size", "colour"} if fashion else {"position", "size"})
    for name, right in verdict.items():
        assert right.shape == (len(properties), items) and right.all(), name
    floats = judge(canvases.float() / 255, properties, spec)  # float images in [0, 1] too
    assert all(right.all() for right in floats.values())


@pytest.mark.parametrize("fashion", [False, True])
def test_the_classifier_reads_the_item_resized_to_28_pixels(fashion: bool) -> None:
    spec = module(Path("unused"), fashion=fashion, items=2).spec
    properties = every_layout(spec)
    originals = synthetic_items(fashion)[properties[..., 0]]
    canvases = render(originals, properties, spec)
    crops = measure_items(canvases, properties, spec)["crops"]
    assert crops.shape == (len(properties), 2, 1, ITEM, ITEM)
    large = properties[..., 2] == 1
    expected = originals.float()[:, :, None] / 255
    assert torch.allclose(crops[large], expected[large], atol=1e-4)  # a large item is the original
    small = F.interpolate(expected[~large], size=(16, 16), mode="bilinear", antialias=True)
    resampled = F.interpolate(small, size=(ITEM, ITEM), mode="bilinear")  # down- and up-sampled
    inner = (slice(None), slice(None), slice(2, -2), slice(2, -2))  # at the edge the canvas is black
    assert (crops[~large][inner] - resampled[inner]).abs().amax() < 0.02  # (the canvas holds uint8)

    class NearestItem(torch.nn.Module):
        """A real (if simple) classifier: logits are minus the distance to each class's item."""

        def __init__(self, prototypes: torch.Tensor) -> None:
            super().__init__()
            self.register_buffer("prototypes", prototypes.float().flatten(1) / 255)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return -torch.cdist(x.flatten(1), self.prototypes)

    classifier = NearestItem(synthetic_items(fashion))
    verdict = judge(canvases, properties, spec, classifier)
    assert verdict["class"].all()
    wrong = properties.clone()
    wrong[..., 0] = (wrong[..., 0] + 1) % 10
    assert not judge(canvases, wrong, spec, classifier)["class"].any()


def test_the_judge_fails_an_item_at_the_wrong_place_size_or_colour() -> None:
    spec = module(Path("unused"), fashion=True).spec
    properties = every_layout(spec)
    canvases = render(synthetic_items(True)[properties[..., 0]], properties, spec)
    moved = properties.clone()
    moved[..., POSITION] = (moved[..., POSITION] + 1) % 9
    assert not judge(canvases, moved, spec)["position"].any()
    resized = properties.clone()
    resized[..., 2] = 1 - resized[..., 2]
    assert not judge(canvases, resized, spec)["size"].any()
    recoloured = properties.clone()
    recoloured[..., 3] = (recoloured[..., 3] + 1) % 5
    assert not judge(canvases, recoloured, spec)["colour"].any()
    blank = judge(torch.zeros_like(canvases), properties, spec)
    assert not any(right.any() for right in blank.values())


def test_two_items_on_a_data_set_canvas_do_not_overlap(data_dir: Path) -> None:
    dm = module(data_dir, fashion=True, items=2)
    dm.setup()
    data = dm.splits["train"]
    _, _, properties = batch_of(dm, "train")
    assert (properties[:, 0, 1] != properties[:, 1, 1]).all()
    boxes = item_boxes(dm.spec)
    items = data.items[data.tensors[0].long()]
    for k in range(2):
        alone = properties.clone()
        alone[:, 1 - k] = -1  # the other item absent
        ink = render(items, alone, dm.spec).amax(dim=1) > 0
        if k == 0:
            first = ink
        else:
            assert not (first & ink).any()
    for a, b in properties[:, :, 1:3].tolist():
        (ya, xa, sa), (yb, xb, sb) = boxes[a[0]][a[1]], boxes[b[0]][b[1]]
        assert ya + sa <= yb or yb + sb <= ya or xa + sa <= xb or xb + sb <= xa


def test_a_checkpoints_spec_is_adopted_and_batches_can_live_on_the_device(data_dir: Path) -> None:
    trained = module(data_dir, fashion=True, items=2, properties=["class", "position", "size"]).spec
    dm = module(data_dir, fashion=True, on_device=True, batch_size=8)
    dm.adopt_spec(trained)
    assert dm.spec == trained
    images, tokens, properties = next(iter(dm.loader("train", torch.device("cpu"))))
    assert images.shape == (8, 3, 64, 64) and properties.shape == (8, 2, 4)
    assert (properties[..., 3] == -1).all()  # colour unused: white items
    assert torch.equal(images[:, 0], images[:, 1]) and torch.equal(images[:, 1], images[:, 2])
    assert caption_properties(caption_text(tokens, trained), trained).tolist() == properties.tolist()
