r"""Clustering losses: predict an image's cluster (a code over K prototypes) from another view of it.

- :func:`sinkhorn` and :func:`swav_loss` (SwAV, Caron et al., 2020): codes computed online for each
  batch, with the equipartition constraint (every prototype gets B/K images) enforced by a few
  Sinkhorn–Knopp iterations, then a swapped prediction between crops.
- :func:`spherical_kmeans` and :func:`deepcluster_v2_loss` (DeepCluster v2, in the same paper): the
  codes are hard k-means assignments of a memory bank of last epoch's embeddings, the prototypes the
  centroids; cross-entropy to the assigned centroid.

Without equipartition (SwAV) or the offline clustering (DeepCluster) the trivial solution wins: every
image in one cluster.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .. import distributed
from ._checks import check_count, check_embeddings, check_temperature, check_tensor, inspects_values


@torch.no_grad()
def sinkhorn(
    scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3, gather_distributed: bool = True
) -> torch.Tensor:
    r"""SwAV's codes: the equipartitioned soft assignment of B samples to K prototypes (Sinkhorn–Knopp).

    The optimal transport problem :math:`\max_Q \mathrm{Tr}(Q^\top S) + \epsilon H(Q)` over the
    transportation polytope (each prototype gets B/K of the mass, each sample 1) is solved
    approximately by alternating normalisations of :math:`Q = \exp(S / \epsilon)`:

    .. math::  Q \leftarrow Q / \textstyle\sum_{bk} Q_{bk}, \qquad \text{then } T \text{ times:}\quad
               Q_{bk} \leftarrow \frac{Q_{bk}}{K \sum_{b'} Q_{b'k}}, \quad
               Q_{bk} \leftarrow \frac{Q_{bk}}{B \sum_{k'} Q_{bk'}}

    and the result is :math:`B\,Q`, whose rows sum to 1. In PyTorch: ``q = (s / eps).exp()``,
    ``q /= q.sum()``, then ``q /= q.sum(0) * K``, ``q /= q.sum(1, keepdim=True) * B``.

    Under ``torch.distributed`` with ``gather_distributed`` the sums over samples are all-reduced and B
    is the global batch: each rank gets its rows of the codes of the global batch. ``exp`` is taken
    after subtracting the global maximum score, which the first normalisation cancels exactly.

    Args:
        scores: B×K prototype scores (cosines z·c in SwAV), no gradient is taken.
        epsilon: ε > 0 (0.05): smaller is closer to a hard assignment.
        iterations: T ≥ 1 (3).
        gather_distributed: equipartition over the global batch under ``torch.distributed``.
    Returns:
        the B×K codes, fp32 (fp64 for fp64 scores), rows summing to 1, columns to about B/K.
    """
    check_embeddings(scores=scores)
    epsilon = check_temperature(epsilon, "epsilon")
    iterations = check_count(iterations, "iterations")
    return _sinkhorn(scores, epsilon, iterations, gather_distributed and distributed.is_distributed())


def _sinkhorn(scores: torch.Tensor, epsilon: float, iterations: int, gathering: bool) -> torch.Tensor:
    reduce = distributed.all_reduce_sum if gathering else (lambda x: x)
    with torch.autocast(scores.device.type, enabled=False):
        s = scores.detach().to(torch.promote_types(scores.dtype, torch.float32))
        batch = s.shape[0] * (distributed.world_size() if gathering else 1)
        k = s.shape[1]
        top = distributed.all_reduce_max(s.max()) if gathering else s.max()
        q = ((s - top) / epsilon).exp()
        tiny = torch.finfo(q.dtype).tiny  # a prototype whose every score underflowed: 0 instead of NaN
        q /= reduce(q.sum()).clamp_min(tiny)
        for _ in range(iterations):
            q /= reduce(q.sum(dim=0, keepdim=True)).clamp_min(tiny) * k
            q /= q.sum(dim=1, keepdim=True).clamp_min(tiny) * batch
        return q * batch


def swav_loss(
    scores: torch.Tensor,
    temperature: float = 0.1,
    epsilon: float = 0.05,
    iterations: int = 3,
    num_global_crops: int = 2,
    queue_scores: torch.Tensor | None = None,
    gather_distributed: bool = True,
) -> torch.Tensor:
    r"""SwAV's swapped prediction (Caron et al., 2020, "Unsupervised Learning of Visual Features by
    Contrasting Cluster Assignments", arXiv:2006.09882), over all crops.

    The codes :math:`q_g` of the G global crops come from :func:`sinkhorn` (no gradient); every other
    crop v predicts them with :math:`p_v = \mathrm{softmax}(s_v / \tau)`:

    .. math::  \mathcal{L} = \frac{1}{G}\sum_{g < G}\ \frac{1}{V - 1}\sum_{v \ne g}\
               \frac{1}{B}\sum_b -\langle q_{g,b}, \log p_{v,b}\rangle

    The multi-crop convention of the paper: codes from the global crops only, predictions from all
    crops (local crops included). With a queue, the scores of the queued embeddings of crop g are
    stacked above the batch's before Sinkhorn, so equipartition holds over queue + batch (needed when
    B < K), and only the batch's codes are used.

    Args:
        scores: (V, B, K) prototype scores (cosines) of all V crops; the first G are the global crops.
        temperature: τ > 0 (0.1).
        epsilon, iterations: Sinkhorn's ε (0.05) and iterations (3).
        num_global_crops: G, 1 ≤ G ≤ V (2).
        queue_scores: optional (G, M, K) scores of M queued embeddings per global crop (no gradient).
        gather_distributed: Sinkhorn over the global batch under ``torch.distributed``.
    Returns:
        the scalar loss over this rank's batch, fp32 (fp64 for fp64 inputs); differentiable with
        respect to ``scores`` only.
    """
    _check_crops(scores, num_global_crops, queue_scores)
    temperature = check_temperature(temperature)
    epsilon = check_temperature(epsilon, "epsilon")
    iterations = check_count(iterations, "iterations")
    gathering = gather_distributed and distributed.is_distributed()
    n_crops, batch, _ = scores.shape
    with torch.autocast(scores.device.type, enabled=False):
        log_p = F.log_softmax(
            scores.to(torch.promote_types(scores.dtype, torch.float32)) / temperature, dim=-1
        )
        loss = log_p.new_zeros(())
        for g in range(num_global_crops):
            s = scores[g] if queue_scores is None else torch.cat([queue_scores[g], scores[g]])
            q = _sinkhorn(s, epsilon, iterations, gathering)[-batch:].to(log_p.dtype)
            others = [v for v in range(n_crops) if v != g]
            loss = loss - (q * log_p[others]).sum(dim=-1).mean(dim=1).sum() / (n_crops - 1)
    return loss / num_global_crops


def _check_crops(scores, num_global_crops, queue_scores) -> None:
    check_tensor(
        "scores", scores, 3, "(V crops, B images, K prototypes)", "; stack the crops with torch.stack"
    )
    n_crops, batch, k = scores.shape
    if batch < 1 or k < 1:
        raise ValueError(
            f"scores needs at least one image and one prototype, got shape {tuple(scores.shape)}"
        )
    check_count(num_global_crops, "num_global_crops")
    if n_crops < 2 or num_global_crops > n_crops:
        raise ValueError(
            f"scores has V={n_crops} crops for num_global_crops={num_global_crops}: SwAV needs V ≥ 2 "
            "(a crop predicts the code of another) and the global crops first among them"
        )
    if inspects_values(scores) and not torch.isfinite(scores).all():
        raise ValueError("scores contains NaN or inf: training diverged — lower the learning rate")
    if queue_scores is None:
        return
    check_tensor("queue_scores", queue_scores, 3, "(G global crops, M queued, K prototypes)")
    if queue_scores.shape[0] != num_global_crops or queue_scores.shape[2] != k:
        raise ValueError(
            f"queue_scores {tuple(queue_scores.shape)} must be (G={num_global_crops}, M, K={k}): the scores "
            "of the queued embeddings of each global crop against the same prototypes"
        )
    if queue_scores.dtype != scores.dtype or queue_scores.device != scores.device:
        raise ValueError("queue_scores must have the dtype and device of scores")
    if inspects_values(queue_scores) and not torch.isfinite(queue_scores).all():
        raise ValueError("queue_scores contains NaN or inf: the queue holds diverged embeddings; clear it")


@torch.no_grad()
def spherical_kmeans(
    x: torch.Tensor,
    num_clusters: int,
    iterations: int = 10,
    init: str = "kmeans++",
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Spherical k-means (k-means on the unit sphere, cosine similarity), DeepCluster v2's clustering.

    The rows are L2-normalised; then ``iterations`` times: assign each row to its most similar centroid,
    :math:`a_i = \arg\max_k \langle x_i, c_k\rangle`, and move each centroid to the normalised sum of
    its rows, :math:`c_k = \sum_{a_i = k} x_i / \lVert\sum_{a_i = k} x_i\rVert` (a centroid left
    without rows stays where it was). The returned assignments are those to the final centroids.

    Args:
        x: N×D embeddings (a memory bank), N ≥ ``num_clusters``.
        num_clusters: K ≥ 1.
        iterations: update steps (10 in DeepCluster v2); 0 returns the initial centroids.
        init: ``"kmeans++"`` (Arthur & Vassilvitskii, 2007: each next centroid drawn with probability
            ∝ its squared distance 2 − 2·cos to the nearest one chosen) or ``"random"`` (K distinct rows,
            DeepCluster v2's).
        generator: the random source of the initialisation (for reproducible clusterings).
    Returns:
        (centroids K×D, unit rows, fp32 or fp64; assignments (N,) long).
    """
    check_embeddings(x=x)
    num_clusters = check_count(num_clusters, "num_clusters")
    iterations = check_count(iterations, "iterations", minimum=0)
    n = x.shape[0]
    if n < num_clusters:
        raise ValueError(f"{n} embeddings cannot make {num_clusters} clusters: use at most {n} clusters")
    if init not in ("kmeans++", "random"):
        raise ValueError(f"init must be 'kmeans++' or 'random', got {init!r}")
    x = F.normalize(x.to(torch.promote_types(x.dtype, torch.float32)), dim=1)
    if init == "random":
        centroids = x[torch.randperm(n, generator=generator, device="cpu").to(x.device)[:num_clusters]]
    else:
        centroids = _kmeans_plus_plus(x, num_clusters, generator)
    for _ in range(iterations):
        assignments = (x @ centroids.T).argmax(dim=1)
        sums = torch.zeros_like(centroids).index_add_(0, assignments, x)
        counts = torch.bincount(assignments, minlength=num_clusters)
        centroids = torch.where((counts > 0)[:, None], F.normalize(sums, dim=1), centroids)
    return centroids, (x @ centroids.T).argmax(dim=1)


def _kmeans_plus_plus(x: torch.Tensor, k: int, generator: torch.Generator | None) -> torch.Tensor:
    n = x.shape[0]
    first = torch.randint(n, (1,), generator=generator).item()
    chosen = [first]
    distance = (2 - 2 * (x @ x[first])).clamp_min(0)
    for _ in range(1, k):
        weights = distance.cpu().double()
        if not weights.sum() > 0:  # every row coincides with a centroid: take any row not chosen yet
            weights = torch.ones(n, dtype=torch.float64)
            weights[chosen] = 0
        index = torch.multinomial(weights, 1, generator=generator).item()
        chosen.append(index)
        distance = torch.minimum(distance, (2 - 2 * (x @ x[index])).clamp_min(0))
    return x[chosen]


def deepcluster_v2_loss(
    scores: Sequence[torch.Tensor], assignments: torch.Tensor, temperature: float = 0.1
) -> torch.Tensor:
    r"""DeepCluster v2's loss (Caron et al., 2020, arXiv:2006.09882, appendix): cross-entropy of every crop
    to its image's k-means cluster, averaged over H clustering heads.

    .. math::  \mathcal{L} = \frac{1}{H}\sum_{h}\ \frac{1}{VB}\sum_{v, b}
               -\log \frac{\exp(\langle z_{v,b}, c^h_{a^h_b}\rangle / \tau)}
                          {\sum_k \exp(\langle z_{v,b}, c^h_k\rangle/\tau)}

    where :math:`c^h` are head h's prototypes (set to the centroids of :func:`spherical_kmeans` every
    epoch) and :math:`a^h_b` the assignment of image b from that clustering. In PyTorch:
    ``F.cross_entropy(s.flatten(0, 1) / tau, a.repeat(V))`` per head.

    Args:
        scores: H tensors (V, B, K_h), the prototype scores (cosines) of V crops of B images for each head.
        assignments: (H, B) integer cluster indices, ``assignments[h, b]`` in [0, K_h).
        temperature: τ > 0 (0.1).
    Returns:
        the scalar loss, fp32 (fp64 for fp64 inputs).
    """
    if isinstance(scores, torch.Tensor) or not isinstance(scores, Sequence) or not scores:
        raise TypeError("scores must be a non-empty list of (V, B, K) tensors, one per clustering head")
    for h, s in enumerate(scores):
        check_tensor(f"scores[{h}]", s, 3, "(V crops, B images, K clusters)")
        if inspects_values(s) and not torch.isfinite(s).all():
            raise ValueError(f"scores[{h}] contains NaN or inf: training diverged — lower the learning rate")
    temperature = check_temperature(temperature)
    batch = scores[0].shape[1]
    if any(s.shape[1] != batch or s.shape[0] != scores[0].shape[0] for s in scores):
        raise ValueError(
            f"every head's scores must have the same (V, B), got {[tuple(s.shape) for s in scores]}"
        )
    if not isinstance(assignments, torch.Tensor) or assignments.is_floating_point():
        raise TypeError("assignments must be an integer tensor (H, B) of cluster indices; use .long()")
    if assignments.shape != (len(scores), batch):
        raise ValueError(
            f"assignments must have shape (H={len(scores)}, B={batch}), one cluster per head and image, "
            f"got {tuple(assignments.shape)}"
        )
    if inspects_values(assignments):
        for h, s in enumerate(scores):
            if assignments[h].min() < 0 or assignments[h].max() >= s.shape[2]:
                raise ValueError(
                    f"assignments[{h}] must be cluster indices in [0, {s.shape[2]}): negative ones mean the "
                    "images were never clustered; run the k-means on a filled memory bank first"
                )
    losses = []
    with torch.autocast(scores[0].device.type, enabled=False):
        for s, a in zip(scores, assignments):
            logits = s.to(torch.promote_types(s.dtype, torch.float32)).flatten(0, 1) / temperature
            losses.append(F.cross_entropy(logits, a.long().repeat(s.shape[0])))
    return torch.stack(losses).mean()
