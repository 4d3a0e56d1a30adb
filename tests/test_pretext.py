"""Pretext tasks: the losses against references written one term at a time (fp64, values and gradients),
the batched transformations against what they promise, the memory bank and the methods' contracts."""

from __future__ import annotations

import math

import pytest
import torch
from gloo_group import run_on_ranks

from sslcookbook import augment, data
from sslcookbook.losses import (
    MemoryBank,
    estimate_log_z,
    instance_nce_loss,
    nonparametric_softmax_loss,
    transformation_loss,
    update_memory_bank,
)
from sslcookbook.methods import InstanceDiscrimination, Jigsaw, RelativePosition, RotationPrediction
from sslcookbook.methods.pretext import (
    NEIGHBOURS,
    crop_tiles,
    hamming_permutations,
    jigsaw_batch,
    patch_pairs,
    rotate_batch,
)
from sslcookbook.models import SmallCNN
from sslcookbook.train import TrainConfig, fit


def _unit(rows):
    return [r / math.sqrt(sum(v * v for v in r)) for r in rows]


def _dot(a, b):
    return sum(x * y for x, y in zip(a, b))


# ------------------------------------------------------------------------------------------------ losses


def test_transformation_loss_is_the_mean_negative_log_softmax_of_the_target():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 7, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([0, 6, 3, 3, 1])
    reference = 0
    for row, y in zip(logits, targets.tolist()):
        reference = reference - (row[y] - torch.log(sum(torch.exp(v) for v in row)))
    reference = reference / 5
    ours = transformation_loss(logits, targets)
    torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-12)
    (a,), (b,) = torch.autograd.grad(ours, logits), torch.autograd.grad(reference, logits)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_transformation_loss_rejects_bad_targets():
    with pytest.raises(TypeError, match="integer tensor"):
        transformation_loss(torch.randn(3, 4), torch.zeros(3))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        transformation_loss(torch.randn(3, 4), torch.zeros(4, dtype=torch.long))


def _bank_inputs(n=11, batch=4, dim=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(batch, dim, generator=g, dtype=torch.float64, requires_grad=True)
    bank = torch.nn.functional.normalize(torch.randn(n, dim, generator=g, dtype=torch.float64), dim=1)
    indices = torch.randperm(n, generator=g)[:batch]
    return f, bank, indices


def test_nonparametric_softmax_matches_wu_et_al_equation_2_term_by_term():
    f, bank, indices = _bank_inputs()
    tau = 0.07
    v = bank.tolist()
    reference = 0
    for row, i in zip(f, indices.tolist()):
        fn = row / row.norm()
        scores = [torch.exp(sum(fn[d] * v[j][d] for d in range(len(v[j]))) / tau) for j in range(len(v))]
        reference = reference - torch.log(scores[i] / sum(scores))
    reference = reference / len(indices)
    ours = nonparametric_softmax_loss(f, bank, indices, tau)
    torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-12)
    (a,), (b,) = torch.autograd.grad(ours, f), torch.autograd.grad(reference, f)
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_instance_nce_matches_wu_et_al_equations_5_to_7_term_by_term():
    f, bank, indices = _bank_inputs(n=13, batch=3)
    tau, m, n = 0.2, 6, 13
    g = torch.Generator().manual_seed(1)
    negatives = torch.randint(n, (3, m), generator=g)
    z = 2.5 * n  # any normaliser: the loss is a function of it
    reference = 0
    for row, i, noise in zip(f, indices.tolist(), negatives.tolist()):
        fn = row / row.norm()

        def h(j, fn=fn):
            p = torch.exp(sum(fn[d] * bank[j, d] for d in range(bank.shape[1])) / tau) / z
            return p / (p + m / n)

        reference = reference - torch.log(h(i)) - sum(torch.log(1 - h(j)) for j in noise)
    reference = reference / 3
    ours = instance_nce_loss(f, bank, indices, negatives, math.log(z), tau)
    torch.testing.assert_close(ours, reference, rtol=1e-11, atol=1e-12)
    (a,), (b,) = torch.autograd.grad(ours, f), torch.autograd.grad(reference, f)
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_estimate_log_z_is_n_times_the_mean_exponentiated_score():
    f, bank, _ = _bank_inputs(n=9, batch=3)
    negatives = torch.tensor([[0, 1, 2, 8], [3, 3, 4, 5], [6, 7, 0, 1]])
    fn = torch.nn.functional.normalize(f.detach(), dim=1)
    scores = [float(torch.exp(fn[i] @ bank[j] / 0.1)) for i in range(3) for j in negatives[i].tolist()]
    expected = math.log(9 * sum(scores) / len(scores))
    assert abs(float(estimate_log_z(f, bank, negatives, 0.1)) - expected) < 1e-10


def test_update_memory_bank_is_the_normalised_momentum_average():
    f, bank, indices = _bank_inputs()
    before = bank.clone()
    update_memory_bank(bank, indices, f, momentum=0.5)
    for slot in range(len(bank)):
        if slot in indices.tolist():
            row = f.detach()[indices.tolist().index(slot)]
            mixed = 0.5 * before[slot] + 0.5 * row / row.norm()
            torch.testing.assert_close(bank[slot], mixed / mixed.norm(), rtol=1e-12, atol=1e-12)
        else:
            torch.testing.assert_close(bank[slot], before[slot], rtol=0, atol=0)


def test_bank_losses_reject_bad_indices():
    f, bank, indices = _bank_inputs()
    with pytest.raises(TypeError, match="integer tensor"):
        nonparametric_softmax_loss(f, bank, indices.double())
    with pytest.raises(ValueError, match="one bank slot per feature row"):
        nonparametric_softmax_loss(f, bank, indices[:2])
    with pytest.raises(ValueError, match="temperature"):
        nonparametric_softmax_loss(f, bank, indices, 0.0)


# ------------------------------------------------------------------------------------------------ bank


def test_memory_bank_is_sized_once_and_loads_any_saved_size():
    bank = MemoryBank(4)
    assert len(bank) == 0
    bank.resize(6)
    assert bank.features.shape == (6, 4)
    torch.testing.assert_close(bank.features.norm(dim=1), torch.ones(6))
    bank.resize(6)  # the same size: kept
    with pytest.raises(ValueError, match="belongs to one training set"):
        bank.resize(7)
    fresh = MemoryBank(4)
    fresh.load_state_dict(bank.state_dict())
    torch.testing.assert_close(fresh.features, bank.features, rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="resize"):
        MemoryBank(4).update(torch.tensor([0]), torch.randn(1, 4))


# ------------------------------------------------------------------------------------------------ transforms


def test_rotate_batch_gives_the_four_rotations_with_their_angle():
    x = torch.arange(2 * 3 * 3, dtype=torch.float32).view(2, 1, 3, 3)
    rotated, targets = rotate_batch(x)
    assert rotated.shape == (8, 1, 3, 3) and targets.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    for k in range(4):
        for i in range(2):
            torch.testing.assert_close(rotated[2 * k + i, 0], torch.rot90(x[i, 0], k))
    with pytest.raises(ValueError, match="square"):
        rotate_batch(torch.zeros(1, 1, 3, 4))


def test_crop_tiles_reads_the_pixels_at_each_offset():
    x = torch.rand(2, 3, 6, 6)
    tiles = crop_tiles(x, torch.tensor([[0, 2], [1, 3]]), torch.tensor([[1, 0], [4, 2]]), 2)
    assert tiles.shape == (2, 2, 3, 2, 2)
    torch.testing.assert_close(tiles[0, 1], x[0, :, 2:4, 0:2])
    torch.testing.assert_close(tiles[1, 0], x[1, :, 1:3, 4:6])


def test_hamming_permutations_are_distinct_seeded_and_spread():
    perms = hamming_permutations(9, 20, seed=3)
    assert perms.shape == (20, 9)
    assert len({tuple(p) for p in perms.tolist()}) == 20
    assert all(sorted(p) == list(range(9)) for p in perms.tolist())
    torch.testing.assert_close(perms, hamming_permutations(9, 20, seed=3))
    distances = (perms.unsqueeze(0) != perms.unsqueeze(1)).sum(-1).float()
    g = torch.Generator().manual_seed(0)
    random_set = torch.stack([torch.randperm(9, generator=g) for _ in range(20)])
    random_distances = (random_set.unsqueeze(0) != random_set.unsqueeze(1)).sum(-1).float()
    assert distances.sum() / 380 > random_distances.sum() / 380 + 0.3  # farther apart than chance
    assert hamming_permutations(4, 24).shape == (24, 4)  # all of 4!
    with pytest.raises(ValueError, match="count"):
        hamming_permutations(3, 7)


def test_jigsaw_batch_shuffles_gapped_tiles_by_the_chosen_permutation():
    x = torch.rand(5, 2, 9, 9)
    perms = hamming_permutations(9, 10, seed=0)
    tiles, targets = jigsaw_batch(x, perms, grid=3, tile_size=3, generator=torch.Generator().manual_seed(0))
    assert tiles.shape == (5, 9, 2, 3, 3)  # tile = cell: no jitter, exact cells
    for b in range(5):
        for k, source in enumerate(perms[targets[b]].tolist()):
            r, c = divmod(source, 3)
            torch.testing.assert_close(tiles[b, k], x[b, :, 3 * r : 3 * r + 3, 3 * c : 3 * c + 3])
    # Smaller tiles stay inside their cells.
    small, _ = jigsaw_batch(x, perms, grid=3, tile_size=2, generator=torch.Generator().manual_seed(1))
    assert small.shape == (5, 9, 2, 2, 2)
    with pytest.raises(ValueError, match="at most"):
        jigsaw_batch(x, perms, grid=3, tile_size=4, generator=torch.Generator())


def test_patch_pairs_take_the_centre_and_the_named_neighbour_a_gap_apart():
    x = torch.rand(16, 1, 11, 11)
    centre, neighbour, positions = patch_pairs(
        x, 3, gap=1, jitter=0, generator=torch.Generator().manual_seed(0)
    )
    assert centre.shape == neighbour.shape == (16, 1, 3, 3)
    for b in range(16):
        torch.testing.assert_close(centre[b], x[b, :, 4:7, 4:7])
        r, c = NEIGHBOURS[positions[b]]
        torch.testing.assert_close(neighbour[b], x[b, :, 4 * r : 4 * r + 3, 4 * c : 4 * c + 3])
    # 8×8 images are zero-padded to hold the 11-pixel lattice; jitter moves patches within their cells.
    small = torch.rand(4, 1, 8, 8) + 1  # no zeros of its own
    c8, n8, _ = patch_pairs(small, 3, gap=1, jitter=0, generator=torch.Generator().manual_seed(0))
    assert (c8 > 0).all()  # the centre patch lies inside the image
    jittered, _, _ = patch_pairs(x, 2, gap=1, jitter=1, generator=torch.Generator().manual_seed(0))
    assert jittered.shape == (16, 1, 2, 2)


# ------------------------------------------------------------------------------------------------ methods


def _digits_batch(n=32):
    train = data.load("digits", "train").subset(n, seed=0)
    views = augment.preset("digits", train.image_shape, num_views=1)
    return train, views


@pytest.mark.parametrize(
    "build, classes, epochs",
    [
        (lambda: RotationPrediction(SmallCNN(1, width=8), hidden_dim=16), 4, 3),
        (lambda: Jigsaw(SmallCNN(1, width=16), grid=2, num_permutations=24, hidden_dim=64), 24, 6),
        (lambda: RelativePosition(SmallCNN(1, width=8), patch_size=3, gap=1, jitter=0, hidden_dim=16), 8, 3),
    ],
    ids=["rotation", "jigsaw", "relative_position"],
)
def test_transformation_methods_learn_their_task_on_the_digits(build, classes, epochs):
    torch.manual_seed(0)
    train, views = _digits_batch(512)
    method = build()
    config = TrainConfig(epochs=epochs, batch_size=64, optimizer="adamw", lr=3e-3, weight_decay=0.0)
    history = fit(method, train, views, config, device="cpu", progress=False)
    late = history.steps[-4:]
    accuracy = sum(r["accuracy"] for r in late) / len(late)
    assert accuracy > 1.8 / classes, accuracy  # chance is 1 / classes
    assert sum(r["loss"] for r in late) / len(late) < history.steps[0]["loss"] - 0.1
    assert method.embed(torch.rand(3, 1, 8, 8)).shape == (3, method.backbone.feature_dim)


def test_methods_draw_seeded_and_resumable_random_numbers():
    torch.manual_seed(0)
    a = Jigsaw(SmallCNN(1, width=8), grid=2, num_permutations=24, hidden_dim=16)
    g1 = a.generator(torch.device("cpu"))
    b = Jigsaw(SmallCNN(1, width=8), grid=2, num_permutations=24, hidden_dim=16)
    b.load_state_dict(a.state_dict())  # steps_drawn travels in the state dict
    assert torch.equal(
        torch.rand(3, generator=a.generator(torch.device("cpu"))),
        torch.rand(3, generator=b.generator(torch.device("cpu"))),
    )
    assert not torch.equal(
        torch.rand(3, generator=g1), torch.rand(3, generator=b.generator(torch.device("cpu")))
    )


@pytest.mark.parametrize("negatives", [None, 16])
def test_instance_discrimination_gets_each_images_index_from_fit_and_writes_its_slot(negatives):
    torch.manual_seed(0)
    train = data.load("digits", "train").subset(48, seed=0)
    identity = augment.preset("digits", train.image_shape, strength=0.0, num_views=1)
    method = InstanceDiscrimination(SmallCNN(1, width=8), embedding_dim=16, negatives=negatives)
    seen, step = [], method.training_step

    def recording_step(views, labels=None, indices=None):
        out = step(views, labels, indices=indices)
        seen.append((views[0].clone(), indices.clone(), method.bank.features.clone(), method._pending[1]))
        return out

    method.training_step = recording_step
    fit(method, train, identity, TrainConfig(epochs=2, batch_size=16), device="cpu", progress=False)
    assert method.bank.features.shape == (48, 16) and len(seen) == 6
    for k, (view, indices, bank_before, features) in enumerate(seen):
        # The indices name the batch's images, and the next step's bank holds their momentum update.
        torch.testing.assert_close(view, train.images[indices].float() / 255, rtol=0, atol=1e-6)
        expected = bank_before.clone()
        update_memory_bank(expected, indices, features, 0.5)
        after = seen[k + 1][2] if k + 1 < len(seen) else method.bank.features
        torch.testing.assert_close(after, expected, rtol=0, atol=1e-6)
    assert sorted(torch.cat([s[1] for s in seen[:3]]).tolist()) == list(range(48))  # one epoch: every slot
    if negatives:
        assert bool(method.z_estimated) and math.isfinite(float(method.log_z))
    method.training_step = step
    with pytest.raises(ValueError, match="indices"):
        method.training_step([torch.rand(4, 1, 8, 8)])


def test_instance_discrimination_without_a_bank_says_how_to_size_it():
    method = InstanceDiscrimination(SmallCNN(1, width=8), embedding_dim=8, negatives=None)
    with pytest.raises(RuntimeError, match="set_num_instances"):
        method.training_step([torch.rand(2, 1, 8, 8)], indices=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="bank_momentum"):
        InstanceDiscrimination(SmallCNN(1, width=8), bank_momentum=1.5)


# ------------------------------------------------------------------------------------------------ DDP


class _FlatEncoder(torch.nn.Module):
    """No BatchNorm: per-rank batch statistics would differ from one process's."""

    feature_dim = 16

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 16), torch.nn.Tanh())

    def forward(self, x):
        return self.net(x)


class _Images:
    def __init__(self):
        g = torch.Generator().manual_seed(1)
        self.images = torch.randint(0, 256, (24, 1, 3, 4), dtype=torch.uint8, generator=g)
        self.labels = torch.arange(24) % 3


def _identity_view(images, generator=None):
    return [images.float() / 255]


_DDP_CONFIG = TrainConfig(epochs=2, batch_size=8, lr=0.5, weight_decay=0.0)


def _instance_discrimination():
    torch.manual_seed(0)
    return InstanceDiscrimination(_FlatEncoder(), embedding_dim=8, temperature=0.2, negatives=None)


def _ddp_worker(rank: int, out: str):
    method = _instance_discrimination()
    fit(method, _Images(), _identity_view, _DDP_CONFIG, device="cpu", progress=False)
    torch.save(method.state_dict(), f"{out}.{rank}")


def test_instance_discrimination_on_two_ranks_keeps_one_bank_equal_to_one_process(tmp_path):
    """Each rank encodes its half of every batch with its own indices; the gathered update writes both
    halves into both ranks' banks: the banks and weights equal those of one process on whole batches."""
    run_on_ranks(_ddp_worker, str(tmp_path / "rank"), world=2)
    ranks = [torch.load(tmp_path / f"rank.{r}") for r in range(2)]
    single = _instance_discrimination()
    fit(single, _Images(), _identity_view, _DDP_CONFIG, device="cpu", progress=False)
    torch.testing.assert_close(ranks[0]["bank.features"], ranks[1]["bank.features"], rtol=0, atol=0)
    for name, want in single.state_dict().items():
        if isinstance(want, torch.Tensor):
            torch.testing.assert_close(ranks[0][name], want, rtol=1e-5, atol=1e-6, msg=name)
