"""Tests for sslcookbook.data: built-in sets, torchvision sets on fake files, ImageFolder trees."""

from __future__ import annotations

import os
import pickle
import struct
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

import sslcookbook.data.folder as folder_module
from sslcookbook import augment
from sslcookbook.data import (
    SHAPE_CLASSES,
    ImageDataset,
    available,
    default_root,
    load,
    make_shapes,
    make_shapes_with_masks,
)
from sslcookbook.data.digits import load_digits_split
from sslcookbook.data.shapes import _rasterise

# ---------------------------------------------------------------- ImageDataset


def test_image_dataset_basics_and_numpy_input():
    ds = ImageDataset(np.zeros((6, 1, 4, 5), np.uint8), np.array([0, 1, 2, 0, 1, 2]), ["a", "b", "c"], "toy")
    assert ds.images.dtype == torch.uint8 and ds.labels.dtype == torch.int64
    assert len(ds) == 6 and ds.num_classes == 3 and ds.image_shape == (1, 4, 5)
    image, label = ds[4]
    assert image.shape == (1, 4, 5) and label == 1
    assert "toy" in repr(ds) and "n=6" in repr(ds)


def test_image_dataset_makes_images_contiguous():
    images = torch.zeros(4, 8, 8, 3, dtype=torch.uint8).permute(0, 3, 1, 2)
    assert not images.is_contiguous()
    assert ImageDataset(images, torch.zeros(4, dtype=torch.int64), ["x"]).images.is_contiguous()


def _u8(*shape: int) -> torch.Tensor:
    return torch.zeros(*shape, dtype=torch.uint8)


def _long(*values: int) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int64)


@pytest.mark.parametrize(
    ("images", "labels", "classes", "error", "message"),
    [
        (torch.rand(4, 3, 8, 8), _long(0, 0, 0, 0), ["a"], TypeError, "uint8"),
        (_u8(4, 8, 8), _long(0, 0, 0, 0), ["a"], ValueError, "unsqueeze"),
        (_u8(4, 8, 8, 3), _long(0, 0, 0, 0), ["a"], ValueError, "permute"),
        (_u8(4, 3, 8, 8), _long(0, 0, 0, 0, 0), ["a"], ValueError, "5 labels"),
        (_u8(4, 3, 8, 8), _long(0, 0, 0, 0).view(4, 1), ["a"], ValueError, "1-D"),
        (_u8(4, 3, 8, 8), torch.zeros(4), ["a"], TypeError, "labels.long()"),
        (_u8(4, 3, 8, 8), _long(0, 1, 2, 3), ["a", "b"], ValueError, "0..1"),
        (_u8(4, 3, 8, 8), _long(0, -1, 0, 0), ["a", "b"], ValueError, "0..1"),
        (_u8(4, 3, 8, 8), _long(0, 0, 0, 0), ["a", "a"], ValueError, "duplicate"),
        (_u8(0, 3, 8, 8), _long(), ["a"], ValueError, "no images"),
        ([[0]], _long(0), ["a"], TypeError, "torch.Tensor"),
    ],
)
def test_image_dataset_validation(images, labels, classes, error, message):
    with pytest.raises(error, match=message):
        ImageDataset(images, labels, classes)


def test_image_dataset_accepts_other_integer_label_dtypes():
    ds = ImageDataset(
        torch.zeros(3, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1, 1], dtype=torch.uint8), ["a", "b"]
    )
    assert ds.labels.dtype == torch.int64


def test_subset_is_stratified_deterministic_and_ordered():
    labels = torch.cat([torch.zeros(600), torch.ones(300), torch.full((100,), 2)]).long()
    ds = ImageDataset(torch.zeros(1000, 1, 2, 2, dtype=torch.uint8), labels, ["a", "b", "c"], "skewed")
    sub = ds.subset(100, seed=5)
    assert len(sub) == 100
    assert sub.class_counts().tolist() == [60, 30, 10]
    assert torch.equal(sub.labels, ds.subset(100, seed=5).labels)
    # Different seeds pick different images: tell them apart by a per-image id written into the pixels.
    ids = torch.arange(1000)
    tagged = ImageDataset(
        ids.view(-1, 1, 1, 1).repeat(1, 1, 2, 2).remainder(256).to(torch.uint8), labels, ds.classes
    )
    tagged.images[:, 0, 0, 1] = (ids // 256).to(torch.uint8)
    pick = lambda s: (tagged.subset(50, seed=s).images[:, 0, 0, :2].long() * torch.tensor([1, 256])).sum(1)
    first, second = pick(0), pick(1)
    assert torch.equal(first, first.sort().values), "kept images must stay in their original order"
    assert not torch.equal(first, second)
    assert ds.subset(5000) is ds
    with pytest.raises(ValueError, match="positive int"):
        ds.subset(0)


def test_split_holds_out_a_stratified_fraction_and_keeps_the_rest():
    labels = torch.cat([torch.zeros(600), torch.ones(300), torch.full((100,), 2)]).long()
    ids = torch.arange(1000)
    ds = ImageDataset(ids.view(-1, 1, 1, 1).remainder(256).to(torch.uint8), labels, ["a", "b", "c"], "skewed")
    ds.images = torch.stack([ids % 256, ids // 256], 1).view(-1, 1, 1, 2).to(torch.uint8)
    key = lambda d: (d.images[:, 0, 0, :].long() * torch.tensor([1, 256])).sum(1)
    rest, held_out = ds.split(0.2, seed=3)
    assert held_out.class_counts().tolist() == [120, 60, 20] and len(rest) == 800
    assert torch.equal(key(held_out), key(ds.subset(200, seed=3)))
    together = torch.cat([key(rest), key(held_out)]).sort().values
    assert torch.equal(together, ids), "every image lands on exactly one side"
    assert torch.equal(key(rest), key(rest).sort().values)
    assert torch.equal(key(ds.split(0.2, seed=3)[1]), key(held_out))
    for bad in (0, 1, 1.5, True, "0.2"):
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            ds.split(bad)
    with pytest.raises(ValueError, match="at least one image"):
        ds.split(1e-4)


# ---------------------------------------------------------------- registry


def test_available_and_unknown_name():
    names = available()
    for name in ("digits", "shapes", "cifar10", "cifar100", "stl10", "mnist", "fashion_mnist"):
        assert name in names
    assert any(name.startswith("folder:") for name in names)
    with pytest.raises(ValueError, match="unknown data set 'imagenet7'.*digits.*cifar10.*folder:"):
        load("imagenet7")
    with pytest.raises(ValueError, match="choose 'train' or 'test'"):
        load("digits", split="val")
    with pytest.raises(ValueError, match="needs a path"):
        load("folder:")


def test_default_root_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SSLCOOKBOOK_DATA", str(tmp_path / "d"))
    assert default_root() == tmp_path / "d"
    monkeypatch.delenv("SSLCOOKBOOK_DATA")
    assert default_root().parts[-3:] == (".cache", "sslcookbook", "data")


# ---------------------------------------------------------------- digits


def test_digits_sizes_dtypes_and_range():
    train, test = load("digits"), load("digits", split="test")
    assert (len(train), len(test)) == (1437, 360)
    for ds in (train, test):
        assert ds.images.dtype == torch.uint8 and ds.labels.dtype == torch.int64
        assert ds.image_shape == (1, 8, 8) and ds.classes == [str(d) for d in range(10)]
    assert int(train.images.max()) == 255 and int(train.images.min()) == 0
    # Stratified: every class has 35..37 of the 360 test images (proportions of the whole set).
    assert test.class_counts().min() >= 35 and test.class_counts().max() <= 37


def test_digits_split_is_deterministic_and_a_partition():
    first, again = load_digits_split("train"), load_digits_split("train")
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    test = load_digits_split("test")
    bunch = load_digits()
    full = np.concatenate([np.rint(bunch.images * 255 / 16).reshape(-1, 64), bunch.target[:, None]], axis=1)

    def rows(ds: ImageDataset) -> np.ndarray:
        return np.concatenate([ds.images.reshape(len(ds), -1).numpy(), ds.labels[:, None].numpy()], axis=1)

    # train ∪ test is exactly the full set (as a multiset of rows), so the splits are disjoint and complete.
    joined = np.concatenate([rows(first), rows(test)]).astype(np.int64)
    assert sorted(map(tuple, joined.tolist())) == sorted(map(tuple, full.astype(np.int64).tolist()))


# ---------------------------------------------------------------- shapes


def test_shapes_deterministic_by_seed():
    a, b, c = make_shapes(48, seed=3), make_shapes(48, seed=3), make_shapes(48, seed=4)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    assert a.images.dtype == torch.uint8 and a.image_shape == (3, 32, 32) and a.classes == SHAPE_CLASSES
    assert make_shapes(5, size=16).image_shape == (3, 16, 16)
    with pytest.raises(ValueError, match="positive int"):
        make_shapes(0)


def test_shapes_labels_balanced_and_colour_carries_no_label():
    ds = make_shapes(1600, seed=0)
    assert ds.class_counts().tolist() == [200] * len(SHAPE_CLASSES)
    images = ds.images.float() / 255
    # Background colour: mean of the border pixels (shapes stay inside the frame). Shape colour: the
    # pixel farthest from it (shapes are drawn with enough contrast to be that pixel).
    border = torch.cat([images[:, :, [0, -1], :].flatten(2), images[:, :, :, [0, -1]].flatten(2)], dim=2)
    background = border.mean(2)
    farthest = (images - background[:, :, None, None]).norm(dim=1).flatten(1).argmax(1)
    shape_colour = images.flatten(2)[torch.arange(len(ds)), :, farthest]
    colour = torch.cat([shape_colour, background], dim=1)
    class_means = torch.stack([colour[ds.labels == k].mean(0) for k in range(ds.num_classes)])
    assert (class_means - colour.mean(0)).abs().max() < 0.08
    # A nearest-class-mean classifier on these colours is at chance (1/8).
    predicted = torch.cdist(colour, class_means).argmin(1)
    assert (predicted == ds.labels).float().mean() < 0.2


def test_shapes_rasteriser_geometry():
    """Noise-free white shapes on black, centred, unrotated, at half scale: areas and distinctness."""
    k, size = len(SHAPE_CLASSES), 64
    zeros, ones = torch.zeros(k), torch.ones(k)
    params = {
        **{name: zeros for name in ("cx", "cy", "angle", "grad_sin", "noise_std")},
        "grad_cos": ones,
        "scale": ones * 0.5,
        "bg_a": torch.zeros(k, 3),
        "bg_b": torch.zeros(k, 3),
        "fg": torch.ones(k, 3),
        "noise": torch.zeros(k, 3, size, size),
    }
    masks = _rasterise(torch.arange(k), params, size)[:, 0]
    area = masks.mean(dim=(1, 2))
    circle_radius = 0.8 * 0.5  # in units of the half-width
    assert area[SHAPE_CLASSES.index("circle")] == pytest.approx(torch.pi * circle_radius**2 / 4, rel=0.03)
    assert area[SHAPE_CLASSES.index("square")] == pytest.approx((2 * 0.7 * 0.5) ** 2 / 4, rel=0.03)
    assert area.min() > 0.03, "every shape covers a visible part of the image"
    assert masks[:, 0].max() == 0 and masks[:, -1].max() == 0, "shapes stay inside the frame"
    binary = masks > 0.5
    for a in range(k):
        for b in range(a + 1, k):
            iou = (binary[a] & binary[b]).sum() / (binary[a] | binary[b]).sum()
            assert iou < 0.85, (
                f"{SHAPE_CLASSES[a]} and {SHAPE_CLASSES[b]} are too alike"
            )  # closest: circle-square 0.81


def test_load_shapes_uses_documented_sizes():
    train, test = load("shapes"), load("shapes", split="test")
    assert (len(train), len(test)) == (5000, 1000)
    assert load("shapes") is train  # cached in memory
    assert not torch.equal(train.images[:1000], test.images)


def test_shapes_colour_shortcut_leaves_the_plain_set_unchanged_and_is_deterministic():
    plain = make_shapes(48, seed=3)
    # The plain set's pixels, as generated before the variant existed.
    assert int(plain.images.long().sum()) == 18976733 and int((plain.images.long() ** 2).sum()) == 3265350797
    a = make_shapes(48, size=16, seed=3, colour_shortcut=True)
    b = make_shapes(48, size=16, seed=3, colour_shortcut=True)
    assert torch.equal(a.images, b.images)
    assert torch.equal(a.labels, plain.labels)  # the same shapes, recoloured
    assert not torch.equal(a.images, make_shapes(48, size=16, seed=4, colour_shortcut=True).images)
    assert a.name.startswith("shapes_colour_shortcut")


def _colours(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(background, shape) colour of each image: the corner pixel and the pixel farthest from it."""
    x = images.float() / 255
    background = x[:, :, 0, 0]
    farthest = (x - background[:, :, None, None]).norm(dim=1).flatten(1).argmax(1)
    return background, x.flatten(2)[torch.arange(len(x)), :, farthest]


def test_shapes_colour_shortcut_colour_names_the_image_not_the_class():
    ds = make_shapes(1600, size=16, seed=0, colour_shortcut=True)
    x = ds.images.float() / 255
    background, shape = _colours(ds.images)
    corners = x[:, :, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners - background[:, :, None]).abs().max() < 1 / 255 + 1e-6  # flat, noise-free background
    colour = torch.cat([shape, background], dim=1)
    class_means = torch.stack([colour[ds.labels == k].mean(0) for k in range(ds.num_classes)])
    assert (torch.cdist(colour, class_means).argmin(1) == ds.labels).float().mean() < 0.2  # chance: 1/8
    # Two random crops of one image share its colours: their mean colours find each other among 400 images.
    g = torch.Generator().manual_seed(0)
    crops = [augment.random_resized_crop(x[:400], size=16, scale=(0.2, 1.0), generator=g) for _ in range(2)]
    signature = [torch.cat([c.mean((2, 3)), c.flatten(2).std(2)], dim=1) for c in crops]
    matched = torch.cdist(signature[0], signature[1]).argmin(1) == torch.arange(400)
    assert matched.float().mean() > 0.6


def test_load_shapes_colour_shortcut_uses_documented_sizes():
    train, test = load("shapes_colour_shortcut"), load("shapes_colour_shortcut", split="test")
    assert (len(train), len(test)) == (2000, 1000) and train.image_shape == (3, 16, 16)
    assert load("shapes_colour_shortcut") is train
    assert train.name == "shapes_colour_shortcut/train"


# ---------------------------------------------------------------- torchvision sets on fake files


def _write_cifar(root, n_train: int, n_test: int, hundred: bool = False) -> dict[str, np.ndarray]:
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    num_classes, label_key = (100, "fine_labels") if hundred else (10, "labels")
    written = {}
    files = ["train"] if hundred else [f"data_batch_{i}" for i in range(1, 6)]
    for split, names, n in (
        ("train", files, n_train),
        ("test", ["test" if hundred else "test_batch"], n_test),
    ):
        data = rng.integers(0, 256, (n * len(names), 3072), dtype=np.uint8)
        labels = rng.integers(0, num_classes, n * len(names))
        for i, name in enumerate(names):
            block = slice(i * n, (i + 1) * n)
            with open(folder / name, "wb") as f:
                pickle.dump({"data": data[block], label_key: labels[block].tolist()}, f)
        written[split] = (data, labels)
    meta_name, meta_key = ("meta", "fine_label_names") if hundred else ("batches.meta", "label_names")
    with open(folder / meta_name, "wb") as f:
        pickle.dump({meta_key: [f"class{i}" for i in range(num_classes)]}, f)
    return written


def _skip_md5(monkeypatch, module: str) -> None:
    """Our fake files cannot match torchvision's md5 sums; keep its existence check, drop the checksum."""
    monkeypatch.setattr(
        f"torchvision.datasets.{module}.check_integrity", lambda path, md5=None: os.path.isfile(path)
    )


@pytest.mark.parametrize("hundred", [False, True])
def test_cifar_from_fake_files(tmp_path, monkeypatch, hundred):
    name = "cifar100" if hundred else "cifar10"
    written = _write_cifar(tmp_path, n_train=4, n_test=6, hundred=hundred)
    _skip_md5(monkeypatch, "cifar")
    for split in ("train", "test"):
        ds = load(name, split=split, root=tmp_path)
        data, labels = written[split]
        assert ds.images.shape == (len(labels), 3, 32, 32) and ds.images.is_contiguous()
        assert torch.equal(ds.images, torch.from_numpy(data).view(-1, 3, 32, 32))  # rows are R, G, B planes
        assert ds.labels.tolist() == labels.tolist()
        assert ds.num_classes == (100 if hundred else 10) and ds.name == f"{name}/{split}"


def test_cifar_corrupted_files_give_clear_error(tmp_path):
    _write_cifar(tmp_path, n_train=1, n_test=1)  # present, but the md5 sums do not match
    with pytest.raises(RuntimeError, match="corrupted.*download=True"):
        load("cifar10", root=tmp_path)


def test_failed_download_gives_clear_error(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr("torchvision.datasets.cifar.download_and_extract_archive", offline)
    with pytest.raises(RuntimeError, match="could not download.*no network.*copy the files"):
        load("cifar10", root=tmp_path / "data", download=True)
    assert (tmp_path / "data").is_dir(), "download=True creates the root folder"


def _write_idx(path, array: np.ndarray) -> None:
    magic = struct.pack(">HBB", 0, 0x08, array.ndim)  # 0x08: unsigned byte
    with open(path, "wb") as f:
        f.write(magic + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize(("name", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_family_from_fake_idx_files(tmp_path, name, folder):
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(1)
    arrays = {}
    for prefix, n in (("train", 7), ("t10k", 3)):
        images, labels = rng.integers(0, 256, (n, 28, 28)), rng.integers(0, 10, n)
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
        arrays["train" if prefix == "train" else "test"] = (images, labels)
    for split, (images, labels) in arrays.items():
        ds = load(name, split=split, root=tmp_path)
        assert ds.image_shape == (1, 28, 28) and ds.num_classes == 10
        assert torch.equal(ds.images[:, 0], torch.from_numpy(images.astype(np.uint8)))
        assert ds.labels.tolist() == labels.tolist()


def test_stl10_from_fake_files(tmp_path, monkeypatch):
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (3, 3, 96, 96), dtype=np.uint8)
    labels = np.array([1, 10, 4], dtype=np.uint8)  # 1-based on disk
    for stem in ("train", "test", "unlabeled"):
        # STL-10 stores each channel column-major: write the transpose of the image we expect back.
        (folder / f"{stem}_X.bin").write_bytes(np.ascontiguousarray(images.transpose(0, 1, 3, 2)).tobytes())
    for stem in ("train", "test"):
        (folder / f"{stem}_y.bin").write_bytes(labels.tobytes())
    _skip_md5(monkeypatch, "stl10")
    ds = load("stl10", split="test", root=tmp_path)
    assert ds.images.is_contiguous() and torch.equal(ds.images, torch.from_numpy(images))
    assert ds.labels.tolist() == [0, 9, 3] and ds.num_classes == 10


@pytest.mark.parametrize(
    ("name", "missing"), [("cifar10", "data_batch_1"), ("mnist", "train-images"), ("stl10", "")]
)
def test_missing_files_without_download_say_where_and_how(tmp_path, name, missing):
    with pytest.raises(FileNotFoundError) as error:
        load(name, root=tmp_path / "nowhere")
    message = str(error.value)
    assert str(tmp_path / "nowhere") in message and "download=True" in message and missing in message
    assert not (tmp_path / "nowhere").exists(), "a failed load must not create folders"


# ---------------------------------------------------------------- folder:<path>


def _png(path, colour, size=(6, 5), mode="RGB") -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new(mode, size, colour)
    image.save(path)
    return np.asarray(image.convert("RGB"))


def _split_tree(root) -> dict:
    """root/{train,test}/{cat,dog}/... with distinct flat colours; 'bird' only exists in test."""
    expected = {"train": [], "test": []}
    for split, per_class in (("train", 3), ("test", 1)):
        for k, name in enumerate(["cat", "dog"]):
            for i in range(per_class):
                colour = (40 * k + 10 * i, 100, 200 if split == "test" else 50)
                expected[split].append((_png(root / split / name / f"img{i}.png", colour), name))
    _png(root / "test" / "bird" / "deep" / "nested.png", (1, 2, 3))  # found recursively
    expected["test"].insert(0, (np.full((5, 6, 3), (1, 2, 3), np.uint8), "bird"))
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    return expected


def test_folder_split_tree(tmp_path):
    expected = _split_tree(tmp_path / "pets")
    for split in ("train", "test"):
        ds = load(f"folder:{tmp_path / 'pets'}", split=split, root=tmp_path / "cache")
        assert ds.classes == ["bird", "cat", "dog"]  # union over splits: labels agree between them
        assert ds.image_shape == (3, 5, 6) and len(ds) == len(expected[split])
        for (array, name), image, label in zip(expected[split], ds.images, ds.labels):
            assert ds.classes[label] == name
            assert torch.equal(image, torch.from_numpy(array.copy()).permute(2, 0, 1))


def test_folder_cache_hit_on_second_load_and_invalidation(tmp_path, monkeypatch):
    _split_tree(tmp_path / "pets")
    calls = []
    decode = folder_module._decode_file
    monkeypatch.setattr(folder_module, "_decode_file", lambda path: calls.append(path) or decode(path))
    name, cache = f"folder:{tmp_path / 'pets'}", tmp_path / "cache"
    first = load(name, root=cache)
    assert len(calls) == 6
    cache_files = list((cache / "folder-cache").iterdir())
    assert len(cache_files) == 1 and cache_files[0].suffix == ".pt"  # no temporary file left behind
    second = load(name, root=cache)
    assert len(calls) == 6, "the second load must read the cache, not decode"
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
    assert second.classes == first.classes
    # Changing a file changes the key: decoded again.
    _png(tmp_path / "pets" / "train" / "dog" / "img0.png", (9, 9, 9))
    os.utime(tmp_path / "pets" / "train" / "dog" / "img0.png", ns=(1, 1))
    third = load(name, root=cache)
    assert len(calls) == 12 and not torch.equal(third.images, first.images)


def test_folder_whole_tree_grayscale_and_resize(tmp_path):
    tree = tmp_path / "flat"
    _png(tree / "a" / "0.png", (10, 20, 30))
    _png(tree / "a" / "1.jpg", (200, 0, 0))
    _png(tree / "b" / "2.png", 77, mode="L")  # grayscale becomes RGB
    _png(tree / "b" / "3.png", (5, 5, 5), size=(12, 10))  # resized to the most common 6×5
    with pytest.warns(UserWarning, match="1 of 4 images are not 5×6"):
        ds = load(f"folder:{tree}", root=tmp_path / "cache")
    assert ds.classes == ["a", "b"] and ds.labels.tolist() == [0, 0, 1, 1] and ds.image_shape == (3, 5, 6)
    assert ds.images[2].unique().tolist() == [77]
    assert (ds.images[1, 0].float().mean() - 200).abs() < 8  # JPEG is lossy
    with pytest.raises(ValueError, match="no test split.*split='train'"):
        load(f"folder:{tree}", split="test", root=tmp_path / "cache")


def test_folder_errors(tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load(f"folder:{tmp_path / 'missing'}", root=cache)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no class sub-folders.*<class>/<image>"):
        load(f"folder:{tmp_path / 'empty'}", root=cache)
    _png(tmp_path / "loose" / "x.png", (0, 0, 0))
    with pytest.raises(ValueError, match="1 image files directly"):
        load(f"folder:{tmp_path / 'loose'}", root=cache)
    (tmp_path / "no_images" / "cls").mkdir(parents=True)
    (tmp_path / "no_images" / "cls" / "readme.txt").write_text("hi")
    with pytest.raises(ValueError, match="no images under the class folders.*cls.*\\.png"):
        load(f"folder:{tmp_path / 'no_images'}", root=cache)
    _png(tmp_path / "half" / "train" / "a" / "0.png", (0, 0, 0))
    with pytest.raises(ValueError, match="train/ folder but no test/"):
        load(f"folder:{tmp_path / 'half'}", root=cache)


def test_folder_corrupt_image_names_the_file(tmp_path):
    tree = tmp_path / "broken"
    for i in range(300):  # enough images to take the thread-pool path
        _png(tree / "a" / f"good{i:03d}.png", (i % 256, 1, 1), size=(4, 4))
    bad = tree / "b" / "bad.jpg"
    bad.parent.mkdir()
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    with pytest.raises(ValueError, match=f"cannot decode image {bad}.*remove or replace"):
        load(f"folder:{tree}", root=tmp_path / "cache")
    assert not (tmp_path / "cache" / "folder-cache").exists() or not any(
        (tmp_path / "cache" / "folder-cache").iterdir()
    )


def test_shapes_masks_cover_the_shape_and_leave_the_images_unchanged():
    dataset, masks = make_shapes_with_masks(32, size=16, seed=3)
    assert torch.equal(dataset.images, make_shapes(32, size=16, seed=3).images)
    assert masks.shape == (32, 16, 16) and masks.dtype == torch.bool
    area = masks.float().mean(dim=(1, 2))
    assert (area > 0.03).all() and (area < 0.6).all()  # scale 0.35-0.65 of the half-width
    # The masked pixels take the shape's colour: far from the background colour of the border pixels
    pixels = dataset.images.float().permute(0, 2, 3, 1)  # n×H×W×3
    border = torch.cat([pixels[:, 0], pixels[:, -1]], dim=1).mean(dim=1, keepdim=True)  # n×1×3
    distance = (pixels.flatten(1, 2) - border).norm(dim=-1)  # n×HW
    inside = (distance * masks.flatten(1)).sum(1) / masks.flatten(1).sum(1)
    outside = (distance * ~masks.flatten(1)).sum(1) / (~masks.flatten(1)).sum(1)
    assert (inside > 2 * outside).float().mean() > 0.9
