"""Text to image (StackGAN): the nets' shapes, a few training steps that move the losses, the caption
grids, the judge at test time, generate with a caption, the app panel, and a TorchScript export."""

from __future__ import annotations

import base64
import csv
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict
from PIL import Image

from dlforge import CONF_DIR
from dlforge.callbacks.stackgan import item_crops
from dlforge.checkpoint import load_model
from dlforge.data.captioned import (
    TEST_SETS,
    CaptionedDataModule,
    caption_tokens,
    encode_caption,
    encode_captions,
    join_tokens,
    judge,
    recorded,
    sample_properties,
    sample_templates,
)
from dlforge.errors import DlforgeError
from dlforge.models import StackGAN
from dlforge.models.classifier import ImageClassifier
from dlforge.models.stackgan import drop_words, placement_boxes
from dlforge.nets import build_net
from dlforge.nets.stackgan import READERS, CaptionEncoder, PlacedStageIGenerator, StageIGenerator
from dlforge.quality import SampleQuality
from dlforge.training import build_run, train
from tests.conftest import FAST
from tests.test_quality import classifier_run  # noqa: F401  (module fixture: a tiny LeNet)

TINY = (
    "model=stackgan",
    "data=captioned_mnist",
    *FAST,
    "data.train_size=64",
    "data.val_size=32",
    "data.test_size=32",
    "model.net.features=8",
    "model.net.text_hidden=32",
    "model.samples.n=4",
)
CAPTION = "a large 7 in the top left corner"


def compose_run(data_dir: Path, out: Path, *overrides: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"paths.data_dir={data_dir}", *TINY, *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    return cfg


@pytest.fixture(scope="module")
def stackgan_run(tmp_path_factory, data_dir, classifier_run):  # noqa: F811
    out = tmp_path_factory.mktemp("stackgan")
    cfg = compose_run(data_dir, out, f"quality_classifier={classifier_run[0]}")
    return cfg, train(cfg), out


def test_the_stages_draw_half_and_full_canvases_and_the_critics_judge_pairs() -> None:
    nets = build_net(
        "stackgan", in_channels=3, height=64, width=64, vocab_size=30, features=8, text_hidden=16
    )
    tokens = torch.tensor([[5, 6, 7, 0, 0], [8, 9, 0, 0, 0]])
    embedding = nets.encoder(tokens)
    code, kl = nets.augmentation(embedding)
    one = nets.stage_one(torch.randn(2, nets.latent_dim), code)
    two = nets.stage_two(one, code)
    assert one.shape == (2, 3, 32, 32) and two.shape == (2, 3, 64, 64)
    assert nets.critic_one(one, embedding).shape == (2,) and nets.critic_two(two, embedding).shape == (2,)
    # conditioning augmentation: a fresh code each time while training, its mean when drawing
    assert not torch.equal(nets.augmentation(embedding)[0], code)
    nets.augmentation.eval()
    torch.testing.assert_close(nets.augmentation(embedding)[0], nets.augmentation(embedding)[0])
    assert kl.item() > 0  # an untrained Gaussian is not the prior
    # the encoder reads each caption at its last word: padding after it changes nothing
    longer = torch.cat([tokens, torch.zeros(2, 3, dtype=torch.long)], dim=1)
    torch.testing.assert_close(nets.encoder(longer), embedding)


def test_the_caption_reaches_the_critics_by_projection_and_the_generators_learn_through_it() -> None:
    torch.manual_seed(0)
    nets = build_net(
        "stackgan", in_channels=1, height=32, width=32, vocab_size=20, features=8, text_hidden=16
    )
    critic, text = nets.critic_one.eval(), torch.randn(3, 16)  # eval: spectral norms hold still
    other = text.roll(1, dims=0)  # the same images with other captions
    image = torch.randn(3, 1, 16, 16)
    # only the caption changed: the logit moves by the projection's inner product with the pooled
    # features, and by nothing else
    pooled = critic.image(image).sum(dim=(2, 3))
    expected = ((critic.embed(text) - critic.embed(other)) * pooled).sum(dim=1)
    moved = critic(image, text) - critic(image, other)
    torch.testing.assert_close(moved, expected)
    assert moved.abs().min() > 1e-3
    # the generator's gradient through the projection term alone is not zero
    code, _ = nets.augmentation(text)
    fake = nets.stage_one(torch.randn(3, nets.latent_dim), code)
    (critic.embed(text) * critic.image(fake).sum(dim=(2, 3))).sum().backward()
    grads = [p.grad for p in nets.stage_one.parameters() if p.grad is not None]
    assert grads and sum(g.abs().sum() for g in grads) > 0
    # the code reaches stage I's last up-sampling itself (its batch-norm's scale and shift), not only
    # through the input: the same features with another code come out otherwise
    last = nets.stage_one.body.blocks[-1]
    x = torch.randn(3, last.conv[1].in_channels, 16, 16)
    torch.nn.init.normal_(last.style.weight)
    assert not torch.allclose(last(x, code), last(x, code.roll(1, dims=0)))
    # conditioning augmentation's KL is averaged over the code's numbers (StackGAN's code): a mean of
    # 1 and a variance of 1 in every dimension cost 0.5 nats, whatever the code's size
    augmentation = nets.augmentation
    with torch.no_grad():
        augmentation.fc.weight.zero_()
        augmentation.fc.bias.copy_(
            torch.cat([torch.ones(augmentation.code_dim), torch.zeros(augmentation.code_dim)])
        )
    assert augmentation(text)[1].item() == pytest.approx(0.5)


def test_the_text_vector_joins_the_reader_s_property_probabilities(data_dir: Path, tmp_path: Path) -> None:
    _, model, _ = build_run(compose_run(data_dir, tmp_path))
    tokens = encode_caption(CAPTION, model.hparams.data)[None].expand(2, -1)
    embedding = model.embed(tokens)
    vector = model.condition(embedding)
    torch.testing.assert_close(vector[:, : embedding.shape[1]], embedding)
    probabilities, logits = vector[:, embedding.shape[1] :], model.reader(embedding)
    assert probabilities.shape == logits.shape and not vector.requires_grad
    # one distribution per property (class, position, size), the reader's softmax over its values
    for part, read in zip(probabilities.split(model.sizes, 1), logits.split(model.sizes, 1), strict=True):
        torch.testing.assert_close(part.sum(dim=1), torch.ones(2))
        torch.testing.assert_close(part, read.softmax(dim=1))


def test_without_the_embedding_the_drawings_see_the_reader_s_probabilities_alone(
    data_dir: Path, tmp_path: Path
) -> None:
    cfg = compose_run(data_dir, tmp_path, "model.embedding_in_condition=false", "trainer.max_epochs=1")
    _, model, _ = build_run(cfg)
    tokens = encode_caption(CAPTION, model.hparams.data)[None].expand(2, -1)
    embedding = model.embed(tokens)
    vector = model.condition(embedding)
    read = model.reader(embedding).split(model.sizes, dim=1)
    torch.testing.assert_close(vector, torch.cat([part.softmax(dim=1) for part in read], dim=1))
    assert model.generator["augmentation"].fc.in_features == sum(model.sizes)  # no embedding numbers
    summary = train(cfg)
    drawn = load_model(summary["last_checkpoint"], StackGAN).draw(tokens)
    assert drawn[1].shape == (2, 1, 64, 64)
    with pytest.raises(DlforgeError, match="read_properties=true"):
        build_run(
            compose_run(
                data_dir, tmp_path, "model.embedding_in_condition=false", "model.read_properties=false"
            )
        )


def one_hot_condition(classes: list[int], positions: list[int], sizes: list[int]) -> torch.Tensor:
    """The reader's probabilities as a sure reader gives them: 10 classes, 9 positions, 2 sizes."""
    parts = [(classes, 10), (positions, 9), (sizes, 2)]
    return torch.cat([torch.nn.functional.one_hot(torch.tensor(v), k).float() for v, k in parts], dim=1)


def test_placement_draws_what_from_the_class_and_puts_it_where_position_and_size_say() -> None:
    spec = CaptionedDataModule(data_dir="unused", properties=["class", "position", "size"]).spec
    parts, boxes = [("class", 10), ("position", 9), ("size", 2)], placement_boxes(spec, spec["properties"])
    torch.manual_seed(0)
    nets = build_net(
        "stackgan", in_channels=1, height=64, width=64, vocab_size=20, features=8, text_hidden=16,
        read_dim=21, embedding_in_text=False, placement=True, parts=parts, items=1, boxes=boxes,
    )  # fmt: skip
    stage = nets.stage_one.eval()  # conditioning augmentation's mean, batch-norm's running statistics
    assert isinstance(stage, PlacedStageIGenerator)
    z = torch.randn(3, nets.latent_dim)
    asked = one_hot_condition([4, 4, 7], [8, 8, 0], [1, 0, 1])  # "4 at the bottom right": held out
    moved = one_hot_condition([4, 4, 7], [0, 4, 2], [0, 1, 0])  # the same classes elsewhere, resized
    drawn, kl = stage.draw_items(z, asked)
    assert drawn.shape == (3, 1, 16, 16) and kl.item() > 0
    # position and size changed alone: the same drawings, warped to the new boxes
    torch.testing.assert_close(stage.draw_items(z, moved)[0], drawn, rtol=0, atol=0)
    picture, _ = stage(z, moved)
    torch.testing.assert_close(picture, stage.place(drawn, stage.where(moved)), rtol=0, atol=0)
    assert picture.shape == (3, 1, 32, 32) and not torch.allclose(picture, stage(z, asked)[0])
    # the class changed alone: the same boxes, other drawings
    other = one_hot_condition([1, 2, 3], [8, 8, 0], [1, 0, 1])
    torch.testing.assert_close(stage.where(other), stage.where(asked), rtol=0, atol=0)
    assert not torch.allclose(stage.draw_items(z, other)[0], drawn)
    # by construction, not by chance: no gradient from the class to the box, nor from the box's
    # properties to the drawing, at any condition (soft probabilities here)
    soft = torch.rand(3, 21, requires_grad=True)
    to_drawing = torch.autograd.grad(stage.draw_items(z, soft)[0].sum(), soft)[0]
    to_box = torch.autograd.grad(stage.where(soft).sum(), soft)[0]
    assert to_drawing[:, 10:].abs().max() == 0 and to_drawing[:, :10].abs().min() > 0
    assert to_box[:, :10].abs().max() == 0 and to_box[:, 10:].abs().min() > 0
    # the boxes start as the canvas builder's: a white drawing lands in a large item's box at the top
    # left (1 to 29 px of 64, 0.5 to 14.5 of 32 at stage I) and every pixel outside it stays black (-1)
    white = stage.place(torch.ones(1, 1, 16, 16), stage.where(asked[2:]))
    torch.testing.assert_close(white[..., 1:14, 1:14], torch.ones(1, 1, 13, 13))
    assert (white[..., 15:, :] == -1).all() and (white[..., :, 15:] == -1).all()
    assert (white > -1).sum() == 15 * 15  # the rows and columns 0 to 14, partly covered at the edges
    # two items: each drawn with its own noise (the noise rolled) and placed; combined by the maximum
    two = PlacedStageIGenerator(8, 4, 1, 32, 4, True, parts, 2, boxes).eval()
    # a large 3 at the top left, a small one at the bottom right; the condition property by property
    rows = one_hot_condition([3, 3], [0, 8], [1, 0])
    pair = torch.cat([part.reshape(1, -1) for part in rows.split([10, 9, 2], dim=1)], dim=1)
    z = torch.randn(1, 8)
    drawn, _ = two.draw_items(z, pair)
    black = torch.full_like(drawn[:1], -1.0)
    alone = [
        two.place(torch.cat(items), two.where(pair)) for items in ((drawn[:1], black), (black, drawn[1:]))
    ]
    torch.testing.assert_close(two(z, pair)[0], torch.maximum(*alone), rtol=0, atol=0)
    assert (alone[0][..., 16:, :] == -1).all() and (alone[1][..., :16, :] == -1).all()  # top / bottom
    assert not torch.equal(drawn[0], drawn[1])  # the same class, other noise


def test_placement_needs_the_probabilities_alone_and_old_configs_draw_as_before(
    data_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(DlforgeError, match=r"placement=true .* set model.embedding_in_condition=false"):
        build_run(compose_run(data_dir, tmp_path, "model.net.placement=true"))
    cfg = compose_run(data_dir, tmp_path, "model.embedding_in_condition=false")
    with open_dict(cfg):
        del cfg.model.net.placement  # as checkpoints saved before the option hold their net
    _, model, _ = build_run(cfg)
    assert not model.placement and isinstance(model.generator["one"], StageIGenerator)


def test_placement_trains_and_its_checkpoint_generates_and_exports(
    data_dir: Path, tmp_path: Path, run_main
) -> None:
    from dlforge.inference import load

    placed = ("model.embedding_in_condition=false", "model.net.placement=true")
    cfg = compose_run(data_dir, tmp_path, *placed, "model.net.refine=true")  # stage II's export checked too
    _, model, _ = build_run(cfg)
    before = {name: p.clone() for name, p in model.generator["one"].named_parameters()}
    summary = train(cfg)
    ckpt = summary["last_checkpoint"]
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)  # plain data
    assert saved["hyper_parameters"]["net"]["placement"] is saved["hyper_parameters"]["net"]["refine"] is True
    trained = load_model(ckpt, StackGAN)
    after = dict(trained.generator["one"].named_parameters())
    assert [
        n for n in ("boxes", "augmentation.fc.weight", "item.fc.0.weight") if torch.equal(after[n], before[n])
    ] == []
    # each epoch's mean losses move (d_loss 7.44 -> 6.92, g_one 1.34 -> 1.25 when measured)
    rows = csv.DictReader((tmp_path / "metrics.csv").open())
    epochs = [{k: float(v) for k, v in row.items() if v} for row in rows if row["train/d_loss_epoch"]]
    assert len(epochs) == 2 and all(0 < epoch["train/kl_epoch"] < 10 for epoch in epochs)
    for loss in ("d_loss", "g_one", "g_two"):
        assert epochs[1][f"train/{loss}_epoch"] != epochs[0][f"train/{loss}_epoch"], loss
    one, two = trained.draw(encode_caption(CAPTION, trained.hparams.data)[None].expand(2, -1))
    assert one.shape == (2, 1, 32, 32) and two.shape == (2, 1, 64, 64)
    result = run_main(
        "-m", "dlforge.generate", f"ckpt_path={ckpt}", f"caption={CAPTION}", "n=2", "output=x.png"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    drawn = load(ckpt).draw(CAPTION, 2, 5)
    for fmt, name in (("torchscript", "drawer.pt"), ("onnx", "drawer.onnx")):
        result = run_main(
            "-m", "dlforge.export", f"ckpt_path={ckpt}", f"format={fmt}", f"output={tmp_path / name}"
        )
        assert result.returncode == 0, result.stderr[-2000:]
        torch.testing.assert_close(load(tmp_path / name).draw(CAPTION, 2, 5), drawn, atol=1e-4, rtol=0)


def test_refine_starts_stage_two_at_stage_one_and_leaves_stage_one_s_training_alone(
    data_dir: Path, tmp_path: Path
) -> None:
    from dlforge.nets.stackgan import REFINE_LIMIT

    nets = build_net(
        "stackgan", in_channels=1, height=64, width=64, vocab_size=30, features=8, text_hidden=16, refine=True
    )
    one = torch.rand(3, 1, 32, 32) * 2 - 1
    one[:, :, :8] = -1.0  # background, as stage I draws it
    code = torch.randn(3, 64)
    up = one.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    torch.testing.assert_close(nets.stage_two(one, code), up.clamp(-REFINE_LIMIT, REFINE_LIMIT))
    # trained together, stage II's correction learns and stage I learns exactly as without it: with
    # placement, nothing of stage I's reaches stage II's loss (its picture is detached, its codes its own)
    stages = {}
    for refine in (False, True):
        cfg = compose_run(
            data_dir,
            tmp_path / str(refine),
            "model.embedding_in_condition=false",
            "model.net.placement=true",
            f"model.net.refine={refine}",
            "model.samples=null",
        )
        model = load_model(train(cfg)["last_checkpoint"], StackGAN)
        stages[refine] = {part: model.generator[part].state_dict() for part in ("one", "two")}
    for name, value in stages[False]["one"].items():
        assert torch.equal(stages[True]["one"][name], value), name
    last = stages[True]["two"]["out.0.weight"]
    assert last.abs().sum() > 0 and not torch.equal(last, stages[False]["two"]["out.0.weight"])


def test_a_few_steps_move_the_losses_and_teach_the_encoder_the_captions(
    data_dir: Path, tmp_path: Path
) -> None:
    cfg = compose_run(
        data_dir, tmp_path, "trainer.max_epochs=5", "trainer.limit_train_batches=6", "model.caption_lr=0.01"
    )
    datamodule, model, _ = build_run(cfg)
    datamodule.setup("fit")
    batch = datamodule.on_after_batch_transfer(next(iter(datamodule.val_dataloader())), 0)
    before = model.caption_loss(model.embed(batch[1]), batch[2]).item()
    stage_two = {name: p.clone() for name, p in model.generator["two"].named_parameters()}
    summary = train(cfg)
    trained = load_model(summary["last_checkpoint"], StackGAN)
    after = trained.caption_loss(trained.embed(batch[1]), batch[2]).item()
    assert after < before - 0.15, (before, after)  # 1.79 -> 1.45 when measured (30 steps, bigru_max)
    moved = [n for n, p in trained.generator["two"].named_parameters() if not torch.equal(p, stage_two[n])]
    assert moved, "stage II's generator never stepped"


def test_caption_grids_and_the_judge_at_test_time(stackgan_run, classifier_run) -> None:  # noqa: F811
    cfg, summary, out = stackgan_run
    grid = Image.open(out / "samples" / "epoch_001.png")
    assert grid.size == (3 * 66 + 2, 4 * 66 + 2)  # 4 captions: real canvas, stage I, stage II
    captions = (out / "samples" / "captions.txt").read_text().splitlines()
    assert len(captions) == 4 and all(caption.split() for caption in captions)
    metrics = summary["metrics"]
    assert "test/caption_colour_acc_phrasings" not in metrics  # MNIST captions say no colour
    # the logged accuracies are the judge's on the same drawings: redraw every test caption in order
    # with the callback's seeded noise and judge them again
    datamodule, _, _ = build_run(cfg)
    model = load_model(summary["best_checkpoint"], StackGAN)
    classifier = load_model(classifier_run[0], ImageClassifier)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, loader in zip(TEST_SETS, datamodule.test_dataloader(), strict=True):
            correct: dict[str, list[torch.Tensor]] = {}
            items = SampleQuality(classifier_run[0])  # stage II's items against the real ones
            for batch in loader:
                images, tokens, properties = datamodule.on_after_batch_transfer(batch, 0)
                one, two = model.draw(tokens, generator=generator)
                one = one.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # judged up-sampled
                for stage, drawn in (("", two), ("_stage_one", one)):
                    for prop, ok in judge(drawn, properties, model.hparams.data, classifier).items():
                        correct.setdefault(prop + stage, []).append(ok.flatten())
                real_items = item_crops(images, properties, model.hparams.data)
                assert real_items.shape == (len(images), 1, 28, 28)  # one item a canvas, at the LeNet's size
                items.update_real(real_items)
                items.update_fake(item_crops(two, properties, model.hparams.data))
            logged = metrics[f"test/item_fid_stage_two_{name}"]
            assert logged == pytest.approx(items.compute()["fid"], rel=1e-4), name
            for prop in ("class", "position", "size"):
                for stage in ("", "_stage_one"):
                    expected = torch.cat(correct[prop + stage]).float().mean().item()
                    logged = metrics[f"test/caption_{prop}_acc{stage}_{name}"]
                    assert logged == pytest.approx(expected, abs=1e-6), (name, prop, stage)
            assert metrics[f"test/fid_stage_one_{name}"] != metrics[f"test/fid_stage_two_{name}"]
            assert metrics[f"test/item_fid_stage_one_{name}"] != metrics[f"test/item_fid_stage_two_{name}"]
            assert metrics[f"test/item_fid_stage_two_{name}"] != metrics[f"test/fid_stage_two_{name}"]


def test_generate_draws_a_caption_and_names_an_unknown_word(stackgan_run, run_main, tmp_path: Path) -> None:
    from dlforge.inference import load

    _, summary, _ = stackgan_run
    ckpt = summary["last_checkpoint"]
    caption = "caption=seven, small, at the bottom"  # commas and spaces, as typed
    result = run_main("-m", "dlforge.generate", f"ckpt_path={ckpt}", caption, "n=3", "output=drawn.png")
    assert result.returncode == 0, result.stderr[-2000:]
    drawn = np.asarray(Image.open(tmp_path / "drawn.png").convert("L"), dtype=np.float32) / 255
    assert drawn.shape == (3 * 66 + 2, 2 * 66 + 2)  # one row per drawing: stage I, stage II
    _, two = load(ckpt).draw("seven, small, at the bottom", 3, seed=0)  # the same noise: seed 0
    tile = drawn[2 + 66 : 2 + 66 + 64, 2 + 66 : 2 + 66 + 64]  # row 2, stage II
    assert np.abs(tile - two[1, 0].numpy()).max() <= 1.5 / 255
    result = run_main("-m", "dlforge.generate", f"ckpt_path={ckpt}", "caption=a purple 7", "output=x.png")
    assert result.returncode == 2 and "unknown word 'purple'" in result.stderr.strip().splitlines()[-1]


def test_the_app_panel_draws_a_typed_caption(stackgan_run) -> None:
    from fastapi.testclient import TestClient

    from dlforge.app import create_app, load_panels

    _, summary, _ = stackgan_run
    client = TestClient(create_app(load_panels({"caption": summary["last_checkpoint"]})))
    assert '<section class="panel" id="caption"' in client.get("/").text
    answer = client.post("/api/caption", json={"caption": CAPTION, "seed": 3}).json()
    pictures = [
        Image.open(io.BytesIO(base64.b64decode(answer[k].split(",")[1]))) for k in ("stage_one", "stage_two")
    ]
    assert pictures[0].size == pictures[1].size == (192, 192)  # 32 px x6 and 64 px x3
    refused = client.post("/api/caption", json={"caption": "a purple 7"})
    assert refused.status_code == 400 and "purple" in refused.json()["error"]


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_the_export_draws_as_the_checkpoint_does(stackgan_run, run_main, tmp_path: Path, fmt: str) -> None:
    from dlforge.inference import load

    _, summary, _ = stackgan_run
    ckpt = summary["last_checkpoint"]
    output = tmp_path / ("drawer.pt" if fmt == "torchscript" else "drawer.onnx")
    result = run_main("-m", "dlforge.export", f"ckpt_path={ckpt}", f"format={fmt}", f"output={output}")
    assert result.returncode == 0, result.stderr[-2000:]
    exported, checkpoint = load(output), load(ckpt)
    assert exported.backend == fmt
    for caption in (CAPTION, "nine, small, at the bottom"):
        torch.testing.assert_close(
            exported.draw(caption, 2, 5)[1], checkpoint.draw(caption, 2, 5)[1], atol=1e-4, rtol=0
        )
    spec = {"vocab": checkpoint.vocab, "max_len": checkpoint.card["text"]["max_len"]}
    assert encode_caption(CAPTION, spec).shape == (spec["max_len"],)


@pytest.mark.parametrize("reader", READERS)
def test_each_reader_pools_the_words_alone_and_padding_changes_nothing(reader: str) -> None:
    torch.manual_seed(0)
    encoder = CaptionEncoder(vocab_size=20, embed_dim=6, hidden=8, reader=reader)
    tokens = torch.tensor([[5, 6, 7, 0, 0], [8, 9, 10, 11, 12]])
    embedding = encoder(tokens)
    assert embedding.shape == (2, 8)
    longer = torch.cat([tokens, torch.zeros(2, 4, dtype=torch.long)], dim=1)
    torch.testing.assert_close(encoder(longer), embedding)
    # each caption by hand, without padding: the forward GRU over the words, the backward one over the
    # words reversed (its states put back in the caption's order), then the reader's pooling
    for row, out in zip(tokens, embedding, strict=True):
        words = encoder.embedding(row[row != 0])[None]
        states = encoder.gru(words)[0][0]
        if encoder.backward_gru is not None:
            back = encoder.backward_gru(words.flip(1))[0][0].flip(0)
            if reader == "bigru_last":
                torch.testing.assert_close(out, torch.cat([states[-1], back[0]]))
                continue
            states = torch.cat([states, back], dim=1)
        if reader.endswith("last"):
            expected = states[-1]
        elif reader.endswith("max"):
            expected = states.amax(dim=0)
        else:
            expected = (encoder.attention(states).softmax(dim=0) * states).sum(dim=0)
        torch.testing.assert_close(out, expected)


def test_the_pooled_bigru_reads_a_word_order_never_seen_where_the_last_state_does_not() -> None:
    """Trained on the six training templates' captions, read on the two held-out ones (the place said
    first; 'the 7, large, is ...'): max-pooling a bidirectional GRU reads the class; the GRU read at the
    last word does not (the issue's held-out-phrasings failure, benchmarks/caption_reader.py)."""
    spec = CaptionedDataModule(data_dir="unused", properties=["class", "position", "size"]).spec
    generator = torch.Generator().manual_seed(0)

    def captions(n: int, held_out: bool) -> tuple[torch.Tensor, torch.Tensor]:
        properties = recorded(sample_properties(n, spec, generator), spec)
        templates = sample_templates(n, 1, generator, held_out=held_out)
        texts = [join_tokens(t) for t in caption_tokens(properties, templates, spec, generator)]
        return encode_captions(texts, spec), properties[:, 0, 0]

    train_tokens, train_classes = captions(2000, held_out=False)
    test_tokens, test_classes = captions(500, held_out=True)
    accuracy = {}
    for reader in ("last", "bigru_max"):
        torch.manual_seed(0)
        encoder = CaptionEncoder(len(spec["vocab"]), embed_dim=16, hidden=32, reader=reader)
        head = torch.nn.Linear(32, 10)
        optimizer = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=0.01)
        for _ in range(2):
            for batch in torch.randperm(2000, generator=generator).split(64):
                loss = torch.nn.functional.cross_entropy(
                    head(encoder(train_tokens[batch])), train_classes[batch]
                )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        with torch.no_grad():
            accuracy[reader] = (head(encoder(test_tokens)).argmax(1) == test_classes).float().mean().item()
    assert accuracy["bigru_max"] > 0.95 and accuracy["last"] < 0.8, accuracy


def test_word_dropout_hides_words_not_padding() -> None:
    tokens = torch.randint(2, 40, (200, 12))
    tokens[:, 9:] = 0
    dropped = drop_words(tokens, 0.25, torch.Generator().manual_seed(0))
    hidden = dropped != tokens
    assert (dropped[hidden] == 1).all() and not hidden[:, 9:].any()  # UNK, and only where words are
    assert 0.2 < hidden[:, :9].float().mean() < 0.3
    assert torch.equal(drop_words(tokens, 0.0), tokens)


def test_old_checkpoints_keep_the_last_word_reader() -> None:
    """Their saved hparams name no reader: the net's default is the first reader, the YAML's the new."""
    nets = build_net(
        "stackgan", in_channels=1, height=32, width=32, vocab_size=20, features=8, text_hidden=16
    )
    assert nets.encoder.reader == "last" and nets.encoder.backward_gru is None
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["model=stackgan", "data=captioned_mnist"])
    assert cfg.model.net.reader == "bigru_max" and cfg.model.word_dropout == 0.1
    with pytest.raises(ValueError, match=r"reader=bigru_max .* even"):
        CaptionEncoder(20, hidden=7, reader="bigru_max")
    with pytest.raises(ValueError, match="choose one of last, max"):
        CaptionEncoder(20, reader="mean")
