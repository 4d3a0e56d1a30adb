"""What a language–image model can do without any labelled training: zero-shot classification from
class prompts, and image↔text retrieval. (The linear probe on its image encoder is the usual
:func:`~sslcookbook.evaluate.linear_probe` on :func:`~sslcookbook.evaluate.embed` of ``method.backbone``.)

The model is anything with ``encode_image(images) -> B×E`` and ``encode_text(tokens) -> B×E``
(L2-normalised), e.g. :class:`~sslcookbook.methods.CLIP` and :class:`~sslcookbook.methods.SigLIP`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._modules import module_device


def _require(model: nn.Module) -> torch.device:
    for name in ("encode_image", "encode_text"):
        if not callable(getattr(model, name, None)):
            raise TypeError(
                f"{type(model).__name__} has no {name}: zero-shot and retrieval need a language–image model "
                "(sslcookbook.methods.CLIP or SigLIP)"
            )
    return module_device(model) or torch.device("cpu")


@torch.no_grad()
def _batched(fn, rows: Tensor, device: torch.device, batch_size: int, images: bool = False) -> Tensor:
    out = []
    for start in range(0, rows.shape[0], batch_size):
        batch = rows[start : start + batch_size].to(device)
        if images:
            batch = batch.float().div_(255.0) if batch.dtype == torch.uint8 else batch.float()
        out.append(fn(batch).float().cpu())
    return torch.cat(out)


def _eval_mode(model: nn.Module):
    was = model.training
    model.eval()
    return was


@torch.no_grad()
def image_embeddings(model: nn.Module, images: Tensor, batch_size: int = 512) -> Tensor:
    """Normalised image embeddings N×E on the CPU (uint8 images are scaled to [0, 1]), in eval mode."""
    device, was = _require(model), _eval_mode(model)
    try:
        return _batched(model.encode_image, images, device, batch_size, images=True)
    finally:
        model.train(was)


@torch.no_grad()
def text_embeddings(model: nn.Module, tokens: Tensor, batch_size: int = 512) -> Tensor:
    """Normalised text embeddings N×E on the CPU of token ids N×L, in eval mode."""
    device, was = _require(model), _eval_mode(model)
    try:
        return _batched(model.encode_text, tokens, device, batch_size)
    finally:
        model.train(was)


ENSEMBLES = ("mean", "max")


@torch.no_grad()
def zero_shot_classifier(model: nn.Module, prompts: list[list[str]], tokenizer, length: int) -> Tensor:
    """One unit vector per class: the normalised mean of its prompts' text embeddings (CLIP's prompt
    ensembling, Radford et al. 2021 §3.1.4). ``prompts[c]`` are class c's texts. Returns C×E."""
    embedded, sizes = _prompt_embeddings(model, prompts, tokenizer, length)
    return F.normalize(torch.stack([part.mean(0) for part in embedded.split(sizes)]), dim=1)


def _prompt_embeddings(model, prompts, tokenizer, length) -> tuple[Tensor, list[int]]:
    if not prompts or not all(prompts):
        raise ValueError("prompts must hold at least one text per class, e.g. [['a circle'], ['a square']]")
    texts = [text for per_class in prompts for text in per_class]
    return text_embeddings(model, tokenizer.encode(texts, length)), [len(per_class) for per_class in prompts]


@torch.no_grad()
def zero_shot_scores(
    model: nn.Module, images: Tensor, prompts, tokenizer, length: int, ensemble: str = "mean"
):
    """N×C class scores of ``images`` from the class prompts, no label used.

    ``ensemble="mean"``: cosine to each class's mean prompt embedding (:func:`zero_shot_classifier`);
    ``"max"``: each class's best-matching prompt, i.e. the class of the caption that fits the image best
    (better when the prompts are full captions that also name nuisances, as ``shape_pairs``' do).
    """
    if ensemble not in ENSEMBLES:
        raise ValueError(f"ensemble must be one of {ENSEMBLES}, got {ensemble!r}")
    x = image_embeddings(model, images)
    if ensemble == "mean":
        return x @ zero_shot_classifier(model, prompts, tokenizer, length).T
    embedded, sizes = _prompt_embeddings(model, prompts, tokenizer, length)
    return torch.stack([part.max(1).values for part in (x @ embedded.T).split(sizes, dim=1)], dim=1)


@torch.no_grad()
def zero_shot_accuracy(
    model: nn.Module, dataset, mask: Tensor | None = None, ensemble: str = "mean", batch_size: int = 512
) -> float:
    """Top-1 accuracy of classifying ``dataset``'s images (a ``PairedDataset``) from its class prompts
    (:func:`zero_shot_scores` of ``dataset.prompts``), no label used; ``mask`` keeps some images (e.g.
    ``dataset.held_out``, the attribute combinations training never showed)."""
    images, labels = dataset.images, dataset.labels
    if mask is not None:
        if mask.dtype != torch.bool or mask.shape != labels.shape:
            raise ValueError(f"mask must be a bool tensor of shape {tuple(labels.shape)}, one flag per image")
        if not mask.any():
            raise ValueError("mask keeps no image: nothing to classify")
        images, labels = images[mask.to(images.device)], labels[mask.to(labels.device)]
    scores = zero_shot_scores(
        model, images, dataset.prompts, dataset.tokenizer, dataset.tokens.shape[1], ensemble
    )
    return float((scores.argmax(1) == labels.cpu()).float().mean())


@torch.no_grad()
def retrieval_recall(model: nn.Module, dataset, ks: tuple[int, ...] = (1, 5), batch_size: int = 512) -> dict:
    """Recall@k of image→text and text→image retrieval among ``dataset``'s pairs.

    Image i's query succeeds at k when one of its k most similar captions is its own caption *text*
    (generated captions repeat: an identical caption of another image is as right as its own); caption
    j's query succeeds when one of its k nearest images has caption j's text. Returns
    ``{"image_to_text@1": .., "text_to_image@1": .., ...}`` in [0, 1].
    """
    x = image_embeddings(model, dataset.images, batch_size)
    y = text_embeddings(model, dataset.tokens, batch_size)
    # captions equal as texts share an id, so a tie among duplicates is no miss
    _, caption_ids = torch.unique(dataset.tokens.cpu(), dim=0, return_inverse=True)
    similarity = x @ y.T
    result = {}
    for k in ks:
        k = min(int(k), similarity.shape[1])
        image_hits = caption_ids[similarity.topk(k, dim=1).indices] == caption_ids[:, None]
        text_hits = caption_ids[similarity.T.topk(k, dim=1).indices] == caption_ids[:, None]
        result[f"image_to_text@{k}"] = float(image_hits.any(1).float().mean())
        result[f"text_to_image@{k}"] = float(text_hits.any(1).float().mean())
    return result
