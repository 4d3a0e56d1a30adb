"""Figures and widget explorers used by the notebooks and the CLI (matplotlib, ipywidgets)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

__all__ = [
    "image_grid",
    "plot_embedding",
    "plot_label_efficiency",
    "plot_loss",
    "plot_neighbours",
    "plot_two_view_pipeline",
    "show_views",
    "slider_explorer",
]


def _to_numpy_image(img: torch.Tensor) -> np.ndarray:
    img = img.detach().cpu()
    if img.dtype == torch.uint8:
        img = img.float() / 255
    img = img.clamp(0, 1)
    return img[0].numpy() if img.shape[0] == 1 else img.permute(1, 2, 0).numpy()


def image_grid(
    images: torch.Tensor, nrow: int = 8, titles: list[str] | None = None, scale: float = 1.0, ax=None
):
    """Show a batch (uint8 or float in [0, 1], B×C×H×W) as a grid; returns the figure."""
    b = images.shape[0]
    ncol = min(nrow, b)
    rows = (b + ncol - 1) // ncol
    fig, axes = plt.subplots(rows, ncol, figsize=(scale * ncol, scale * rows), squeeze=False)
    for i, ax_ in enumerate(axes.flat):
        ax_.axis("off")
        if i < b:
            ax_.imshow(_to_numpy_image(images[i]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            if titles:
                ax_.set_title(titles[i], fontsize=7)
    fig.tight_layout()
    return fig


def show_views(
    images: torch.Tensor,
    views,
    n: int = 8,
    generator: torch.Generator | None = None,
    view_names: list[str] | None = None,
    scale: float = 1.0,
):
    """First row: ``n`` originals; one row per view below them, titled ``view_names`` (default
    "view 1", "view 2", ...).

    Views of different sizes (multi-crop's global and local crops) are enlarged to the largest view's
    size with nearest-neighbour upsampling, so their pixels stay visible; their titles give the size.
    """
    batch = images[:n]
    outs = list(views(batch, generator=generator))
    size = max((tuple(v.shape[-2:]) for v in outs), key=lambda hw: hw[0] * hw[1])
    originals = batch.float() / 255 if batch.dtype == torch.uint8 else batch.float()
    if tuple(originals.shape[-2:]) != size:
        originals = F.interpolate(originals, size=size, mode="bilinear", align_corners=False)
    rows, titles = [originals.to(outs[0].device)], ["original"] * len(batch)
    if view_names is not None and len(view_names) != len(outs):
        raise ValueError(f"view_names has {len(view_names)} names for {len(outs)} views")
    for k, view in enumerate(outs):
        label = view_names[k] if view_names is not None else f"view {k + 1}"
        if tuple(view.shape[-2:]) != size:
            label += f" ({view.shape[-2]}×{view.shape[-1]})"
            view = F.interpolate(view.float(), size=size, mode="nearest")
        rows.append(view)
        titles += [label] * len(batch)
    return image_grid(torch.cat(rows), nrow=len(batch), titles=titles, scale=scale)


def plot_loss(history, ax=None, label: str | None = None):
    """Training loss per step (light) and its running mean (dark)."""
    losses = np.asarray(history.losses if hasattr(history, "losses") else history, dtype=float)
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(losses, alpha=0.3, color="C0" if label is None else None)
    if len(losses) >= 5:
        w = max(1, len(losses) // 20)
        smooth = np.convolve(losses, np.ones(w) / w, mode="valid")
        ax.plot(np.arange(w - 1, len(losses)), smooth, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if label:
        ax.legend()
    return fig or ax.figure


def plot_embedding(
    features: torch.Tensor,
    labels: torch.Tensor,
    classes=None,
    method: str = "pca",
    ax=None,
    title: str | None = None,
):
    """2-D map of features coloured by label (``pca``, or ``tsne`` via scikit-learn)."""
    x = features.detach().float().cpu().numpy()
    if method == "tsne":
        from sklearn.manifold import TSNE

        xy = TSNE(n_components=2, init="pca", random_state=0, perplexity=min(30, len(x) - 1)).fit_transform(x)
    elif method == "pca":
        x = x - x.mean(0)
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        xy = x @ vt[:2].T
    else:
        raise ValueError(f"unknown embedding method {method!r}: use 'pca' or 'tsne'")
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.5, 4))
    y = labels.cpu().numpy()
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=y, cmap="tab10", s=6)
    if classes is not None and len(classes) <= 10:
        handles = [
            plt.Line2D([], [], marker="o", ls="", color=sc.cmap(sc.norm(i))) for i in range(len(classes))
        ]
        ax.legend(handles, classes, fontsize=6, loc="best", markerscale=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or f"embedding ({method})")
    return fig or ax.figure


def plot_neighbours(query_images, query_features, bank_images, bank_features, k: int = 6, n_queries: int = 6):
    """Each row: a query image, then its k nearest neighbours in the bank by cosine similarity."""
    q = F.normalize(query_features[:n_queries].float(), dim=1)
    b = F.normalize(bank_features.float(), dim=1)
    nn_idx = (q @ b.T).topk(k, dim=1).indices
    rows = [torch.cat([query_images[i : i + 1].cpu(), bank_images[nn_idx[i]].cpu()]) for i in range(len(q))]
    titles = (["query"] + [f"nn {j + 1}" for j in range(k)]) * len(q)
    return image_grid(torch.cat(rows), nrow=k + 1, titles=titles)


def plot_label_efficiency(results: dict, ax=None, title: str = "linear probe vs labels per class"):
    """``results`` maps a name (``ssl``, ``raw``, ``random``) to ``{"1": acc, "10": acc, "all": acc}``."""
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.5, 3))
    for name, accs in results.items():
        keys = list(accs)
        ax.plot(range(len(keys)), [100 * accs[k] for k in keys], marker="o", label=name)
        ax.set_xticks(range(len(keys)), keys)
    ax.set_xlabel("labels per class")
    ax.set_ylabel("top-1 (%)")
    ax.set_title(title)
    ax.legend()
    return fig or ax.figure


def slider_explorer(update, **sliders):
    """An ipywidgets explorer that also runs headless.

    ``update(**values)`` draws a figure. Each slider is ``name=(min, max, step, default)``. In a live
    kernel the sliders are shown; headless (CI, book) ``update`` runs once with the defaults.
    """
    defaults = {name: spec[3] for name, spec in sliders.items()}
    try:
        import ipywidgets as widgets
        from IPython import get_ipython
    except ImportError:
        return update(**defaults)
    if get_ipython() is None:  # a plain Python process: draw once with the defaults
        return update(**defaults)
    controls = {
        name: widgets.FloatSlider(min=lo, max=hi, step=step, value=default, description=name)
        for name, (lo, hi, step, default) in sliders.items()
    }
    # interact draws once with the defaults right away, so the cell has an output when run headless
    return widgets.interact(update, **controls)


def plot_two_view_pipeline(
    image: torch.Tensor,
    views,
    generator: torch.Generator | None = None,
    loss: str = "loss:\npull z₁, z₂\ntogether,\npush other\nimages away",
    ax=None,
):
    """SSL's two-view pipeline with a real image: x → two views → encoder f → projector g → z₁, z₂ → loss.

    ``image`` is one C×H×W image (uint8 or float in [0, 1]); ``views(batch, generator=g)`` (a view preset)
    makes the two views shown. The encoder and the projector are the same network on both branches
    (shared weights); the figure marks h = f(x), the features kept after training, and z = g(h), used
    only by the loss.
    """
    if not isinstance(image, torch.Tensor) or image.ndim != 3:
        got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"image must be one C×H×W tensor, got {got}: pass images[0], not a batch")
    made = views(image.unsqueeze(0), generator=generator)
    if not isinstance(made, (list, tuple)) or len(made) < 2:
        raise ValueError(
            "views must return at least two views (a two-view preset such as 'digits' or 'simclr')"
        )
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(10, 3.6))
    ax.set_xlim(0, 11.2)
    ax.set_ylim(-0.35, 4.2)
    ax.set_aspect("equal")
    ax.axis("off")

    def thumbnail(img, x, y, size, title):
        ax.imshow(
            _to_numpy_image(img),
            cmap="gray",
            vmin=0,
            vmax=1,
            interpolation="nearest",
            extent=(x, x + size, y - size / 2, y + size / 2),
        )
        ax.text(x + size / 2, y + size / 2 + 0.12, title, ha="center", va="bottom", fontsize=9)

    def box(x, y, w, h, text, colour):
        ax.add_patch(
            FancyBboxPatch(
                (x, y - h / 2), w, h, boxstyle="round,pad=0.05", facecolor=colour, edgecolor="0.3", lw=1.2
            )
        )
        ax.text(x + w / 2, y, text, ha="center", va="center", fontsize=9)

    def arrow(start, end):
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, color="0.25", lw=1.2))

    rows = (3.0, 1.0)
    thumbnail(image, 0.1, 2.0, 1.4, "image x")
    for k, y in enumerate(rows):
        thumbnail(made[k][0], 2.5, y, 1.0, f"view {k + 1}")
        arrow((1.55, 2.0), (2.45, y))
        box(4.1, y, 1.3, 0.8, "encoder f", "#cfe2f3")
        arrow((3.55, y), (4.05, y))
        box(6.2, y, 1.4, 0.8, "projector g", "#fce5cd")
        arrow((5.45, y), (6.15, y))
        ax.text(5.8, y + 0.48, f"h{'₁₂'[k]}", ha="center", fontsize=9, color="#1f4e79")
        ax.text(8.15, y, f"z{'₁₂'[k]}", ha="center", va="center", fontsize=11)
        arrow((7.65, y), (7.95, y))
        arrow((8.4, y), (9.0, 2.0 + (y - 2.0) * 0.4))
    box(9.05, 2.0, 1.9, 2.4, loss, "#d9ead3")
    for x in (4.75, 6.9):  # the two branches are one network
        ax.plot([x, x], [1.45, 2.55], ls=":", color="0.4", lw=1)
    ax.text(5.8, 2.0, "shared weights", ha="center", va="center", fontsize=8, color="0.35")
    ax.text(
        3.0, -0.2, "h = f(x): the features kept after training", ha="center", fontsize=8.5, color="#1f4e79"
    )
    ax.text(
        8.4, -0.2, "z = g(h): only the loss sees it; discarded", ha="center", fontsize=8.5, color="#b45f06"
    )
    return fig or ax.figure
