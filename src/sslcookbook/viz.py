"""Figures and widget explorers used by the notebooks and the CLI (matplotlib, ipywidgets)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

__all__ = [
    "embedding_spectrum",
    "image_grid",
    "plot_block_diagram",
    "plot_embedding",
    "plot_label_efficiency",
    "plot_loss",
    "plot_neighbours",
    "plot_on_circle",
    "plot_streaming_lse",
    "plot_singular_values",
    "show_pretext_tasks",
    "plot_two_view_pipeline",
    "show_views",
    "slider_explorer",
    "plot_prototype_usage",
    "plot_matrices",
    "show_image_rows",
    "plot_patch_masks",
    "plot_attention_maps",
    "attention_mass_on",
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


def embedding_spectrum(features: torch.Tensor) -> torch.Tensor:
    """Eigenvalues λ_1 ≥ … ≥ λ_D of the covariance of the L2-normalised rows of ``features`` (N×D).

    Their sum is the total variance 1 − ‖mean‖², at most 1, so spectra of different methods share one
    scale: completely collapsed features (every row the same) have every λ near 0, dimensionally
    collapsed ones a few large λ and then a steep drop (Hua et al. 2021; Jing et al. 2022, who plot
    the log singular values of this covariance).
    """
    if not isinstance(features, torch.Tensor) or features.ndim != 2 or min(features.shape) < 1:
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise ValueError(f"features must be an N×D tensor with N, D >= 1, got {shape}")
    if features.shape[0] < 2:
        raise ValueError("a spectrum needs at least 2 rows (images) to estimate a covariance")
    z = F.normalize(features.detach().cpu().double(), dim=1)
    z = z - z.mean(dim=0)
    # Singular values of the centred N×D matrix give the covariance's eigenvalues: λ = σ² / N.
    return torch.linalg.svdvals(z).square() / z.shape[0]


def plot_singular_values(features_by_name: dict, ax=None, floor: float = 1e-10, title: str | None = None):
    """Log-scale spectrum of each embedding (:func:`embedding_spectrum`): variance per direction, ranked.

    ``features_by_name`` maps a name to an N×D feature tensor. A healthy embedding spreads its variance
    over many directions (a slowly falling curve); dimensional collapse shows as a curve that falls to
    ``floor`` after a few directions, complete collapse as a curve that is low from the start.
    """
    if not features_by_name:
        raise ValueError("features_by_name is empty: pass {name: N×D features} for at least one embedding")
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, features in features_by_name.items():
        spectrum = embedding_spectrum(features).clamp_min(floor).numpy()
        ax.plot(np.arange(1, len(spectrum) + 1), spectrum, label=name)
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor / 2)
    ax.set_xlabel("direction k (ranked by variance)")
    ax.set_ylabel("variance λ_k of the L2-normalised features")
    ax.set_title(title or "embedding spectrum")
    ax.legend(fontsize=7)
    return fig or ax.figure


def plot_block_diagram(boxes: dict, arrows: list, ax=None, figsize=(10, 3), title: str | None = None):
    """A method's data flow as labelled boxes and arrows (what the notebooks' opening figures draw).

    ``boxes`` maps a key to ``(x, y, text)`` or ``(x, y, text, colour)`` in data coordinates (the axes
    fit around them); ``arrows`` lists ``(from_key, to_key)`` or ``(from_key, to_key, options)`` with
    options ``text`` (a label at the arrow's middle), ``dashed`` (no gradient flows), ``rad`` (the
    curvature of the arrow, 0 for straight) and ``colour``. Arrows start and end at the boxes' edges.
    """
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
    artists = {}
    for key, spec in boxes.items():
        if not 3 <= len(spec) <= 4:
            raise ValueError(f"box {key!r} must be (x, y, text) or (x, y, text, colour), got {spec!r}")
        x, y, text = spec[:3]
        colour = spec[3] if len(spec) == 4 else "#dbe9f6"
        artists[key] = ax.text(
            x,
            y,
            text,
            ha="center",
            va="center",
            fontsize=9,
            zorder=3,
            bbox={"boxstyle": "round,pad=0.4", "facecolor": colour, "edgecolor": "0.3"},
        )
    for arrow in arrows:
        if len(arrow) not in (2, 3):
            raise ValueError(f"an arrow is (from, to) or (from, to, options), got {arrow!r}")
        start, end, options = (*arrow, {}) if len(arrow) == 2 else arrow
        missing = [k for k in (start, end) if k not in artists]
        if missing:
            raise ValueError(f"arrow {start!r} → {end!r} names no box {missing}: boxes are {list(artists)}")
        source, target = artists[start], artists[end]
        colour = options.get("colour", "0.2")
        ax.annotate(
            "",
            xy=target.get_position(),
            xytext=source.get_position(),
            zorder=4,
            arrowprops={
                "arrowstyle": "-|>",
                "color": colour,
                "lw": 1.3,
                "linestyle": "--" if options.get("dashed") else "-",
                "connectionstyle": f"arc3,rad={options.get('rad', 0.0)}",
                "patchA": source.get_bbox_patch(),
                "patchB": target.get_bbox_patch(),
                "shrinkA": 1,
                "shrinkB": 1,
                "mutation_scale": 14,
            },
        )
        if options.get("text"):
            (x0, y0), (x1, y1) = source.get_position(), target.get_position()
            # The middle of an arc3 arrow lies rad × (the chord turned by 90°) / 2 off the chord's middle.
            rad = options.get("rad", 0.0)
            mx, my = (x0 + x1) / 2 + rad * (y1 - y0) / 2, (y0 + y1) / 2 - rad * (x1 - x0) / 2
            ax.text(
                mx,
                my,
                options["text"],
                ha="center",
                va="center",
                fontsize=8,
                color=colour,
                zorder=5,
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none"},
            )
    xs = [spec[0] for spec in boxes.values()]
    ys = [spec[1] for spec in boxes.values()]
    ax.set_xlim(min(xs) - 1, max(xs) + 1)
    ax.set_ylim(min(ys) - 0.7, max(ys) + 0.7)
    ax.axis("off")
    if title:
        ax.set_title(title)
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


def show_pretext_tasks(
    image: torch.Tensor,
    rotations: torch.Tensor,
    tiles: torch.Tensor,
    patches: tuple[torch.Tensor, torch.Tensor],
    labels: dict[str, str] | None = None,
):
    """The three transformation tasks on one image (C×H×W): its four rotations, its shuffled jigsaw tiles
    (T×C×t×t, shown in their shuffled order on a √T × √T grid) and a (centre, neighbour) patch pair.

    ``labels`` titles the three panels (``"rotation"``, ``"jigsaw"``, ``"position"``), for instance with
    the true and the predicted class. Returns the figure.
    """
    grid = round(tiles.shape[0] ** 0.5)
    if grid * grid != tiles.shape[0]:
        raise ValueError(f"tiles must make a square grid, got {tiles.shape[0]} tiles")
    labels = labels or {}
    fig = plt.figure(figsize=(11, 2.6))
    outer = fig.add_gridspec(1, 4, width_ratios=[1, 4, 1.3, 2], wspace=0.3)

    def show(ax, img, title=None):
        ax.imshow(_to_numpy_image(img), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.axis("off")
        if title:
            ax.set_title(title, fontsize=8)

    show(fig.add_subplot(outer[0]), image, "image")
    rot = outer[1].subgridspec(1, 4, wspace=0.1)
    for k in range(4):
        title = f"{90 * k}°" + (f"\n{labels['rotation']}" if k == 0 and "rotation" in labels else "")
        show(fig.add_subplot(rot[k]), rotations[k], title)
    jig = outer[2].subgridspec(grid, grid, wspace=0.15, hspace=0.15)
    for k in range(grid * grid):
        ax = fig.add_subplot(jig[k // grid, k % grid])
        show(ax, tiles[k])
        if k == grid // 2:
            ax.set_title("jigsaw" + (f"\n{labels['jigsaw']}" if "jigsaw" in labels else ""), fontsize=8)
    pair = outer[3].subgridspec(1, 2, wspace=0.1)
    show(fig.add_subplot(pair[0]), patches[0], "centre")
    title = "neighbour" + (f"\n{labels['position']}" if "position" in labels else "")
    show(fig.add_subplot(pair[1]), patches[1], title)
    return fig


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


def plot_prototype_usage(assignments: dict, num_prototypes: int, ax=None, title: str | None = None):
    """How the images share K prototypes: one line per entry of ``assignments`` (name → (N,) integer
    prototype indices, e.g. the argmax of each image's scores), the share of the images each prototype
    receives, prototypes ranked by it.

    Equipartition draws a flat line at 1/K (dotted); a collapse one prototype at 1 and the rest at 0. The
    legend gives the prototypes used (at least one image) and the entropy of the shares, log K at best.
    """
    if isinstance(num_prototypes, bool) or not isinstance(num_prototypes, int) or num_prototypes < 1:
        raise ValueError(f"num_prototypes must be an int >= 1, got {num_prototypes!r}")
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.2))
    ranks = np.arange(1, num_prototypes + 1)
    for name, assigned in assignments.items():
        assigned = torch.as_tensor(assigned)
        if assigned.ndim != 1 or assigned.is_floating_point() or assigned.numel() == 0:
            raise ValueError(
                f"assignments[{name!r}] must be a non-empty 1-D integer tensor of prototype indices, "
                f"got {tuple(assigned.shape)} {assigned.dtype}"
            )
        if assigned.min() < 0 or assigned.max() >= num_prototypes:
            raise ValueError(
                f"assignments[{name!r}] holds indices outside [0, {num_prototypes}): "
                "is num_prototypes the method's K?"
            )
        share = torch.bincount(assigned.cpu(), minlength=num_prototypes).double() / assigned.numel()
        used = share[share > 0]
        entropy = float(-(used * used.log()).sum()) + 0.0  # + 0.0: one prototype prints 0.00, not -0.00
        ax.step(
            ranks,
            share.sort(descending=True).values.numpy(),
            where="mid",
            label=f"{name}: {len(used)}/{num_prototypes} used, entropy {entropy:.2f}",
        )
    ax.axhline(
        1 / num_prototypes,
        color="gray",
        ls=":",
        label=f"equipartition 1/K (entropy log K = {np.log(num_prototypes):.2f})",
    )
    ax.set_xlabel("prototype (ranked by use)")
    ax.set_ylabel("share of the images")
    ax.set_title(title or "prototype usage")
    ax.legend(fontsize=7)
    return fig or ax.figure


def plot_matrices(matrices_by_name: dict, vmax: float = 1.0, cmap: str = "RdBu_r", title: str | None = None):
    """Square matrices side by side as heat maps on one colour scale [−vmax, vmax], one panel each.

    ``matrices_by_name`` maps a panel title to a D×D tensor, e.g. a cross-correlation matrix C before
    and after Barlow Twins' training (→ the identity), or a covariance before and after whitening.
    """
    if not matrices_by_name:
        raise ValueError("matrices_by_name is empty: pass {title: D×D tensor} for at least one matrix")
    for name, matrix in matrices_by_name.items():
        if not isinstance(matrix, torch.Tensor) or matrix.ndim != 2:
            shape = tuple(matrix.shape) if isinstance(matrix, torch.Tensor) else type(matrix).__name__
            raise ValueError(f"matrix {name!r} must be a 2-D tensor, got {shape}")
    count = len(matrices_by_name)
    fig, axes = plt.subplots(1, count, figsize=(3.2 * count, 3.2), squeeze=False)
    for ax, (name, matrix) in zip(axes[0], matrices_by_name.items()):
        image = ax.imshow(matrix.detach().cpu().float().numpy(), cmap=cmap, vmin=-vmax, vmax=vmax)
        ax.set_title(name, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def show_image_rows(rows: dict, n: int = 8, scale: float = 1.0, patch_size: int | None = None):
    """One row of ``n`` images per entry of ``rows`` (row name → B×C×H×W batch, uint8 or float; values
    outside [0, 1] are clipped, as a viewer would), the name at the left: masked inputs, reconstructions
    and targets side by side. ``patch_size`` draws the patch grid over every image. Returns the figure."""
    if not rows:
        raise ValueError("rows is empty: pass {name: images}")
    n = min([n] + [batch.shape[0] for batch in rows.values()])
    fig, axes = plt.subplots(len(rows), n, figsize=(scale * n + 1.2, scale * len(rows)), squeeze=False)
    for r, (name, batch) in enumerate(rows.items()):
        if batch.dim() != 4:
            raise ValueError(f"row {name!r} must be a B×C×H×W batch, got shape {tuple(batch.shape)}")
        for i in range(n):
            ax = axes[r, i]
            ax.imshow(_to_numpy_image(batch[i]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if patch_size:
                h, w = batch.shape[-2:]
                for k in range(patch_size, max(h, w), patch_size):
                    if k < w:
                        ax.axvline(k - 0.5, color="C1", lw=0.4, alpha=0.6)
                    if k < h:
                        ax.axhline(k - 0.5, color="C1", lw=0.4, alpha=0.6)
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.tight_layout()
    return fig


def plot_patch_masks(
    images: torch.Tensor,
    patch_size: int,
    context: torch.Tensor | None = None,
    targets: torch.Tensor | None = None,
    masked: torch.Tensor | None = None,
    n: int = 4,
    scale: float = 2.2,
    title: str | None = None,
):
    """Draw patch masks over images: I-JEPA's context (blue tint) and target blocks (coloured outlines),
    or a data2vec / BEiT block mask (masked patches greyed out).

    Args:
        images: B×C×H×W (uint8 or float in [0, 1]); the first ``n`` are drawn.
        patch_size: side of a patch in pixels (the ViT's ``patch_size``).
        context: B×n_c patch indices (row-major) of the context, or None.
        targets: B×M×n_t patch indices of the M target blocks, or None.
        masked: B×N bool, True at masked patches, or None.
    Returns:
        the figure, one panel per image.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be B×C×H×W, got shape {tuple(images.shape)}")
    if context is None and targets is None and masked is None:
        raise ValueError("give context and targets (I-JEPA) or masked (data2vec): there is nothing to draw")
    n = min(n, images.shape[0])
    cols = -(-images.shape[-1] // patch_size)
    fig, axes = plt.subplots(1, n, figsize=(scale * n, scale), squeeze=False)

    def square(index: int, **style):
        r, c = divmod(int(index), cols)
        return plt.Rectangle((c * patch_size - 0.5, r * patch_size - 0.5), patch_size, patch_size, **style)

    for i, ax in enumerate(axes[0]):
        ax.imshow(_to_numpy_image(images[i]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if context is not None:
            for index in context[i].tolist():
                ax.add_patch(square(index, facecolor="C0", alpha=0.35, edgecolor="none"))
        if targets is not None:
            for m, block in enumerate(targets[i]):
                for index in block.tolist():
                    ax.add_patch(square(index, fill=False, edgecolor=f"C{m + 1}", linewidth=2.0, alpha=0.9))
        if masked is not None:
            for index in masked[i].nonzero().flatten().tolist():
                ax.add_patch(square(index, facecolor="0.5", alpha=0.85, edgecolor="white", linewidth=0.5))
        parts = []
        if context is not None:
            parts.append(f"context {len(context[i])}")
        if targets is not None:
            parts.append(f"{targets.shape[1]} targets × {targets.shape[2]}")
        if masked is not None:
            parts.append(f"masked {int(masked[i].sum())}/{masked.shape[1]}")
        ax.set_title(", ".join(parts), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def attention_mass_on(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Fraction of each attention map's mass on the masked pixels: maps B×heads×gh×gw (a ViT's
    ``attention_maps``), masks bool B×H×W (H, W multiples of gh, gw) → B×heads in [0, 1].

    Each map is renormalised to sum to 1 over the patches and spread evenly over its patch's pixels, so a
    uniform map scores the masked area's fraction of the image: the chance level to compare with.
    """
    if maps.ndim != 4 or masks.ndim != 3 or maps.shape[0] != masks.shape[0]:
        raise ValueError(
            f"maps must be B×heads×gh×gw and masks B×H×W for the same B, got {tuple(maps.shape)} and "
            f"{tuple(masks.shape)}"
        )
    maps = maps.detach().float().cpu()
    covered = F.adaptive_avg_pool2d(masks.detach().float().cpu().unsqueeze(1), maps.shape[-2:])  # B×1×gh×gw
    return (maps * covered).sum(dim=(2, 3)) / maps.sum(dim=(2, 3)).clamp_min(1e-12)


def plot_attention_maps(
    images: torch.Tensor,
    maps,
    masks: torch.Tensor | None = None,
    n: int = 4,
    scale: float = 1.5,
    alpha: float = 0.65,
    cmap: str = "inferno",
):
    """Attention maps over their images: per image, the image, each head's map and the mean over heads.

    ``images``: B×C×H×W (uint8 or float in [0, 1]); ``maps``: B×heads×gh×gw (a ViT's ``attention_maps``,
    the CLS token's attention to the patches, DINO's Figure 1), or a dict ``{name: maps}`` to compare
    encoders (one row per image and name). Each map is upsampled to the image by repeating each patch's
    value over its pixels (nearest) and scaled to its own maximum. With ``masks`` (bool B×H×W: the
    object's pixels), the object's outline is drawn and each panel's title gives the map's mass on it
    (:func:`attention_mass_on`; the object's area fraction is what a uniform map would score).
    Returns the figure.
    """
    named = maps if isinstance(maps, dict) else {"": maps}
    if not named:
        raise ValueError("maps is an empty dict: pass {name: B×heads×gh×gw maps}")
    for name, m in named.items():
        if not isinstance(m, torch.Tensor) or m.ndim != 4 or m.shape[0] != images.shape[0]:
            shape = tuple(m.shape) if isinstance(m, torch.Tensor) else type(m).__name__
            raise ValueError(
                f"maps{f' {name!r}' if name else ''} must be a B×heads×gh×gw tensor with one map per image "
                f"({images.shape[0]}), got {shape}"
            )
    n = min(n, images.shape[0])
    heads = max(m.shape[1] for m in named.values())
    size = images.shape[-2:]
    rows = [(i, name) for i in range(n) for name in named]
    fig, axes = plt.subplots(
        len(rows), heads + 2, figsize=(scale * (heads + 2), scale * len(rows)), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for r, (i, name) in enumerate(rows):
        picture = _to_numpy_image(images[i])
        grey = picture if picture.ndim == 2 else picture.mean(axis=-1)
        m = named[name][i : i + 1].detach().float().cpu()
        panels = [m[0, h] for h in range(m.shape[1])] + [m[0].mean(dim=0)]
        mass = (
            attention_mass_on(torch.stack(panels)[None], masks[i : i + 1])[0] if masks is not None else None
        )
        axes[r, 0].imshow(picture, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[r, 0].set_title(f"{name}\nimage {i}" if name else f"image {i}", fontsize=7)
        for c, panel in enumerate(panels):
            ax = axes[r, c + 1 if c < len(panels) - 1 else heads + 1]
            up = F.interpolate(panel[None, None], size=size, mode="nearest")[0, 0]
            ax.imshow(grey, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.imshow(
                (up / up.max().clamp_min(1e-12)).numpy(),
                cmap=cmap,
                vmin=0,
                vmax=1,
                alpha=alpha,
                interpolation="nearest",
            )
            label = "mean" if c == len(panels) - 1 else f"head {c + 1}"
            if masks is not None:
                ax.contour(masks[i].float().cpu().numpy(), levels=[0.5], colors="cyan", linewidths=0.7)
                label += f": {mass[c]:.0%} on object"
            ax.set_title(label, fontsize=7)
    if masks is not None:
        area = masks[:n].float().mean().item()
        fig.suptitle(
            f"CLS attention over the image (object outlined; a uniform map puts {area:.0%} on it)", fontsize=9
        )
    fig.tight_layout()
    return fig


def plot_self_training(
    histories: dict, keys=("pseudo_accuracy_all", "mask_rate"), smooth: int = 5, axes=None
):
    """Curves of a semi-supervised run's logged quantities over the steps, one panel per key and one line
    per run: ``histories`` maps a run's name to its ``semi_train.SemiHistory`` (or a list of step rows).

    The default panels are the accuracy of the pseudo-labels (argmax on the unlabelled batch, against the
    true labels the method never saw) and the mask rate (the share used by the loss): confirmation bias
    shows as a mask rate that climbs to 1 while the accuracy stays where it was. ``smooth`` averages each
    curve over that many logged steps (a curve shorter than that is drawn as it is).
    """
    if not histories:
        raise ValueError("plot_self_training: pass at least one run, {name: history}")
    keys = list(keys)
    titles = {
        "pseudo_accuracy_all": "pseudo-label accuracy (all unlabelled)",
        "pseudo_accuracy": "accuracy of the pseudo-labels used",
        "mask_rate": "mask rate (share of pseudo-labels used)",
        "loss": "loss",
        "unlabelled": "unlabelled loss",
    }
    if axes is None:
        _, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.2), squeeze=False)
        axes = axes[0]
    for ax, key in zip(axes, keys):
        for name, history in histories.items():
            rows = getattr(history, "steps", history)
            points = [(row["step"], row[key]) for row in rows if key in row and np.isfinite(row[key])]
            if not points:
                continue
            steps, values = (np.array(v, dtype=float) for v in zip(*points))
            if smooth > 1 and len(values) >= smooth:
                values = np.convolve(values, np.ones(smooth) / smooth, mode="valid")
                steps = steps[smooth - 1 :]
            ax.plot(steps, values, label=name)
        ax.set_title(titles.get(key, key), fontsize=9)
        ax.set_xlabel("step")
        if key in ("pseudo_accuracy_all", "pseudo_accuracy", "mask_rate"):
            ax.set_ylim(-0.02, 1.02)
    axes[0].legend(fontsize=8)
    axes[0].figure.tight_layout()
    return axes[0].figure


def plot_series_rows(rows: dict, n: int = 4, titles: list | None = None, height: float = 1.3):
    """Time series in a grid: one row per entry of ``rows`` (name → B×C×L tensor), the first ``n`` series
    as columns, each channel a line (channel 0 darkest). For a series and its views, or one per class."""
    if not rows:
        raise ValueError("rows is empty: nothing to draw")
    tensors = {name: torch.as_tensor(t).detach().float().cpu() for name, t in rows.items()}
    for name, t in tensors.items():
        if t.dim() != 3:
            raise ValueError(f"row {name!r} must be B×C×L series, got shape {tuple(t.shape)}")
    n = min(n, *(t.shape[0] for t in tensors.values()))
    fig, axes = plt.subplots(
        len(tensors), n, figsize=(2.6 * n, height * len(tensors)), squeeze=False, sharex=True
    )
    colours = plt.cm.viridis(np.linspace(0, 0.8, max(t.shape[1] for t in tensors.values())))
    for r, (name, t) in enumerate(tensors.items()):
        for c in range(n):
            ax = axes[r][c]
            for k in range(t.shape[1]):
                ax.plot(t[c, k].numpy(), color=colours[k], lw=0.9)
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
            if r == 0 and titles is not None:
                ax.set_title(str(titles[c]), fontsize=8)
    fig.tight_layout()
    return fig


def plot_forecasts(
    context: torch.Tensor, future: torch.Tensor, predictions: dict, n: int = 3, channel: int = 0
):
    """Forecasts of one channel: the context, the true future and each named prediction (name → N×C×H)."""
    context, future = context.detach().float().cpu(), future.detach().float().cpu()
    n = min(n, context.shape[0])
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 2.4), squeeze=False)
    start = context.shape[-1]
    steps = np.arange(start, start + future.shape[-1])
    for i in range(n):
        ax = axes[0][i]
        ax.plot(np.arange(start), context[i, channel].numpy(), color="gray", lw=0.9, label="context")
        ax.plot(steps, future[i, channel].numpy(), color="black", lw=1.2, label="future")
        for j, (name, pred) in enumerate(predictions.items()):
            values = torch.as_tensor(pred)[i, channel].detach().float().cpu().numpy()
            ax.plot(steps, values, lw=1.0, ls="--", color=f"C{j}", label=name)
        ax.set_yticks([])
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    return fig


__all__ += ["plot_series_rows", "plot_forecasts"]


def plot_self_training_curves(curves: dict, metrics=("accuracy",), x: str = "sampled", axes=None,
                              title: str | None = None):
    """Per-iteration curves of self-training runs (notebook 12), one panel per metric.

    ``curves`` maps a method's name to its rows (dicts with ``x`` and each metric, e.g. the output of
    :func:`sslcookbook.methods.lm_self_training.self_train`); row 0, the starting model, is marked with a
    dotted line in every panel. Accuracies are drawn in percent.
    """
    if not curves or any(not rows for rows in curves.values()):
        raise ValueError("curves must map each method's name to a non-empty list of rows")
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    fig = None
    if axes is None:
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.2), squeeze=False)
        axes = axes[0]
    axes = np.atleast_1d(axes)
    per = 1000 if x == "sampled" else 1  # sampled answers in thousands: the tick labels stay apart
    for ax, metric in zip(axes, metrics):
        for i, (name, rows) in enumerate(curves.items()):
            ax.plot([r[x] / per for r in rows], [100 * r[metric] for r in rows], marker="o", ms=3, label=name,
                    color=f"C{i}")
        start = next(iter(curves.values()))[0]
        ax.axhline(100 * start[metric], color="gray", ls=":", lw=1, label="start")
        ax.set_xlabel("sampled answers (thousands)" if x == "sampled" else x)
        ax.set_ylabel(f"{metric} (%)")
        ax.set_title(metric, fontsize=9)
    axes[0].legend(fontsize=7)
    if title:
        axes[0].figure.suptitle(title, fontsize=10)
    axes[0].figure.tight_layout()
    return fig or axes[0].figure
