"""WebDataset shards: packing, streaming over ranks and workers, resume, bad input, training, evaluation."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sslcookbook import data
from sslcookbook.cli import main as cli_main
from sslcookbook.data.generated import write_image_folder
from sslcookbook.data.shards import ShardDataset, ShardError, pack

# torchvision 0.29 deprecates its decoders in favour of TorchCodec on every call; they still work.
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities")
CLASSES = ("ant", "bee", "cow")
# ../shared/data/cifar10 beside the checkout (or beside the folder holding a git worktree of it)
_REPO = Path(__file__).resolve().parents[1]
CIFAR = (
    next(
        (
            p
            for p in (_REPO.parent / "shared", _REPO.parent.parent / "shared")
            if (p / "data" / "cifar10").is_dir()
        ),
        _REPO.parent / "shared",
    )
    / "data"
    / "cifar10"
    / "cifar10_jpeg.npz"
)


def make_folder(root: Path, per_class: int = 8, **options) -> Path:
    """``per_class`` generated images of each of CLASSES (16×16 JPEGs unless ``options`` say otherwise),
    tinted by class, so that the class is visible in the pixels."""
    options = {"heights": (16, 16), "widths": (16, 16), **options}
    return write_image_folder(root, per_class * len(CLASSES), classes=CLASSES, **options)


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> tuple[Path, Path, dict]:
    """24 lossless PNGs of sizes 16..20 × 16..28 (3 classes), packed in 6 shards of 4."""
    base = tmp_path_factory.mktemp("shards")
    folder = make_folder(base / "src", heights=(16, 20), widths=(16, 28), fmt="PNG")
    index = pack(folder, base / "out", shard_size=4)
    return folder, base / "out", index


def _all_indices(dataset: ShardDataset, workers: int) -> list[int]:
    return [i for batch in dataset.batches(workers=workers) for i in batch[2].tolist()]


def test_pack_round_trip_every_image_and_label(packed):
    folder, out, index = packed
    train = index["train"]
    assert train["count"] == 24 and len(train["shards"]) == 6 and train["skipped"] == []
    assert (
        train["classes"] == list(CLASSES) and json.loads((out / "train" / "index.json").read_text()) == train
    )
    found = {}
    for shard in sorted((out / "train").glob("shard-*.tar")):
        with tarfile.open(shard) as tar:
            names = tar.getnames()
            for name in names:
                if name.endswith(".path"):
                    key = name[: -len(".path")]
                    path = tar.extractfile(name).read().decode()
                    label = int(tar.extractfile(key + ".cls").read())
                    found[path] = (label, tar.extractfile(key + ".png").read())
    expected = {str(p): CLASSES.index(p.parent.name) for p in folder.rglob("*.png")}
    assert {p: label for p, (label, _) in found.items()} == expected
    for path, (_, data_bytes) in found.items():  # not re-encoded: the very bytes of the file
        assert data_bytes == Path(path).read_bytes()
    # and decoded through the stream: the exact pixels at the centre-crop size of a same-sized image
    stream = data.load(f"shards:{out}?size=16").with_options(train=False, batch_size=32)
    images, labels, indices, _ = next(iter(stream.batches()))
    assert images.shape == (24, 3, 16, 16) and images.dtype == torch.uint8
    for image, label in zip(images, labels):
        assert image[label % 3].float().mean() > 120  # the class's colour channel survived
    # the pack order is the seed's permutation of the sorted file list, whatever the run
    tars = sorted((out / "train").glob("*.tar"))
    keys = [int(n.split(".")[0]) for t in tars for n in tarfile.open(t).getnames() if n.endswith(".cls")]
    assert keys == torch.randperm(24, generator=torch.Generator().manual_seed(0)).tolist()
    again = pack(folder, out.parent / "again", shard_size=4)
    assert again["train"]["shards"] == index["train"]["shards"]


def test_pack_reencodes_only_when_asked(tmp_path):
    folder = make_folder(tmp_path / "src", per_class=2, heights=(40, 40), widths=(60, 60))
    index = pack(folder, tmp_path / "out", max_side=30, quality=80)["train"]
    stream = data.load(f"shards:{tmp_path / 'out'}")
    assert index["median_short_side"] == 20 and stream.size == 20
    with tarfile.open(tmp_path / "out" / "train" / "shard-000000.tar") as tar:
        jpg = next(n for n in tar.getnames() if n.endswith(".jpg"))
        assert Image.open(io.BytesIO(tar.extractfile(jpg).read())).size == (30, 20)


def test_pack_skips_unreadable_files_by_name_and_cli(tmp_path, capsys):
    folder = make_folder(tmp_path / "src", per_class=3)
    (folder / "ant" / "broken.jpg").write_bytes(b"not an image")
    good = sorted((folder / "bee").glob("*.jpg"))[0].read_bytes()
    (folder / "bee" / "cut.jpg").write_bytes(good[: len(good) // 2])  # a truncated JPEG
    assert cli_main(["pack", str(folder), str(tmp_path / "out"), "--shard-size", "4"]) == 0
    printed = capsys.readouterr().out
    assert "broken.jpg" in printed and "cut.jpg" in printed and "2 unreadable files skipped" in printed
    index = json.loads((tmp_path / "out" / "train" / "index.json").read_text())
    assert index["count"] == 9 and {Path(s["path"]).name for s in index["skipped"]} == {
        "broken.jpg",
        "cut.jpg",
    }


def test_pack_list_file_and_train_test_tree(tmp_path):
    folder = make_folder(tmp_path / "src", per_class=2)
    listing = tmp_path / "list.csv"
    listing.write_text(
        "# path,class\n" + "".join(f"{p},{p.parent.name}\n" for p in sorted(folder.rglob("*.jpg")))
    )
    assert pack(listing, tmp_path / "listed")["train"]["count"] == 6
    tree = tmp_path / "tree"
    make_folder(tree / "train", per_class=2)
    make_folder(tree / "test", per_class=1, seed=1)
    index = pack(tree, tmp_path / "both")
    assert index["train"]["count"] == 6 and index["test"]["count"] == 3
    assert len(data.load(f"shards:{tmp_path / 'both'}", "test")) == 3


@pytest.mark.parametrize("world", [1, 2, 3])
def test_ranks_cover_every_sample_once_per_epoch(packed, world):
    _, out, _ = packed
    stream = data.load(f"shards:{out}?size=8").with_options(batch_size=5, shuffle_buffer=7, world_size=world)
    for epoch in (0, 1):
        seen = []
        for rank in range(world):
            seen += _all_indices(stream.with_options(rank=rank, epoch=epoch), workers=0)
        assert sorted(seen) == list(range(24))


def test_workers_cover_every_sample_once_and_keep_the_order(packed):
    _, out, _ = packed
    stream = data.load(f"shards:{out}?size=8").with_options(batch_size=5, world_size=2, rank=1, epoch=3)
    alone = sorted(_all_indices(stream, workers=0))
    for workers in (1, 2):
        seen = _all_indices(stream, workers=workers)
        assert sorted(seen) == alone
        assert seen == _all_indices(stream, workers=workers)  # deterministic for a fixed worker count
    both = _all_indices(stream.with_options(rank=0), workers=2) + _all_indices(stream, workers=2)
    assert sorted(both) == list(range(24))


def test_shuffle_is_seeded_and_changes_with_epoch(packed):
    _, out, _ = packed
    stream = data.load(f"shards:{out}?size=8").with_options(batch_size=24)
    first = next(iter(stream.batches()))
    again = next(iter(stream.batches()))
    assert torch.equal(first[2], again[2]) and torch.equal(first[0], again[0])
    other = next(iter(stream.with_options(epoch=1).batches()))
    assert not torch.equal(first[2], other[2])
    assert not torch.equal(first[2], next(iter(stream.with_options(seed=5).batches()))[2])


def test_bad_inputs_name_the_problem(tmp_path, packed):
    _, out, _ = packed
    with pytest.raises(FileNotFoundError, match="matches no .tar files"):
        data.load(f"shards:{tmp_path}/nothing-*.tar")
    with pytest.raises(FileNotFoundError, match="no index.json"):
        data.load(f"shards:{tmp_path}")
    with pytest.raises(ValueError, match="unknown shards option"):
        data.load(f"shards:{out}?colour=1")
    with pytest.raises(ShardError, match="every rank needs at least one"):
        data.load(f"shards:{out}").with_options(world_size=7, rank=0).rank_shards()
    glob = data.load(f"shards:{out}/train/shard-00000[01].tar")
    assert len(glob) == 8 and len(glob.shards) == 2


def _copy_pack(out: Path, target: Path) -> Path:
    target.mkdir(parents=True)
    for file in (out / "train").iterdir():
        (target / file.name).write_bytes(file.read_bytes())
    return target


def test_truncated_shard_warns_and_keeps_the_rest(tmp_path, packed):
    folder = _copy_pack(packed[1], tmp_path / "cut")
    shard = folder / "shard-000002.tar"
    shard.write_bytes(shard.read_bytes()[:1500])  # inside the first member's data
    stream = data.load(f"shards:{folder}?size=8").with_options(train=False)
    with pytest.warns(UserWarning, match="shard-000002.tar is damaged or truncated"):
        seen = _all_indices(stream, workers=0)
    assert len(seen) == 20 and not set(range(8, 12)) & set(seen)


def _rewrite(shard: Path, change) -> None:
    with tarfile.open(shard) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(shard, "w") as tar:
        for member, payload in change(members):
            member.size = len(payload)
            tar.addfile(member, io.BytesIO(payload))


def test_non_image_member_is_a_counted_skip(tmp_path, packed):
    folder = _copy_pack(packed[1], tmp_path / "odd")
    first = sorted(m for m in tarfile.open(folder / "shard-000000.tar").getnames() if m.endswith(".png"))[0]
    _rewrite(folder / "shard-000000.tar", lambda ms: [(m, p) for m, p in ms if m.name != first])
    stream = data.load(f"shards:{folder}?size=8").with_options(train=False)
    with pytest.warns(UserWarning, match="has no image member"):
        assert len(_all_indices(stream, workers=0)) == 23


def test_label_outside_the_classes_is_an_error(tmp_path, packed):
    folder = _copy_pack(packed[1], tmp_path / "label")

    def relabel(members):
        return [(m, b"7" if m.name.endswith(".cls") else p) for m, p in members]

    _rewrite(folder / "shard-000001.tar", relabel)
    stream = data.load(f"shards:{folder}?size=8").with_options(train=False)
    with pytest.raises(ShardError, match="label 7, outside the 3 classes"):
        _all_indices(stream, workers=0)


def _simclr(image_size: int):
    from sslcookbook.recipes import get_recipe

    resolved = get_recipe("simclr").resolve("smoke", {"backbone.width": 8})
    torch.manual_seed(0)
    return resolved.build(in_channels=3, image_size=image_size), resolved.views((3, image_size, image_size))


class _StopAt:
    """Views that raise KeyboardInterrupt (as Ctrl-C would) at call ``at``: ``fit`` checkpoints and stops."""

    def __init__(self, views, at: int | None):
        self.views, self.at, self.calls = views, at, 0

    def __call__(self, images, generator=None):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.views(images, generator=generator)


def _deepcluster(image_size: int):
    """The DeepCluster v2 recipe at tiny sizes: 4 and 5 clusters of the 24 packed images."""
    from sslcookbook.recipes import get_recipe

    overrides = {"backbone.width": 8, "method.num_prototypes": (4, 5), "method.bank_batch_size": 10}
    resolved = get_recipe("deepcluster_v2").resolve("smoke", overrides)
    torch.manual_seed(0)
    return resolved.build(in_channels=3, image_size=image_size), resolved.views((3, image_size, image_size))


def _run(stream, directory, stop_at=None, build=_simclr):
    from sslcookbook.train import fit

    method, views = build(12)
    return fit(
        method, stream, _StopAt(views, stop_at), checkpoint_dir=directory, epochs=2, batch_size=8, lr=0.05,
        progress=False, device="cpu",
    )  # fmt: skip


def test_simclr_on_shards_resumes_exactly_at_an_epoch_boundary(tmp_path, packed, capsys):
    from sslcookbook.train import load_checkpoint

    stream = data.load(f"shards:{packed[1]}?size=12").with_options(shuffle_buffer=6)
    history = _run(stream, tmp_path / "a")
    assert [row["step"] for row in history.steps] == list(range(6)) and all(np.isfinite(history.losses))
    assert load_checkpoint(tmp_path / "a" / "last.pt")["epoch"] == 2
    with pytest.raises(KeyboardInterrupt):
        _run(stream, tmp_path / "b", stop_at=4)  # the first step of epoch 1
    assert "interrupted" in capsys.readouterr().out
    state = load_checkpoint(tmp_path / "b" / "last.pt")
    assert (state["epoch"], state["step_in_epoch"]) == (1, 0)
    resumed = _run(stream, tmp_path / "b")
    assert [row["step"] for row in resumed.steps] == list(range(6))
    assert np.allclose(resumed.losses, history.losses, atol=1e-5)  # same shards, crops, buffer, views


def test_deepcluster_v2_trains_on_shards_with_a_bank_of_every_image(packed):
    from sslcookbook.train import fit

    stream = data.load(f"shards:{packed[1]}?size=12").with_options(shuffle_buffer=6)
    method, views = _deepcluster(12)
    history = fit(method, stream, views, epochs=1, batch_size=8, lr=0.05, progress=False, device="cpu")
    assert len(history.steps) == 3 and all(np.isfinite(history.losses))
    assert method.bank.shape[:2] == (2, 24) and (method.bank.norm(dim=-1) > 0.99).all()  # every row filled
    assert method.assignments.shape == (2, 24) and (method.assignments >= 0).all()
    assert int(method.clustered_epoch) == 0
    # the stream's rows land at their global index: two workers interleave the shards, yet (with batch
    # statistics out of the way) the bank is the one of the images in memory, in order
    method.eval()
    method.fill_bank(stream.with_options(workers=2))
    streamed = method.bank.clone()
    method.fill_bank(stream.materialize().images)
    torch.testing.assert_close(streamed, method.bank)


def test_deepcluster_v2_on_shards_resumes_exactly_at_an_epoch_boundary(tmp_path, packed):
    from sslcookbook.train import load_checkpoint

    stream = data.load(f"shards:{packed[1]}?size=12").with_options(shuffle_buffer=6)
    history = _run(stream, tmp_path / "a", build=_deepcluster)
    with pytest.raises(KeyboardInterrupt):
        _run(stream, tmp_path / "b", stop_at=4, build=_deepcluster)  # the first step of epoch 1
    resumed = _run(stream, tmp_path / "b", build=_deepcluster)
    assert [row["step"] for row in resumed.steps] == list(range(6)) and all(np.isfinite(resumed.losses))
    assert np.allclose(resumed.losses, history.losses, atol=1e-5)  # same bank, clusters, shards, views
    ends = [load_checkpoint(tmp_path / run / "last.pt")["method"] for run in ("a", "b")]
    assert torch.equal(ends[0]["assignments"], ends[1]["assignments"])
    torch.testing.assert_close(ends[0]["bank"], ends[1]["bank"])


def test_a_folder_stream_trains_deepcluster_v2_and_an_image_only_hook_is_refused(tmp_path, monkeypatch):
    from sslcookbook.methods.base import SSLMethod
    from sslcookbook.train import fit

    monkeypatch.setenv("SSLCOOKBOOK_STREAM_ABOVE_MB", "0.001")
    stream = data.load(f"folder:{make_folder(tmp_path / 'src')}", root=tmp_path / "cache")
    assert isinstance(stream, ShardDataset) and stream.size == 16
    method, views = _deepcluster(16)
    history = fit(method, stream, views, epochs=1, batch_size=12, progress=False, device="cpu")
    assert len(history.steps) == 2 and all(np.isfinite(history.losses))
    assert method.bank.shape[1] == 24 and (method.assignments >= 0).all()

    class TensorsOnly(SSLMethod):  # a before_epoch that needs the images, without streams_before_epoch
        def before_epoch(self, epoch, images, seed=0):
            images.float()

    with pytest.raises(TypeError, match="streams_before_epoch"):
        fit(TensorsOnly(), stream, views, epochs=1, batch_size=12, progress=False, device="cpu")


def test_mid_epoch_resume_continues_from_the_next_unseen_shard(tmp_path, packed):
    from sslcookbook.data.shards import _read_stream_state

    stream = data.load(f"shards:{packed[1]}?size=12").with_options(shuffle_buffer=0)
    order = stream.rank_shards(0, 1, epoch=1)
    with pytest.raises(KeyboardInterrupt):
        _run(stream, tmp_path, stop_at=5)  # after one step (8 images: two shards of 4) of epoch 1
    assert _read_stream_state(tmp_path, 0, 1) == frozenset(order[:2])
    rest = {int(s) for batch in stream.with_options(epoch=1, skip_shards=frozenset(order[:2])).batches()
            for s in batch[3]}  # fmt: skip
    assert rest == set(order[2:])
    resumed = _run(stream, tmp_path)
    assert [row["step"] for row in resumed.steps] == list(range(6)) and all(np.isfinite(resumed.losses))


def test_embed_streams_features_and_labels(packed):
    from sslcookbook.evaluate.embedding import embed_stream

    stream = data.load(f"shards:{packed[1]}?size=12").with_options(batch_size=5)
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 12 * 12, 4))
    features, labels = embed_stream(encoder, stream)
    assert features.shape == (24, 4) and labels.shape == (24,)
    assert torch.bincount(labels).tolist() == [8, 8, 8]
    held = stream.materialize()
    assert torch.allclose(features, encoder(held.images.float() / 255), atol=1e-5)


def test_cifar10_jpeg_copy_streams_and_trains(tmp_path):
    if not CIFAR.is_file():
        pytest.skip(f"the offline CIFAR-10 JPEG copy is not at {CIFAR}")
    pack_file = np.load(CIFAR)
    blob, offsets, labels = pack_file["test_jpeg"], pack_file["test_offsets"], pack_file["test_labels"]
    classes = [str(c) for c in pack_file["classes"]]
    for i in range(300):
        folder = tmp_path / "cifar" / classes[int(labels[i])]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:05d}.jpg").write_bytes(blob[offsets[i] : offsets[i + 1]].tobytes())
    index = pack(tmp_path / "cifar", tmp_path / "out", shard_size=50)["train"]
    assert index["count"] == 300 and index["median_short_side"] == 32
    stream = data.load(f"shards:{tmp_path / 'out'}")
    assert stream.image_shape == (3, 32, 32) and len(stream.shards) == 6
    assert sorted(_all_indices(stream, workers=0)) == list(range(300))
    from sslcookbook.train import fit

    method, views = _simclr(32)
    history = fit(
        method, stream, views, epochs=1, batch_size=64, max_steps_per_epoch=2, progress=False, device="cpu"
    )
    assert len(history.steps) == 2 and all(np.isfinite(history.losses))


def _fit_rank(rank: int, shards: str, out: str, recipe: str) -> None:
    from sslcookbook.train import fit

    method, views = {"simclr": _simclr, "deepcluster_v2": _deepcluster}[recipe](12)
    stream = data.load(f"shards:{shards}?size=12")
    history = fit(method, stream, views, epochs=1, batch_size=8, progress=False, device="cpu")
    vector = torch.nn.utils.parameters_to_vector(method.parameters()).detach()
    memory = {k: v for k, v in method.state_dict().items() if k in ("bank", "assignments")}
    torch.save(
        {"steps": len(history.steps), "params": vector, "shards": stream.rank_shards(), "memory": memory},
        f"{out}/{rank}.pt",
    )


@pytest.mark.skipif(
    not os.environ.get("SSLCOOKBOOK_GLOO_SHARDS"),
    reason="two spawned gloo processes take 15 s to 2 min on 2 cores: set SSLCOOKBOOK_GLOO_SHARDS=1 to run",
)
@pytest.mark.parametrize("recipe", ["simclr", "deepcluster_v2"])
def test_fit_on_two_gloo_ranks_splits_the_shards_and_stays_in_step(tmp_path, packed, recipe):
    from gloo_group import run_on_ranks

    run_on_ranks(_fit_rank, str(packed[1]), str(tmp_path), recipe, world=2)
    first, second = (torch.load(tmp_path / f"{r}.pt") for r in (0, 1))
    assert first["steps"] == second["steps"] == 3  # 12 images per rank, local batches of 4
    assert sorted(first["shards"] + second["shards"]) == list(range(6))
    assert torch.equal(first["params"], second["params"])  # DDP kept the replicas equal
    for name, value in first["memory"].items():  # DeepCluster v2: every rank holds the same whole bank
        assert value.shape[1] == 24 and torch.equal(value, second["memory"][name]), name


def test_a_folder_above_the_threshold_streams(tmp_path, monkeypatch):
    folder = make_folder(tmp_path / "src", per_class=4, widths=(16, 24))
    (folder / "ant" / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot decode image"):  # below the threshold: decoded into memory
        data.load(f"folder:{folder}", root=tmp_path / "cache")
    monkeypatch.setenv("SSLCOOKBOOK_STREAM_ABOVE_MB", "0.001")  # 13 images of ~1 KB decoded each
    stream = data.load(f"folder:{folder}", root=tmp_path / "cache")
    assert isinstance(stream, ShardDataset) and len(stream) == 13 and stream.size == 16
    with pytest.warns(UserWarning, match="broken.jpg"):
        images, labels, indices, _ = next(iter(stream.with_options(train=False, batch_size=32).batches()))
    assert images.shape == (12, 3, 16, 16) and torch.bincount(labels).tolist() == [4, 4, 4]
    monkeypatch.setenv("SSLCOOKBOOK_STREAM_ABOVE_MB", "lots")
    with pytest.raises(ValueError, match="must be a number of megabytes"):
        data.load(f"folder:{folder}", root=tmp_path / "cache")


def test_batched_decode_path_runs_on_the_cpu_too(tmp_path):
    """The GPU path (encoded bytes to the main process, one ``decode_jpeg`` call per batch) run with
    device="cpu", where torchvision accepts the same list call: the same images and labels come out."""
    folder = make_folder(tmp_path / "src", per_class=2, widths=(16, 24))
    pack(folder, tmp_path / "out", shard_size=3)
    stream = data.load(f"shards:{tmp_path / 'out'}?size=16").with_options(train=False, batch_size=6)
    encoded = stream.with_options(decode_device="cuda")  # workers leave the bytes encoded
    rows = list(encoded._samples(range(len(encoded.shards))))
    assert all(isinstance(image, tuple) and image[0] == "jpg" for image, *_ in rows)
    images, labels, indices, _ = encoded._decode_on_device(rows, torch.device("cpu"))
    expected = next(iter(stream.with_options(batch_size=6).batches()))
    assert torch.equal(labels, expected[1]) and torch.equal(indices, expected[2])
    assert torch.equal(images, expected[0])  # centre crops: no randomness, the same pixels


def test_subset_split_and_evaluation_sets_cut_whole_shards(packed):
    from sslcookbook.data.shards import evaluation_sets

    stream = data.load(f"shards:{packed[1]}?size=8")
    small = stream.subset(6, seed=0)
    assert len(small.shards) == 2 and len(small) == 8 and set(small.shards) <= set(stream.shards)
    rest, held = stream.split(0.2, seed=0)
    assert len(held.shards) == 1 and sorted(rest.shards + held.shards) == sorted(stream.shards)
    train, test = evaluation_sets(rest, held, n=10)
    assert train.images.shape == (10, 3, 8, 8) and test.images.shape == (4, 3, 8, 8)
    with pytest.raises(ValueError, match="has no test split"):  # as folder: says, so run_recipe holds out
        data.load(f"shards:{packed[1]}", "test")
