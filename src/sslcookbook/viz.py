"""Figures and widget explorers used by the notebooks and the CLI (matplotlib, ipywidgets)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "image_grid",
    "plot_embedding",
    "plot_label_efficiency",
    "plot_loss",
    "plot_neighbours",
    "plot_on_circle",
    "plot_streaming_lse",
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


def plot_on_circle(panels: dict, labels: torch.Tensor, classes=None, notes: dict | None = None):
    """2-D embeddings on the unit circle S¹, one panel per entry of ``panels`` (title → N×2 tensor).

    Each point is L2-normalised onto the circle and drawn at radius 1 + 0.06·label, so the classes form
    concentric rings: a class that occupies one arc is *aligned*, rings covered all round are *uniform*
    (Wang & Isola 2020, Figure 3). ``notes`` (title → text) is written under each panel, e.g. the
    alignment and uniformity values.
    """
    if not panels:
        raise ValueError("panels is empty: pass {title: N×2 embeddings}")
    y = labels.detach().cpu().numpy()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.8), squeeze=False)
    for ax, (title, z) in zip(axes[0], panels.items()):
        if z.ndim != 2 or z.shape[1] != 2 or z.shape[0] != len(y):
            raise ValueError(f"panel {title!r}: expected {len(y)}×2 embeddings, got {tuple(z.shape)}")
        xy = F.normalize(z.detach().float().cpu(), dim=1).numpy()
        radius = 1 + 0.06 * y
        ring = np.linspace(0, 2 * np.pi, 200)
        ax.plot(np.cos(ring), np.sin(ring), color="0.85", lw=0.8, zorder=0)
        sc = ax.scatter(xy[:, 0] * radius, xy[:, 1] * radius, c=y, cmap="tab10", vmin=0, vmax=9, s=5)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(title, fontsize=9)
        if notes and title in notes:
            ax.set_xlabel(notes[title], fontsize=8)
    if classes is not None and len(classes) <= 10:
        colours = [sc.cmap(sc.norm(i)) for i in range(len(classes))]
        handles = [plt.Line2D([], [], marker="o", ls="", color=colour) for colour in colours]
        fig.legend(handles, classes, fontsize=7, loc="center right", markerscale=0.8)
        fig.subplots_adjust(right=0.9)
    return fig


def plot_streaming_lse(logits: torch.Tensor, block: int, running: torch.Tensor, rows: int = 6):
    """The streaming log-sum-exp at work: the N×M logits cut into tiles of ``block`` keys (left), and
    each row's running estimate m + log ℓ after every tile (right), ending on ``torch.logsumexp``.

    ``running`` is (tiles × N): the estimate of every row after each tile, as the streaming loop keeps it.
    """
    logits = logits.detach().float().cpu()
    running = running.detach().float().cpu()
    n, m = logits.shape
    tiles = -(-m // block)
    if running.shape != (tiles, n):
        raise ValueError(
            f"running must be (tiles, N) = ({tiles}, {n}) for {m} keys in tiles of {block}, "
            f"got {tuple(running.shape)}"
        )
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), gridspec_kw={"width_ratios": [1.4, 1]})
    image = axes[0].imshow(logits.numpy(), cmap="viridis", aspect="auto", interpolation="nearest")
    for t in range(1, tiles):
        axes[0].axvline(t * block - 0.5, color="white", lw=1.5)
    axes[0].set_xlabel(f"keys j, streamed {block} at a time ({tiles} tiles)")
    axes[0].set_ylabel("query rows i")
    axes[0].set_title("logits s_ij/τ: one tile at a time is ever held")
    fig.colorbar(image, ax=axes[0], fraction=0.04)
    exact = torch.logsumexp(logits, dim=1)
    steps = np.arange(1, tiles + 1)
    for i in range(min(rows, n)):
        line = axes[1].plot(steps, running[:, i].numpy(), marker="o", ms=3)[0]
        axes[1].axhline(exact[i].item(), color=line.get_color(), ls=":", lw=1)
    axes[1].set_xlabel("tiles seen")
    axes[1].set_ylabel("running m + log ℓ")
    axes[1].set_title("per row, two numbers: m and ℓ (dotted: logsumexp)")
    fig.tight_layout()
    return fig
