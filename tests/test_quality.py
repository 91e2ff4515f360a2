"""Sample quality (FID / KID / inception-style score) with a domain classifier as extractor."""

from __future__ import annotations

import pytest
import torch

from dlforge.quality import SampleQuality
from dlforge.training import build_run, train
from tests.conftest import FAST


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory, data_dir):
    from hydra import compose, initialize_config_dir

    from dlforge import CONF_DIR

    out = tmp_path_factory.mktemp("classifier")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"paths.data_dir={data_dir}", "model=lenet", *FAST, "test=false"])
    cfg.paths.output_dir = str(out)
    summary = train(cfg)
    datamodule, _, _ = build_run(cfg)
    return summary["last_checkpoint"], datamodule


def test_fid_is_small_for_real_images_and_large_for_noise(classifier_run) -> None:
    ckpt, datamodule = classifier_run
    images = datamodule.preprocess(datamodule.splits["train"].tensors[0][:128])
    quality = SampleQuality(ckpt, kid_subset_size=50)
    quality.update_real(images[:64])
    quality.update_fake(images[64:])
    same = quality.compute()
    quality.reset_fake()
    quality.update_fake(torch.rand(64, 1, 28, 28))
    noise = quality.compute()
    assert quality.real_seen == 64
    assert same["fid"] < noise["fid"] and same["kid"] < noise["kid"]
    assert sum(same["class_counts"]) == 64 and len(same["class_counts"]) == 10
    assert same["inception_score"] >= 1.0
    assert same["extractor"].startswith("last.ckpt (convnet on mnist")


def test_quality_refuses_images_of_another_shape(classifier_run) -> None:
    quality = SampleQuality(classifier_run[0])
    with pytest.raises(ValueError, match="same data set"):
        quality.update_fake(torch.rand(4, 3, 32, 32))
