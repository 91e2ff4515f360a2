"""Seed 001's vanishing-gradient study: the first-token task, the plain RNN, chrono initialization,
the gradient norm reaching each time step, and the experiment as typed."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir

from dlforge import CONF_DIR
from dlforge.data import FirstTokenDataModule
from dlforge.models import TextClassifier
from dlforge.nets.text import TextRNN
from dlforge.predict import main as predict_main
from dlforge.train import main as train_main
from dlforge.training import train


def tiny_classifier(
    cell: str, length: int, seed: int = 0, **net: object
) -> tuple[TextClassifier, torch.Tensor, torch.Tensor]:
    """An untrained classifier over the first-token task and 64 of its test sequences."""
    data = FirstTokenDataModule(length=length, train_size=8, val_size=8, test_size=64, seed=seed)
    data.setup()
    torch.manual_seed(seed)
    model = TextClassifier(
        {"name": "text_rnn", "cell": cell, "hidden_size": 16, **net}, **data.model_kwargs()
    )
    return model.eval(), *data.splits["test"].tensors


# --- the data ------------------------------------------------------------------------------------
def test_first_token_splits_shapes_and_seeding() -> None:
    data = FirstTokenDataModule(
        length=30, num_classes=3, noise_tokens=5, train_size=40, val_size=10, test_size=20
    )
    data.setup()
    assert {name: tuple(split.tensors[0].shape) for name, split in data.splits.items()} == {
        "train": (40, 30), "val": (10, 30), "test": (20, 30),
    }  # fmt: skip
    assert data.vocab == ["<pad>", "<unk>", "c0", "c1", "c2", "n0", "n1", "n2", "n3", "n4"]
    assert data.spec["max_len"] == 30 and data.spec["class_names"] == ["c0", "c1", "c2"]
    assert data.embeddings.shape == (10, 16) and not data.embeddings[0].any()  # <pad> is zero

    again = FirstTokenDataModule(
        length=30, num_classes=3, noise_tokens=5, train_size=40, val_size=10, test_size=20
    )
    again.setup()
    other = FirstTokenDataModule(
        length=30, num_classes=3, noise_tokens=5, train_size=40, val_size=10, test_size=20, seed=1
    )
    other.setup()
    for name in ("train", "val", "test"):
        assert torch.equal(data.splits[name].tensors[0], again.splits[name].tensors[0])
        assert not torch.equal(data.splits[name].tensors[0], other.splits[name].tensors[0])
    assert torch.equal(data.embeddings, again.embeddings)
    assert not torch.equal(data.splits["train"].tensors[0][:10], data.splits["val"].tensors[0])


def test_the_label_is_the_first_token_and_the_noise_says_nothing_about_it() -> None:
    data = FirstTokenDataModule(length=50, train_size=4000, val_size=8, test_size=8)
    data.setup()
    tokens, labels = data.splits["train"].tensors
    names = [data.vocab[i] for i in tokens[:, 0].tolist()]
    assert names == [data.class_names[k] for k in labels.tolist()]
    assert (tokens[:, 1:] >= data.first_noise_id).all()  # no class token after the first
    assert torch.bincount(labels).min() > 900  # the four classes are balanced
    # every class sees the same noise: per-class token frequencies agree within sampling error
    frequency = torch.stack([torch.bincount(tokens[labels == k, 1:].flatten()).float() for k in range(4)])
    frequency = frequency[:, data.first_noise_id :] / frequency.sum(dim=1, keepdim=True)
    assert (frequency - 1 / 16).abs().max() < 0.005


def test_impossible_task_options_are_one_line_from_the_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["train.py", "data=first_token", "model=rnn", "data.num_classes=1"])
    with pytest.raises(SystemExit) as exit_info:
        train_main()
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: data.num_classes=1: use a whole number of 2 or more (default 4)"
    )  # the range its YAML comment states (issue 31), checked before the run


# --- the networks --------------------------------------------------------------------------------
def test_rnn_cell_is_elman_tanh_and_unknown_cells_are_refused() -> None:
    net = TextRNN(embedding_dim=4, max_len=5, num_classes=2, cell="rnn", hidden_size=3)
    assert isinstance(net.rnn, torch.nn.RNN) and net.rnn.nonlinearity == "tanh"
    with pytest.raises(ValueError, match="rnn, lstm or gru"):
        TextRNN(embedding_dim=4, max_len=5, num_classes=2, cell="elman")


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_unpadded_batches_skip_packing_with_the_same_result(cell: str) -> None:
    torch.manual_seed(0)
    for readout in ("last", "mean", "max"):
        net = TextRNN(embedding_dim=4, max_len=7, num_classes=3, cell=cell, hidden_size=5, readout=readout)
        x = torch.randn(2, 1, 7, 4)
        full = net(x, torch.tensor([7, 7]))  # no padding: not packed
        padded = torch.cat([x, torch.randn(2, 1, 3, 4)], dim=2)  # garbage after the text: packed
        assert torch.allclose(net(padded, torch.tensor([7, 7])), full, atol=1e-6), (cell, readout)


def test_a_traced_rnn_packs_whatever_its_example_was() -> None:
    torch.manual_seed(0)
    net = TextRNN(embedding_dim=4, max_len=6, num_classes=2, cell="gru", hidden_size=5).eval()
    x = torch.randn(2, 1, 6, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.trace's deprecation and tracer notices
        traced = torch.jit.trace(net, (x, torch.tensor([6, 6])), check_trace=False)  # as dlforge.export
    short = torch.tensor([6, 3])
    assert torch.allclose(traced(x, short), net(x, short), atol=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_chrono_init_sets_the_keep_gate_biases_in_every_layer_and_direction(cell: str) -> None:
    torch.manual_seed(0)
    net = TextRNN(4, 9, 2, cell=cell, hidden_size=50, num_layers=2, bidirectional=True, chrono_init=200)
    keep, write = slice(50, 100), slice(0, 50)  # LSTM: i, f, g, o; GRU: r, z, n
    names = [n for n, _ in net.rnn.named_parameters() if n.startswith("bias_ih")]
    assert len(names) == 4
    for name in names:
        input_bias = net.rnn.get_parameter(name)
        hidden_bias = net.rnn.get_parameter(name.replace("bias_ih", "bias_hh"))
        keep_bias = input_bias[keep] + hidden_bias[keep]
        assert keep_bias.min() >= 0 and keep_bias.max() <= torch.log(torch.tensor(199.0))
        assert keep_bias.max() > 4  # spread up to memories of ~200 steps, not PyTorch's ~0
        if cell == "lstm":
            assert torch.equal(input_bias[write] + hidden_bias[write], -keep_bias)
    plain = TextRNN(4, 9, 2, cell="rnn", hidden_size=5, chrono_init=200)  # no gate: nothing to set
    assert plain.rnn.bias_ih_l0.abs().max() <= 1 / 5**0.5
    with pytest.raises(ValueError, match="more than 2 steps"):
        TextRNN(4, 9, 2, cell=cell, chrono_init=2)


# --- the gradient norm reaching each time step ---------------------------------------------------
def test_input_gradient_norms_are_each_texts_gradient_per_step_averaged() -> None:
    model, tokens, labels = tiny_classifier("gru", length=6)
    tokens[1, 4:] = 0  # a shorter text: padding gets no gradient
    norms = model.input_gradient_norms(tokens[:2], labels[:2])
    assert all(p.grad is None for p in model.parameters())  # measuring leaves the training state alone
    expected = []
    for i in range(2):
        inputs, lengths = model.embed_tokens(tokens[i : i + 1])
        inputs = inputs.detach().requires_grad_()
        F.cross_entropy(model.net(inputs, lengths), labels[i : i + 1]).backward()
        expected.append(inputs.grad[0, 0].norm(dim=-1))
    assert norms.shape == (6,)
    assert torch.allclose(norms, torch.stack(expected).mean(dim=0), rtol=1e-5, atol=1e-9)
    assert expected[1][4:].eq(0).all() and expected[1][:4].gt(0).all()


def test_gradient_vanishes_in_an_untrained_rnn_and_chrono_gates_let_it_through() -> None:
    rnn, tokens, labels = tiny_classifier("rnn", length=60)
    norms = rnn.input_gradient_norms(tokens, labels)
    assert norms[-5:].min() > 1e3 * norms[:5].max()  # the first steps get almost nothing
    assert (norms[1:] > norms[:-1]).float().mean() > 0.9  # and it grows towards the end
    lstm, _, _ = tiny_classifier("lstm", length=60, chrono_init=60)
    gated = lstm.input_gradient_norms(tokens, labels)
    assert gated[:5].max() / gated[-5:].min() > 1e3 * norms[:5].max() / norms[-5:].min()


# --- the experiment ------------------------------------------------------------------------------
def test_sweep_config_runs_three_cells_at_three_lengths() -> None:
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", ["experiment=seed001_vanishing_gradients"], return_hydra_config=True)
    assert dict(cfg.hydra.sweeper.params) == {"model": "rnn,lstm,gru", "data.length": "50,100,200"}
    assert cfg.model.net.cell == "rnn" and cfg.model.net.chrono_init == cfg.data.length == 100


def test_experiment_learns_a_short_task_and_predict_reads_its_checkpoint(
    make_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    cfg = make_cfg(
        "experiment=seed001_vanishing_gradients", "model=lstm", "data.length=8", "data.train_size=1024",
        "data.val_size=64", "data.test_size=128", "trainer=cpu", "trainer.max_epochs=3",
        "callbacks.progress_bar=null",
    )  # fmt: skip
    summary = train(cfg)
    assert summary["metrics"]["test/acc"] >= 0.95
    capsys.readouterr()  # drop the training run's tables
    monkeypatch.chdir(tmp_path)
    text = "c2 n5 n0 n7 n7 n1 n3 n2"
    monkeypatch.setattr(sys, "argv", ["predict", f"ckpt_path={summary['best_checkpoint']}", f"text={text}"])
    predict_main()
    best, *others = capsys.readouterr().out.strip().splitlines()  # the three likeliest classes
    assert best.split("\t")[0] == "c2" and float(best.split("\t")[1]) > 0.5 and len(others) == 2
