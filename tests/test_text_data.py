"""The text pipeline: tokenizer, vocabulary, fixed length, corpora in their layouts, GloVe and its cache."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from dlforge.data import (
    CSVTextDataModule,
    IMDBDataModule,
    MovieReviewsDataModule,
    MRDataModule,
    SubjDataModule,
)
from dlforge.data import glove as glove_module
from dlforge.data.glove import embedding_matrix, load_glove, locate_glove
from dlforge.data.text_datamodule import stratified_folds, stratified_holdout
from dlforge.data.text_encoder import OOV_ID, PAD_ID, TextEncoder, build_vocab, fix_length, tokenize
from dlforge.errors import DataNotFoundError, DlforgeError
from tests.text_fixtures import (
    GLOVE_DIM,
    glove_vectors,
    write_glove,
    write_glove_zip,
    write_mr,
    write_text_data,
)


@pytest.fixture(scope="session")
def text_root(data_dir: Path) -> Path:
    return write_text_data(data_dir)


def module(cls: type, root: Path, **kwargs) -> MRDataModule:
    options = {"glove": {"path": str(root / "glove" / "tiny.16d.txt")}, "download": False, **kwargs}
    dm = cls(data_dir=str(root), **options)
    dm.setup("fit")
    return dm


# --- tokenizer, vocabulary, fixed length -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("A gorgeous, witty film!", ["a", "gorgeous", ",", "witty", "film", "!"]),
        ("It's not bad... don't go", ["it", "'s", "not", "bad", "...", "do", "n't", "go"]),
        (
            "co-writer/director (1999) rates it 3.5 -- wow",
            ["co-writer", "/", "director", "(", "1999", ")", "rates", "it", "3.5", "--", "wow"],
        ),
        ("  ", []),
    ],
)
def test_tokenizer_keeps_punctuation_as_tokens_and_lowercases(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


def test_tokenizer_options() -> None:
    assert tokenize("Witty, isn't it?", lowercase=False) == ["Witty", ",", "is", "n't", "it", "?"]
    assert tokenize("Witty, isn't it?", keep_punctuation=False) == ["witty", "is", "n't", "it"]


def test_vocabulary_by_frequency_with_min_freq_and_max_size() -> None:
    texts = [["b", "a", "c"], ["a", "b"], ["a", "d"]]
    assert build_vocab(texts) == ["<pad>", "<unk>", "a", "b", "c", "d"]  # ties alphabetical
    assert build_vocab(texts, min_freq=2) == ["<pad>", "<unk>", "a", "b"]
    assert build_vocab(texts, max_size=3) == ["<pad>", "<unk>", "a"]


def test_fixed_length_truncates_pads_or_wraps() -> None:
    assert fix_length([5, 6, 7, 8], 3) == [5, 6, 7]
    assert fix_length([5, 6], 5) == [5, 6, PAD_ID, PAD_ID, PAD_ID]
    assert fix_length([5, 6], 5, "wrap") == [5, 6, 5, 6, 5]
    assert fix_length([], 3, "wrap") == [PAD_ID] * 3
    with pytest.raises(ValueError, match="padding"):
        fix_length([1], 3, "reflect")


def test_encoder_maps_unknown_words_to_oov_and_round_trips_through_its_spec() -> None:
    encoder = TextEncoder(["<pad>", "<unk>", "good", "film", "."], max_len=6, padding="pad")
    ids = encoder.encode(["Good film.", "a zorblax film"])
    assert ids.tolist() == [[2, 3, 4, 0, 0, 0], [OOV_ID, OOV_ID, 3, 0, 0, 0]]
    spec = {
        "vocab": encoder.vocab,
        "max_len": 6,
        "padding": "wrap",
        "tokenizer": {"lowercase": True, "keep_punctuation": True},
    }
    assert TextEncoder.from_spec(spec).encode(["good film"]).tolist() == [[2, 3, 2, 3, 2, 3]]


# --- splits ------------------------------------------------------------------------------------


def test_stratified_holdout_and_folds_are_seeded_disjoint_and_balanced() -> None:
    labels = torch.tensor([0] * 30 + [1] * 20)
    held, rest = stratified_holdout(labels, 0.2, seed=3)
    assert len(held) == 10 and len(rest) == 40 and not set(held.tolist()) & set(rest.tolist())
    assert labels[held].sum() == 4  # 20% of each class
    assert torch.equal(held, stratified_holdout(labels, 0.2, seed=3)[0])
    assert not torch.equal(held, stratified_holdout(labels, 0.2, seed=4)[0])
    folds = stratified_folds(labels, 5, seed=0)
    assert sorted(folds.bincount().tolist()) == [10] * 5
    assert all(labels[folds == k].sum() == 4 for k in range(5))


# --- corpora in their upstream layouts ---------------------------------------------------------


def test_mr_reads_latin1_and_utf8_and_holds_out_a_seeded_test_split(text_root: Path, tmp_path: Path) -> None:
    dm = module(MRDataModule, text_root, test_size=0.2, val_size=0.25)
    sizes = {name: len(split) for name, split in dm.splits.items()}
    assert sizes == {"train": 72, "val": 24, "test": 24}
    assert dm.class_names == ["negative", "positive"]
    assert "a café full of naïve charm , good and witty ." in dm.load_corpus()["train"][0]  # Latin-1
    write_mr(tmp_path, encoding="utf-8")
    utf8 = module(MRDataModule, tmp_path, test_size=0.2, val_size=0.25)
    assert "a café full of naïve charm , good and witty ." in utf8.load_corpus()["train"][0]
    assert torch.equal(utf8.splits["test"].tensors[1], dm.splits["test"].tensors[1])
    again = module(MRDataModule, text_root, test_size=0.2, val_size=0.25)
    assert torch.equal(again.splits["test"].tensors[0], dm.splits["test"].tensors[0])


def test_vocabulary_comes_from_the_training_split_only(text_root: Path) -> None:
    dm = module(MRDataModule, text_root)
    train_words = {dm.encoder.vocab[i] for i in dm.splits["train"].tensors[0].unique().tolist()}
    assert set(dm.encoder.vocab) == train_words | {"<pad>", "<unk>"}


@pytest.mark.parametrize(
    ("cls", "sizes", "classes"),
    [
        (SubjDataModule, (80, None), ["objective", "subjective"]),
        (MovieReviewsDataModule, (40, None), ["negative", "positive"]),
        (IMDBDataModule, (32, 32), ["negative", "positive"]),
    ],
)
def test_each_corpus_reads_its_upstream_layout(
    text_root: Path, cls: type, sizes: tuple, classes: list
) -> None:
    dm = module(cls, text_root, max_len=40)
    corpus = dm.load_corpus()
    assert len(corpus["train"][0]) == sizes[0]
    assert (len(corpus["test"][0]) if "test" in corpus else None) == sizes[1]
    assert dm.class_names == classes
    assert sorted(set(corpus["train"][1])) == [0, 1]
    assert "<br" not in " ".join(corpus["train"][0]) and "br" not in dm.encoder.vocab
    assert sum(len(s) for s in dm.splits.values()) == sum(len(c[0]) for c in corpus.values())


def test_csv_text_with_named_columns_and_a_tsv_test_file(text_root: Path, tmp_path: Path) -> None:
    from tests.text_fixtures import write_csv

    tsv = write_csv(tmp_path / "test.tsv", n=5, delimiter="\t")
    dm = module(
        CSVTextDataModule,
        text_root,
        path=str(text_root / "reviews.csv"),
        test_path=str(tsv),
        text_column="review",
        label_column="sentiment",
        name="my_reviews",
    )
    assert dm.class_names == ["neg", "pos"]
    assert len(dm.splits["test"]) == 10 and len(dm.splits["train"]) + len(dm.splits["val"]) == 60
    assert dm.spec["name"] == "my_reviews"
    with pytest.raises(DlforgeError, match="no column 'text'"):
        module(CSVTextDataModule, text_root, path=str(text_root / "reviews.csv"))


def test_csv_blank_texts_are_skipped_and_blank_labels_refused(
    text_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pairs = [("great fun", "pos"), ("dull", "neg")] * 10
    rows = "review,sentiment\n" + "".join(f"{text},{label}\n" for text, label in pairs)
    path = tmp_path / "blank.csv"
    path.write_text(rows + '"  ",pos\n')
    dm = module(CSVTextDataModule, text_root, path=str(path), text_column="review", label_column="sentiment")
    assert sum(len(s) for s in dm.splits.values()) == 20
    assert "skipped 1 rows with an empty text (lines [22])" in caplog.text
    path.write_text(rows + "fine film,\n")
    with pytest.raises(DlforgeError, match="line 22: no 'sentiment'"):
        module(CSVTextDataModule, text_root, path=str(path), text_column="review", label_column="sentiment")


def test_text_in_another_encoding_than_the_one_set_is_one_clear_error(text_root: Path) -> None:
    expected = r"rt-polarity\.(neg|pos) is not utf-8 text \(byte \d+\); set data.encoding"
    with pytest.raises(DlforgeError, match=expected):
        module(MRDataModule, text_root, encoding="utf-8")


def test_missing_corpus_names_the_folder_and_data_dir(tmp_path: Path) -> None:
    dm = MRDataModule(data_dir=str(tmp_path), download=False)
    with pytest.raises(DataNotFoundError, match=f"{tmp_path}/rt-polaritydata.*DATA_DIR"):
        dm.prepare_data()


def test_k_fold_splits_cover_the_corpus_once(text_root: Path) -> None:
    for k in range(4):
        splits = module(MRDataModule, text_root, folds=4, fold=k, val_size=0.2).splits
        assert {name: len(s) for name, s in splits.items()} == {"train": 72, "val": 18, "test": 30}
        assert splits["test"].tensors[1].sum() == 15  # stratified: half of each fold positive
    with pytest.raises(DlforgeError, match="own test split"):
        module(IMDBDataModule, text_root, folds=4)


def test_model_kwargs_hand_over_a_plain_spec_and_the_embedding_matrix(text_root: Path) -> None:
    kwargs = module(MRDataModule, text_root, padding="wrap").model_kwargs()
    spec, weights = kwargs["data"], kwargs["embeddings"]
    assert spec["padding"] == "wrap" and spec["max_len"] == 50 and spec["num_classes"] == 2
    assert spec["embedding_dim"] == GLOVE_DIM and weights.shape == (len(spec["vocab"]), GLOVE_DIM)
    assert all(isinstance(word, str) for word in spec["vocab"])
    vectors = glove_vectors()
    good = spec["vocab"].index("good")
    assert np.allclose(weights[good].numpy(), vectors["good"], atol=1e-5)
    assert torch.all(weights[PAD_ID] == 0)


# --- GloVe ---------------------------------------------------------------------------------------


def test_glove_reads_text_of_any_dimension_with_header_and_spaced_words(tmp_path: Path) -> None:
    path = tmp_path / "vectors.txt"
    path.write_text("3 4\nthe 0.1 0.2 0.3 0.4\nnew york 1 2 3 4\n, -1 -2 -3 -4\n", encoding="utf-8")
    glove = load_glove(path)
    assert glove.words == ["the", "new york", ","] and glove.dim == 4
    assert glove.vectors[glove.index["new york"]].tolist() == [1, 2, 3, 4]
    bad = tmp_path / "bad.txt"
    bad.write_text("the 0.1 0.2\nfilm 0.3\n", encoding="utf-8")
    with pytest.raises(DlforgeError, match="does not hold a word and 2 numbers"):
        load_glove(bad)


def test_glove_read_from_the_upstream_zip_by_dimension(tmp_path: Path) -> None:
    archive = write_glove_zip(tmp_path / "glove" / "glove.6B.zip", dims=(8, 12))
    assert load_glove(archive, dim=12).dim == 12
    # a missing glove.6B.<dim>d.txt is read from glove.6B.zip beside it
    assert locate_glove(tmp_path / "glove" / "glove.6B.8d.txt") == (archive, "glove.6B.8d.txt")
    glove = load_glove(tmp_path / "glove" / "glove.6B.8d.txt", cache_dir=tmp_path / "cache")
    assert glove.dim == 8 and "witty" in glove.index
    with pytest.raises(DlforgeError, match=r"data\.glove\.dim"):
        load_glove(archive, dim=300)


def test_glove_download_fetches_the_upstream_zip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_download(url: str, root: str, filename: str, md5: str) -> None:
        calls.append(url)
        write_glove_zip(Path(root) / filename, dims=(8,))

    monkeypatch.setattr("torchvision.datasets.utils.download_url", fake_download)
    missing = tmp_path / "glove" / "glove.6B.8d.txt"
    with pytest.raises(DataNotFoundError, match="download is off"):
        load_glove(missing, download=False)
    assert load_glove(missing, download=True).dim == 8
    assert calls == [glove_module.GLOVE_6B_URL]


def test_glove_download_failure_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args, **kwargs) -> None:
        raise OSError("network is unreachable")

    monkeypatch.setattr("torchvision.datasets.utils.download_url", offline)
    with pytest.raises(
        DataNotFoundError, match=r"downloading .*glove\.6B\.zip failed \(network is unreachable\)"
    ):
        load_glove(tmp_path / "glove.6B.50d.txt", download=True)
    with pytest.raises(DataNotFoundError, match=r"set data\.glove\.path"):
        load_glove(tmp_path / "my_vectors.txt", download=True)


def test_glove_cache_is_reused_memory_mapped_and_invalidated_by_a_changed_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_glove(tmp_path / "glove.txt")
    cache = tmp_path / "cache"
    first = load_glove(source, cache)
    assert len(list((cache / "glove").iterdir())) == 1

    def no_parsing(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(glove_module, "read_glove_text", no_parsing)
    second = load_glove(source, cache)
    assert isinstance(second.vectors, np.memmap)
    assert second.words == first.words and np.array_equal(second.vectors, first.vectors)
    monkeypatch.undo()

    write_glove(source, seed=1)  # new vectors: size may match, the modification time does not
    os.utime(source, ns=(time.time_ns(), time.time_ns() + 10**9))
    changed = load_glove(source, cache)
    assert not np.array_equal(changed.vectors, first.vectors)


def test_embedding_matrix_fills_missing_words_zero_or_random_and_logs_coverage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    glove = load_glove(write_glove(tmp_path / "glove.txt"))
    vocab = ["<pad>", "<unk>", "good", "zorblax", "bad"]
    with caplog.at_level(logging.INFO):
        zero = embedding_matrix(vocab, glove, missing="zero", counts={"good": 3, "zorblax": 1})
    assert "covers 2 of 3 vocabulary words (66.7%), 75.0% of training tokens" in caplog.text
    assert torch.all(zero[[0, 1, 3]] == 0) and torch.all(zero[2] != 0)
    rand = embedding_matrix(vocab, glove, missing="random", seed=0)
    assert torch.all(rand[0] == 0) and torch.all(rand[3] != 0) and torch.equal(rand[2], zero[2])
    assert torch.equal(rand, embedding_matrix(vocab, glove, missing="random", seed=0))
    scale = 3**0.5 * zero[[2, 4]].std(correction=0)  # U(-a, a) with the found vectors' variance
    assert rand[[1, 3]].abs().max() <= scale and rand[[1, 3]].abs().max() > scale / 2
    no_glove = embedding_matrix(vocab, None, dim=7)
    assert no_glove.shape == (5, 7) and torch.all(no_glove[1:].abs() <= 0.25)


def test_missing_corpora_are_fetched_from_upstream_into_their_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.text_fixtures import write_subj

    calls = []

    def fake_fetch(url: str, download_root, extract_root, md5=None, remove_finished=False) -> None:
        calls.append((url, Path(extract_root)))
        if url.endswith("rt-polaritydata.tar.gz"):
            write_mr(Path(extract_root))
        else:  # rotten_imdb.tar.gz holds bare files
            write_subj(Path(extract_root).parent)

    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", fake_fetch)
    for cls in (MRDataModule, SubjDataModule):
        dm = cls(data_dir=str(tmp_path), glove={"path": None, "dim": 8})
        dm.prepare_data()
        dm.setup()
        assert sum(len(s) for s in dm.splits.values()) in (120, 80)
    assert calls == [
        ("https://www.cs.cornell.edu/people/pabo/movie-review-data/rt-polaritydata.tar.gz", tmp_path),
        (
            "https://www.cs.cornell.edu/people/pabo/movie-review-data/rotten_imdb.tar.gz",
            tmp_path / "rotten_imdb",
        ),
    ]


def test_max_len_null_is_the_longest_training_text(text_root: Path) -> None:
    dm = module(MRDataModule, text_root, max_len=None)
    ids = dm.splits["train"].tensors[0]
    assert dm.spec["max_len"] == ids.shape[1] == int((ids != PAD_ID).sum(dim=1).max())


def test_vocabulary_from_all_splits_on_request(text_root: Path) -> None:
    dm = module(MRDataModule, text_root, vocab_from="all")
    texts = dm.load_corpus()["train"][0]
    assert set(dm.encoder.vocab) == {t for text in texts for t in tokenize(text)} | {"<pad>", "<unk>"}
    assert all(OOV_ID not in split.tensors[0] for split in dm.splits.values())
