"""sslcookbook.models.export_backbone / load_backbone: a trained encoder leaves as safetensors and comes back
identical; files that cannot be loaded give errors that say why."""

import pytest
import torch
from safetensors.torch import save_file

from sslcookbook import data
from sslcookbook.models import build_backbone, export_backbone, load_backbone
from sslcookbook.models.export import read_metadata
from sslcookbook.recipes import get_recipe
from sslcookbook.train import fit


@pytest.fixture(scope="module")
def trained():
    """SimCLR's smoke setting, 3 steps on 128 digits: BatchNorm statistics and weights have moved."""
    resolved = get_recipe("simclr").resolve(
        "smoke", {"train.epochs": 1, "train.batch_size": 32, "train.max_steps_per_epoch": 3}
    )
    train = data.load("digits", "train").subset(128, seed=0)
    torch.manual_seed(0)
    method = resolved.build(in_channels=1)
    fit(
        method, train, resolved.views(train.image_shape), resolved.setting.train, device="cpu", progress=False
    )
    return resolved, method.backbone.eval(), train


def test_exported_backbone_loads_with_the_same_weights_and_features(trained, tmp_path):
    resolved, backbone, train = trained
    path = export_backbone(
        backbone,
        tmp_path / "encoder.safetensors",
        name="small_cnn",
        kwargs={"width": 16},
        in_channels=1,
        recipe="simclr",
    )
    loaded = load_backbone(path)
    images = train.images[:64].float() / 255
    with torch.no_grad():
        expected, got = backbone(images), loaded(images)
        fresh = build_backbone("small_cnn", 1, width=16).eval()(images)
    loaded_weights = loaded.state_dict()
    for name, weight in backbone.state_dict().items():
        assert torch.equal(loaded_weights[name], weight), name  # the same numbers, bit for bit
    # The recipe trained in channels_last and the file loads in PyTorch's default layout: the same sums
    # added in another order, so the features agree to float32 rounding rather than bit for bit.
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(fresh, expected)  # a fresh init differs: the weights did come from the file
    assert not loaded.training
    meta = read_metadata(path)
    assert (meta["backbone"], meta["in_channels"], meta["feature_dim"], meta["recipe"]) == (
        "small_cnn",
        "1",
        "64",
        "simclr",
    )
    assert meta["sslcookbook_version"]


def test_load_backbone_of_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="sslcookbook export"):
        load_backbone(tmp_path / "nope.safetensors")


def test_load_backbone_of_a_file_that_is_not_safetensors(tmp_path):
    path = tmp_path / "encoder.safetensors"
    path.write_bytes(b"this is a torch checkpoint, honest")
    with pytest.raises(ValueError, match="is not a safetensors file"):
        load_backbone(path)


def test_load_backbone_without_the_metadata(tmp_path):
    path = tmp_path / "weights.safetensors"
    save_file(build_backbone("small_cnn", 1, width=8).state_dict(), str(path))
    with pytest.raises(
        ValueError, match="lacks the metadata backbone, backbone_kwargs, in_channels, feature_dim"
    ):
        load_backbone(path)


def test_load_backbone_of_an_unknown_backbone(tmp_path):
    path = tmp_path / "encoder.safetensors"
    metadata = {"backbone": "vit_giant", "backbone_kwargs": "{}", "in_channels": "3", "feature_dim": "1536"}
    save_file({"w": torch.zeros(1)}, str(path), metadata=metadata)
    with pytest.raises(ValueError, match="'vit_giant' backbone, which this sslcookbook does not know"):
        load_backbone(path)


def test_load_backbone_whose_weights_do_not_fit(tmp_path):
    path = export_backbone(
        build_backbone("small_cnn", 1, width=8), tmp_path / "a.safetensors", name="small_cnn", in_channels=1
    )
    with pytest.raises(ValueError, match="the weights do not fit small_cnn"):
        load_backbone(path)  # kwargs {} rebuilds width 32
