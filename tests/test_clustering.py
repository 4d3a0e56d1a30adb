"""Sinkhorn, SwAV, spherical k-means and DeepCluster v2 against fp64 references written one entry at a
time (values and gradients), their bad inputs, and 2 gloo processes × B/2 == 1 process × B for the
Sinkhorn codes and the SwAV loss (loss and encoder gradients)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from gloo_group import run_on_ranks

from sslcookbook import data
from sslcookbook.losses import deepcluster_v2_loss, sinkhorn, spherical_kmeans, swav_loss
from sslcookbook.methods import DeepClusterV2, SwAV
from sslcookbook.methods.clustering import crop_embeddings
from sslcookbook.models import SmallCNN
from sslcookbook.recipes import RECIPES
from sslcookbook.train import fit


def rand(*shape, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).requires_grad_()


def sinkhorn_by_entries(scores, epsilon, iterations):
    """The paper's Algorithm: Q (K×B) = exp(Sᵀ/ε) / ΣQ; rows (prototypes) to 1/K, columns (samples) to 1/B."""
    b, k = scores.shape
    q = [[math.exp(scores[i, j].item() / epsilon) for i in range(b)] for j in range(k)]
    total = sum(map(sum, q))
    q = [[v / total for v in row] for row in q]
    for _ in range(iterations):
        q = [[v / sum(row) / k for v in row] for row in q]
        columns = [sum(q[j][i] for j in range(k)) for i in range(b)]
        q = [[q[j][i] / columns[i] / b for i in range(b)] for j in range(k)]
    return torch.tensor([[q[j][i] * b for j in range(k)] for i in range(b)], dtype=torch.float64)


def swav_by_entries(scores, temperature, epsilon, iterations, n_global, queue=None):
    n_crops, b, _ = scores.shape
    total = 0
    for g in range(n_global):
        s = scores[g].detach() if queue is None else torch.cat([queue[g], scores[g].detach()])
        codes = sinkhorn_by_entries(s, epsilon, iterations)[-b:]
        for v in range(n_crops):
            if v == g:
                continue
            for i in range(b):
                log_p = scores[v, i] / temperature - torch.logsumexp(scores[v, i] / temperature, dim=0)
                total = total - (codes[i] * log_p).sum() / b / (n_crops - 1)
    return total / n_global


@pytest.mark.parametrize("b, k, epsilon, iterations", [(6, 4, 0.05, 3), (3, 7, 0.5, 1), (10, 2, 0.2, 10)])
def test_sinkhorn_equals_the_papers_algorithm(b, k, epsilon, iterations):
    scores = F.normalize(rand(b, k, seed=b), dim=1).detach()
    codes = sinkhorn(scores, epsilon, iterations)
    torch.testing.assert_close(codes, sinkhorn_by_entries(scores, epsilon, iterations), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(codes.sum(1), torch.ones(b, dtype=torch.float64), rtol=1e-12, atol=1e-12)


def test_sinkhorn_equipartitions_where_the_softmax_does_not():
    scores = torch.full((12, 3), -1.0)
    scores[:, 0] = 1.0  # every sample prefers prototype 0
    scores += 0.01 * torch.randn(12, 3, generator=torch.Generator().manual_seed(0))
    codes = sinkhorn(scores, 0.05, iterations=50)
    torch.testing.assert_close(codes.sum(0), torch.full((3,), 4.0), rtol=1e-3, atol=1e-3)
    assert F.softmax(scores / 0.05, dim=1).sum(0)[0] > 11.9  # without equipartition: one prototype wins
    assert codes.dtype == torch.float32 and not codes.requires_grad


def test_sinkhorn_is_stable_for_large_scores():
    scores = torch.tensor([[100.0, 0.0], [0.0, 100.0], [100.0, 50.0]])
    codes = sinkhorn(scores, 0.05)
    assert torch.isfinite(codes).all()
    torch.testing.assert_close(codes.sum(1), torch.ones(3))


@pytest.mark.parametrize("n_crops, n_global", [(2, 2), (5, 2), (3, 1)])
def test_swav_loss_equals_the_reference(n_crops, n_global):
    scores = F.normalize(rand(n_crops, 5, 4, seed=n_crops), dim=-1).detach().requires_grad_()
    ours = swav_loss(scores, 0.1, 0.05, 3, num_global_crops=n_global)
    reference = swav_by_entries(scores, 0.1, 0.05, 3, n_global)
    torch.testing.assert_close(ours, reference, rtol=1e-9, atol=1e-12)
    (a,), (b,) = torch.autograd.grad(ours, scores), torch.autograd.grad(reference, scores)
    torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-11)


def test_swav_loss_with_a_queue_equals_the_reference_and_uses_it():
    scores = F.normalize(rand(3, 4, 6, seed=1), dim=-1).detach().requires_grad_()
    queue = F.normalize(rand(2, 8, 6, seed=2), dim=-1).detach()
    ours = swav_loss(scores, queue_scores=queue)
    reference = swav_by_entries(scores, 0.1, 0.05, 3, 2, queue)
    torch.testing.assert_close(ours, reference, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(
        torch.autograd.grad(ours, scores)[0], torch.autograd.grad(reference, scores)[0], rtol=1e-8, atol=1e-11
    )
    assert not torch.allclose(ours, swav_loss(scores))  # the queue changes the codes


def test_swav_loss_bad_inputs():
    s = torch.randn(3, 4, 5)
    with pytest.raises(ValueError, match="3-D"):
        swav_loss(s[0])
    with pytest.raises(ValueError, match="V ≥ 2"):
        swav_loss(s[:1], num_global_crops=1)
    with pytest.raises(ValueError, match="num_global_crops=4"):
        swav_loss(s, num_global_crops=4)
    with pytest.raises(ValueError, match="NaN"):
        swav_loss(torch.full((2, 4, 5), float("nan")))
    with pytest.raises(ValueError, match=r"queue_scores \(2, 8, 3\) must be \(G=2, M, K=5\)"):
        swav_loss(s, queue_scores=torch.randn(2, 8, 3))
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        swav_loss(s, temperature=0.0)
    with pytest.raises(ValueError, match="epsilon"):
        sinkhorn(s[0], epsilon=-1.0)
    with pytest.raises(ValueError, match="iterations must be >= 1"):
        sinkhorn(s[0], iterations=0)
    with pytest.raises(ValueError, match="NaN"):
        sinkhorn(torch.full((2, 3), float("inf")))


def kmeans_by_loops(x, centroids, iterations):
    x = F.normalize(x, dim=1)
    for _ in range(iterations):
        assign = [max(range(len(centroids)), key=lambda k: float(x[i] @ centroids[k])) for i in range(len(x))]
        new = []
        for k in range(len(centroids)):
            members = [x[i] for i in range(len(x)) if assign[i] == k]
            new.append(F.normalize(sum(members), dim=0) if members else centroids[k])
        centroids = torch.stack(new)
    assign = [max(range(len(centroids)), key=lambda k: float(x[i] @ centroids[k])) for i in range(len(x))]
    return centroids, torch.tensor(assign)


def test_spherical_kmeans_equals_lloyds_iterations_from_the_same_start():
    x = rand(30, 3, seed=3).detach()
    g = torch.Generator().manual_seed(0)
    start = F.normalize(x, dim=1)[torch.randperm(30, generator=g)[:4]]
    centroids, assignments = spherical_kmeans(
        x, 4, iterations=5, init="random", generator=torch.Generator().manual_seed(0)
    )
    ref_centroids, ref_assignments = kmeans_by_loops(x, start, 5)
    torch.testing.assert_close(centroids, ref_centroids, rtol=1e-10, atol=1e-12)
    assert torch.equal(assignments, ref_assignments)
    torch.testing.assert_close(centroids.norm(dim=1), torch.ones(4, dtype=torch.float64))


@pytest.mark.parametrize("init", ["kmeans++", "random"])
def test_spherical_kmeans_finds_separated_directions(init):
    g = torch.Generator().manual_seed(4)
    directions = torch.eye(4)[:3]
    labels = torch.arange(60) % 3
    x = (directions[labels] + 0.05 * torch.randn(60, 4, generator=g)) * torch.rand(60, 1, generator=g).add(
        0.5
    )
    _, assignments = spherical_kmeans(x, 3, init=init, generator=torch.Generator().manual_seed(0))
    # Each found cluster is one true cluster (a permutation of the labels).
    pairs = set(zip(labels.tolist(), assignments.tolist()))
    assert len(pairs) == 3 and len({a for _, a in pairs}) == 3


def test_spherical_kmeans_bad_inputs():
    with pytest.raises(ValueError, match="5 embeddings cannot make 6 clusters"):
        spherical_kmeans(torch.randn(5, 2), 6)
    with pytest.raises(ValueError, match="init must be"):
        spherical_kmeans(torch.randn(5, 2), 2, init="forgy")


def test_deepcluster_v2_loss_equals_the_reference():
    scores = [F.normalize(rand(2, 5, k, seed=k), dim=-1).detach().requires_grad_() for k in (3, 4)]
    assignments = torch.tensor([[0, 2, 1, 1, 0], [3, 3, 0, 1, 2]])
    ours = deepcluster_v2_loss(scores, assignments, temperature=0.1)
    reference = 0
    for s, a in zip(scores, assignments):
        for v in range(2):
            for i in range(5):
                reference = reference - (s[v, i, a[i]] / 0.1 - torch.logsumexp(s[v, i] / 0.1, 0)) / 10 / 2
    torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-12)
    for a, b in zip(torch.autograd.grad(ours, scores), torch.autograd.grad(reference, scores)):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-11)


def test_deepcluster_v2_loss_bad_inputs():
    s = [torch.randn(2, 4, 3)]
    with pytest.raises(ValueError, match="run the k-means on a filled memory bank first"):
        deepcluster_v2_loss(s, torch.full((1, 4), -1))
    with pytest.raises(ValueError, match=r"shape \(H=1, B=4\)"):
        deepcluster_v2_loss(s, torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        deepcluster_v2_loss(s, torch.zeros(1, 4))
    with pytest.raises(TypeError, match="one per clustering head"):
        deepcluster_v2_loss(s[0], torch.zeros(1, 4, dtype=torch.long))


# ------------------------------------------------------------------------------------------------
# 2 gloo processes × B/2 == 1 process × B: codes, SwAV loss and encoder gradients
# ------------------------------------------------------------------------------------------------

B, WORLD, K = 8, 2, 5


def encoder_prototypes_crops():
    torch.manual_seed(0)
    encoder = torch.nn.Sequential(torch.nn.Linear(6, 7), torch.nn.Tanh(), torch.nn.Linear(7, 4)).double()
    prototypes = F.normalize(torch.randn(K, 4, dtype=torch.float64), dim=1)
    g = torch.Generator().manual_seed(1)
    crops = torch.randn(3, B, 6, generator=g, dtype=torch.float64)
    return encoder, prototypes, crops


def swav_step(part: slice, gather: bool):
    encoder, prototypes, crops = encoder_prototypes_crops()
    scores = F.normalize(encoder(crops[:, part]), dim=-1) @ prototypes.T
    codes = sinkhorn(scores[0], gather_distributed=gather)
    loss = swav_loss(scores, gather_distributed=gather)
    loss.backward()
    return codes, loss.detach(), [p.grad.clone() for p in encoder.parameters()]


def _worker(rank: int, out: str):
    codes, loss, grads = swav_step(slice(rank * B // WORLD, (rank + 1) * B // WORLD), gather=True)
    for t in (loss, *grads):
        dist.all_reduce(t)
        t /= WORLD
    parts = [torch.empty_like(codes) for _ in range(WORLD)]
    dist.all_gather(parts, codes)
    if rank == 0:
        torch.save((torch.cat(parts), loss, grads), out)


def test_two_ranks_on_half_batches_equal_one_process_on_the_batch(tmp_path):
    run_on_ranks(_worker, str(tmp_path / "ranks.pt"), world=WORLD)
    got_codes, got_loss, got_grads = torch.load(tmp_path / "ranks.pt")
    codes, loss, grads = swav_step(slice(0, B), gather=False)
    torch.testing.assert_close(got_codes, codes, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(got_loss, loss, rtol=1e-12, atol=1e-14)
    for i, (a, b) in enumerate(zip(got_grads, grads)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13, msg=f"gradient {i}")
    # The check can fail: Sinkhorn on each half alone equipartitions each half, another set of codes.
    halves = torch.cat([swav_step(s, gather=False)[0] for s in (slice(0, B // 2), slice(B // 2, B))])
    assert not torch.allclose(halves, codes, atol=1e-4)


# ------------------------------------------------------------------------------------------------
# The methods
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["swav", "deepcluster_v2"])
def test_method_trains_on_tiny_digits_and_its_loss_falls(name):
    resolved = RECIPES[name].resolve("smoke", {})
    train = data.load("digits", "train").subset(256, seed=0)
    torch.manual_seed(0)
    method = resolved.build(in_channels=1)
    config = resolved.setting.train.replace(epochs=3, batch_size=64)
    history = fit(method, train, resolved.views(train.image_shape), config, device="cpu", progress=False)
    losses = history.losses
    assert all(math.isfinite(x) for x in losses) and len(losses) == 12
    assert sum(losses[-2:]) < sum(losses[:2]), losses
    assert method.embed(torch.rand(3, 1, 8, 8)).shape == (3, method.backbone.feature_dim)


def small_swav(**kwargs):
    torch.manual_seed(0)
    return SwAV(SmallCNN(in_channels=1, width=8), 32, 8, num_prototypes=6, **kwargs)


def crops(n_views=3, batch=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(batch, 1, 8, 8, generator=g) for _ in range(n_views)]


def test_swav_queue_starts_at_its_fraction_and_is_used_only_once_full():
    method = small_swav(queue_size=20, queue_start=0.5)
    used = []
    for step, progress in enumerate([0.2, 0.5, 0.6, 0.7, 0.8, 0.9]):
        out = method.training_step(crops(seed=step))
        used.append(out["queue_used"])
        method.after_step(progress)
        if step == 1:
            assert int(method.queue_filled) == 0  # before queue_start nothing is queued
    # queued from the 3rd step on (its progress, as of the last after_step, is 0.5), 8 rows a step: full
    # (20 rows) after the 5th step, used from the 6th
    assert used == [0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    assert int(method.queue_filled) == 32
    with torch.no_grad():  # the newest rows first: the last step's global crops (BatchNorm over all 3 crops)
        z = crop_embeddings(method.backbone, method.projector, crops(seed=5))[:2]
    torch.testing.assert_close(method.queue[:, :8], z)


def test_swav_normalises_its_prototypes_and_freezes_them_first():
    method = small_swav(freeze_prototypes=0.5)
    with torch.no_grad():
        method.prototypes.weight.mul_(5.0)
    method.training_step(crops())["loss"].backward()
    torch.testing.assert_close(method.prototypes.weight.norm(dim=1), torch.ones(6))
    assert method.prototypes.weight.grad is None and method.projector[0].weight.grad is not None
    method.after_step(0.5)
    method.training_step(crops())["loss"].backward()
    assert method.prototypes.weight.grad is not None


def test_swav_checks_its_views():
    with pytest.raises(ValueError, match="at least 2 views"):
        small_swav().training_step(crops(n_views=1))


def test_deepcluster_v2_fills_its_bank_first_and_reclusters_every_epoch():
    torch.manual_seed(0)
    method = DeepClusterV2(SmallCNN(in_channels=1, width=8), 32, 8, num_prototypes=(4, 5))
    images = data.load("digits", "train").subset(40, seed=0).images
    method.train()
    method.before_epoch(0, images)
    assert method.bank.shape == (2, 40, 8) and int(method.clustered_epoch) == 0
    assert (method.assignments >= 0).all()  # a clustering loss from the first step on
    # head 0 clusters crop 0's bank first, from the generator seeded with (seed 0, epoch 0)
    centroids, assignments = spherical_kmeans(
        method.bank[0], 4, 10, "random", torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(method.prototypes(0), centroids)
    assert torch.equal(method.assignments[0], assignments)
    indices = torch.arange(8, 16)
    views = [torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(v)) for v in range(2)]
    out = method.training_step(views, indices=indices)
    assert out["loss"].requires_grad and out["loss"] > 0
    with torch.no_grad():
        z = crop_embeddings(method.backbone, method.projector, views)
    torch.testing.assert_close(method.bank[:, 8:16], z)  # the step wrote its images' embeddings
    prototypes = method.prototypes(0).clone()
    method.before_epoch(0, images)  # a resumed epoch is not clustered again
    assert torch.equal(method.prototypes(0), prototypes)
    method.before_epoch(1, images)
    assert int(method.clustered_epoch) == 1 and not torch.equal(method.prototypes(0), prototypes)


def test_deepcluster_v2_needs_indices_and_a_bank():
    method = DeepClusterV2(SmallCNN(in_channels=1, width=8), 32, 8, num_prototypes=(4,))
    with pytest.raises(ValueError, match="calls before_epoch and passes indices="):
        method.training_step(crops(n_views=2), indices=torch.arange(8))
    with pytest.raises(ValueError, match="one number >= 1 per head"):
        DeepClusterV2(SmallCNN(in_channels=1, width=8), num_prototypes=())


# SwAV itself on 2 ranks × B/2 == 1 process × B over steps that fill the queue and then use it: every
# rank keeps the same queue of the global batch and gives Sinkhorn its own slice of it. BatchNorm-free
# backbone and projector: with BN each rank would normalise with its own half's statistics.


class FlatEncoder(torch.nn.Module):
    feature_dim = 6

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 6), torch.nn.Tanh())

    def forward(self, x):
        return self.net(x)


def swav_steps(part: slice, steps: int = 3) -> list:
    torch.manual_seed(0)
    method = SwAV(FlatEncoder(), 12, 4, num_prototypes=5, queue_size=B, batch_norm=False).double()
    results = []
    for step in range(steps):
        g = torch.Generator().manual_seed(10 + step)
        views = [torch.rand(B, 1, 4, 4, generator=g, dtype=torch.float64)[part] for _ in range(3)]
        out = method.training_step(views)
        out["loss"].backward()
        loss, grads = out["loss"].detach(), [p.grad.clone() for p in method.parameters()]
        if dist.is_initialized():
            for t in (loss, *grads):
                dist.all_reduce(t)
                t /= WORLD
        with torch.no_grad():
            for p, grad in zip(method.parameters(), grads):
                p -= 0.5 * grad
                p.grad = None
        method.after_step((step + 1) / steps)
        results.append((loss, grads, out["queue_used"]))
    return results


def _swav_worker(rank: int, out: str):
    results = swav_steps(slice(rank * B // WORLD, (rank + 1) * B // WORLD))
    if rank == 0:
        torch.save(results, out)


def test_swav_with_its_queue_on_two_ranks_equals_one_process(tmp_path):
    run_on_ranks(_swav_worker, str(tmp_path / "ranks.pt"), world=WORLD)
    ranks, single = torch.load(tmp_path / "ranks.pt"), swav_steps(slice(0, B))
    assert [used for *_, used in single] == [0.0, 1.0, 1.0]  # the queue (B rows) is full after step 1
    for step, ((loss, grads, _), (want_loss, want_grads, _)) in enumerate(zip(ranks, single)):
        torch.testing.assert_close(loss, want_loss, rtol=1e-12, atol=1e-14, msg=f"step {step} loss")
        for i, (a, b) in enumerate(zip(grads, want_grads)):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-13, msg=f"step {step} gradient {i}")
