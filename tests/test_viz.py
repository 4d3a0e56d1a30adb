"""Tests of the figures the notebooks and the CLI draw (sslcookbook.viz)."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import pytest
import torch

from sslcookbook import augment, data, viz

matplotlib.use("Agg")


def _titles(fig) -> list[str]:
    return [ax.get_title() for ax in fig.axes]


def test_show_views_stacks_multicrop_views_of_different_sizes():
    shapes = data.make_shapes(5, size=32, seed=0)
    views = augment.preset("multicrop", shapes.image_shape, num_local=3, local_size=12)
    fig = viz.show_views(shapes.images, views, n=4, generator=torch.Generator().manual_seed(0))
    titles = _titles(fig)
    assert len(titles) == 4 * (1 + 2 + 3)  # originals, 2 global and 3 local crops, 4 images each
    assert titles[:4] == ["original"] * 4 and titles[4:8] == ["view 1"] * 4
    assert titles[-4:] == ["view 5 (12×12)"] * 4  # the local crops are enlarged and labelled
    for ax in fig.axes:
        assert ax.images[0].get_array().shape[:2] == (32, 32)
    matplotlib.pyplot.close(fig)
    names = ["global 1", "global 2", "local 1", "local 2", "local 3"]
    fig = viz.show_views(shapes.images, views, n=2, view_names=names)
    assert _titles(fig)[-2:] == ["local 3 (12×12)"] * 2
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="3 names for 5 views"):
        viz.show_views(shapes.images, views, n=2, view_names=names[:3])


def test_show_views_resizes_originals_to_the_view_size():
    digits = data.load("digits", "train")
    views = augment.preset("digits", digits.image_shape, size=16)
    fig = viz.show_views(digits.images, views, n=3)
    assert _titles(fig) == ["original"] * 3 + ["view 1"] * 3 + ["view 2"] * 3
    assert {ax.images[0].get_array().shape[:2] for ax in fig.axes} == {(16, 16)}
    matplotlib.pyplot.close(fig)


def test_plot_on_circle_draws_one_panel_per_embedding_and_checks_shapes():
    labels = torch.arange(12) % 3
    panels = {"untrained": torch.randn(12, 2), "trained": torch.randn(12, 2)}
    fig = viz.plot_on_circle(panels, labels, classes=["a", "b", "c"], notes={"trained": "align 0.1"})
    assert _titles(fig) == ["untrained", "trained"]
    assert fig.axes[1].get_xlabel() == "align 0.1"
    offsets = fig.axes[0].collections[0].get_offsets()
    radii = (offsets**2).sum(1) ** 0.5
    assert abs(radii - (1 + 0.06 * labels.numpy())).max() < 1e-5  # class k on the ring of radius 1 + 0.06k
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="expected 12×2"):
        viz.plot_on_circle({"3-D": torch.randn(12, 3)}, labels)


def test_plot_streaming_lse_draws_tiles_and_running_estimates():
    logits = torch.randn(4, 10)
    running = torch.stack([torch.logsumexp(logits[:, : 3 * (t + 1)], dim=1) for t in range(4)])
    fig = viz.plot_streaming_lse(logits, block=3, running=running)
    assert len(fig.axes[0].lines) == 3  # boundaries between the 4 tiles of 3, 3, 3 and 1 keys
    assert len(fig.axes[1].lines) == 2 * 4  # a running curve and its exact value for each row
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="running must be"):
        viz.plot_streaming_lse(logits, block=5, running=running)


def test_plot_singular_values_separates_healthy_dimensional_and_complete_collapse():
    generator = torch.Generator().manual_seed(0)
    healthy = torch.randn(200, 16, generator=generator)
    dimensional = torch.randn(200, 2, generator=generator) @ torch.randn(2, 16, generator=generator)
    complete = torch.ones(200, 16) + 1e-4 * torch.randn(200, 16, generator=generator)
    features = {"healthy": healthy, "dimensional": dimensional, "complete": complete}
    spectra = {name: viz.embedding_spectrum(z) for name, z in features.items()}
    for name, spectrum in spectra.items():
        assert spectrum.shape == (16,) and bool((spectrum[:-1] >= spectrum[1:] - 1e-12).all()), name
        # The eigenvalues sum to the total variance of the unit-norm rows: 1 - |mean|^2.
        unit = torch.nn.functional.normalize(features[name].double(), dim=1)
        assert torch.allclose(spectrum.sum(), 1 - unit.mean(0).square().sum(), atol=1e-9), name
    assert spectra["healthy"][8] > 1e-2 and spectra["dimensional"][2] < 1e-12  # rank 2: nothing after
    assert spectra["complete"][0] < 1e-6 < spectra["dimensional"][0]
    fig = viz.plot_singular_values(features, floor=1e-10)
    (ax,) = fig.axes
    assert [line.get_label() for line in ax.lines] == list(features) and ax.get_yscale() == "log"
    assert min(ax.lines[1].get_ydata()) == 1e-10  # the collapsed tail sits on the floor, not at log(0)
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="N×D"):
        viz.embedding_spectrum(torch.zeros(5))
    with pytest.raises(ValueError, match="at least 2 rows"):
        viz.embedding_spectrum(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="empty"):
        viz.plot_singular_values({})


def test_plot_block_diagram_draws_boxes_arrows_and_labels():
    boxes = {"x": (0, 0, "view"), "f": (2, 0, "encoder"), "t": (2, -1, "target", "#eeeeee")}
    arrows = [("x", "f"), ("f", "t", {"text": "EMA", "dashed": True, "rad": 0.2})]
    fig = viz.plot_block_diagram(boxes, arrows, title="flow")
    (ax,) = fig.axes
    texts = [t.get_text() for t in ax.texts]
    assert texts[:3] == ["view", "encoder", "target"] and "EMA" in texts
    assert len([c for c in ax.get_children() if isinstance(c, matplotlib.text.Annotation)]) == 2
    assert ax.get_title() == "flow"
    fig.canvas.draw()  # the arrows are clipped to the boxes at draw time
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="names no box"):
        viz.plot_block_diagram(boxes, [("x", "loss")])
    with pytest.raises(ValueError, match=r"\(x, y, text\)"):
        viz.plot_block_diagram({"x": (0, 0)}, [])


def test_show_pretext_tasks_draws_the_three_tasks_on_tiny_input():
    image = torch.rand(3, 8, 8)
    patches = (torch.rand(3, 3, 3), torch.rand(3, 3, 3))
    labels = {"rotation": "ok", "jigsaw": "ok", "position": "ok"}
    tiles = torch.rand(4, 3, 3, 3)
    fig = viz.show_pretext_tasks(image, torch.rand(4, 3, 8, 8), tiles, patches, labels=labels)
    assert len(fig.axes) == 1 + 4 + 4 + 2
    plt.close(fig)
    with pytest.raises(ValueError, match="square grid"):
        viz.show_pretext_tasks(image, torch.rand(4, 3, 8, 8), torch.rand(3, 3, 3, 3), (image, image))


def test_plot_two_view_pipeline_draws_the_image_its_two_views_and_the_stages():
    digits = data.load("digits", "train")
    views = augment.preset("digits", digits.image_shape)
    fig = viz.plot_two_view_pipeline(digits.images[0], views, generator=torch.Generator().manual_seed(0))
    ax = fig.axes[0]
    assert len(ax.images) == 3  # the image and its two views, drawn from the tensors
    assert ax.images[0].get_array().shape[:2] == (8, 8)
    assert not (ax.images[1].get_array() == ax.images[2].get_array()).all()  # two different views
    texts = [t.get_text() for t in ax.texts]
    for stage in ("image x", "view 1", "view 2", "encoder f", "projector g", "z₁", "z₂"):
        assert stage in texts
    assert texts.count("encoder f") == 2 and any(t.startswith("loss") for t in texts)
    matplotlib.pyplot.close(fig)
    shapes = data.make_shapes(2, size=32, seed=0)  # colour images draw in colour
    fig = viz.plot_two_view_pipeline(
        shapes.images[0], augment.preset("simclr", shapes.image_shape), loss="NT-Xent"
    )
    assert fig.axes[0].images[0].get_array().shape == (32, 32, 3) and "NT-Xent" in _titles_and_texts(fig)
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="one C×H×W tensor"):
        viz.plot_two_view_pipeline(digits.images[:2], views)
    one_view = augment.preset("digits", digits.image_shape, num_views=1)
    with pytest.raises(ValueError, match="at least two views"):
        viz.plot_two_view_pipeline(digits.images[0], one_view)


def _titles_and_texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_plot_prototype_usage_ranks_the_shares_and_names_the_used_prototypes():
    spread = torch.arange(12) % 4  # every prototype gets 3 of the 12 images
    collapsed = torch.zeros(12, dtype=torch.long)
    fig = viz.plot_prototype_usage({"spread": spread, "collapsed": collapsed}, 4)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0].startswith("spread: 4/4 used, entropy 1.39")
    assert labels[1].startswith("collapsed: 1/4 used, entropy 0.00")
    assert list(ax.lines[1].get_ydata()) == [1.0, 0.0, 0.0, 0.0]  # ranked shares
    plt.close(fig)
    with pytest.raises(ValueError, match="outside \\[0, 4\\)"):
        viz.plot_prototype_usage({"bad": torch.tensor([0, 4])}, 4)
    with pytest.raises(ValueError, match="integer tensor"):
        viz.plot_prototype_usage({"bad": torch.rand(3)}, 4)


def test_plot_matrices_draws_one_heat_map_per_matrix_on_one_scale():
    fig = viz.plot_matrices({"identity": torch.eye(4), "random": torch.randn(4, 4)}, vmax=2.0, title="C")
    heat_maps = [ax for ax in fig.axes if ax.images and ax.get_title()]
    assert [ax.get_title() for ax in heat_maps] == ["identity", "random"]
    assert heat_maps[0].images[0].get_clim() == (-2.0, 2.0)
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="2-D tensor"):
        viz.plot_matrices({"vector": torch.ones(3)})
    with pytest.raises(ValueError, match="empty"):
        viz.plot_matrices({})


def test_show_image_rows_draws_one_row_per_batch_with_the_patch_grid():
    rows = {"masked": torch.rand(3, 1, 8, 8), "reconstruction": torch.rand(4, 1, 8, 8) * 3 - 1}
    fig = viz.show_image_rows(rows, n=5, patch_size=2)
    assert len(fig.axes) == 2 * 3  # n is cut to the smallest batch
    assert fig.axes[0].get_ylabel() == "masked" and fig.axes[3].get_ylabel() == "reconstruction"
    assert len(fig.axes[0].lines) == 6  # 3 vertical + 3 horizontal grid lines on an 8-px image
    assert fig.axes[3].images[0].get_array().max() <= 1  # clipped for viewing
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="rows is empty"):
        viz.show_image_rows({})


def test_plot_patch_masks_draws_context_targets_and_block_masks():
    from sslcookbook.losses import block_masks, multiblock_masks

    images = data.load("digits", "train").images[:3]
    context, targets = multiblock_masks(3, 4, generator=torch.Generator().manual_seed(0))
    fig = viz.plot_patch_masks(images, 2, context=context, targets=targets, n=3)
    assert len(fig.axes) == 3
    assert len(fig.axes[0].patches) == context.shape[1] + targets[0].numel()
    assert "context" in fig.axes[0].get_title()
    matplotlib.pyplot.close(fig)
    masked = block_masks(3, 4, generator=torch.Generator().manual_seed(0))
    fig = viz.plot_patch_masks(images, 2, masked=masked, n=2)
    assert len(fig.axes) == 2 and len(fig.axes[1].patches) == int(masked[1].sum())
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="nothing to draw"):
        viz.plot_patch_masks(images, 2)


def test_plot_attention_maps_draws_each_head_and_the_mean_and_scores_the_object():
    from sslcookbook.models import vit_tiny

    shapes, masks = data.make_shapes_with_masks(3, size=16, seed=0)
    torch.manual_seed(0)
    vit = vit_tiny(in_channels=3, image_size=16, depth=1).eval()  # 3 heads, 4×4 patches of 4 px
    with torch.no_grad():
        maps = vit.attention_maps(shapes.images.float() / 255)
    fig = viz.plot_attention_maps(shapes.images, {"a": maps, "b": maps}, masks=masks, n=2)
    assert len(fig.axes) == 2 * 2 * (3 + 2)  # (image, name) rows × (image, 3 heads, mean)
    titles = _titles(fig)
    assert "mean" in " ".join(titles) and sum("on object" in t for t in titles) == 2 * 2 * 4
    plt.close(fig)
    plt.close(viz.plot_attention_maps(shapes.images, maps))  # one encoder, no masks
    # A map on the object's patches only scores 1 where those patches are all object, a uniform map its area
    object_patch = torch.zeros(1, 1, 4, 4)
    object_patch[0, 0, 1, 2] = 1.0
    mask = torch.zeros(1, 16, 16, dtype=torch.bool)
    mask[0, 4:8, 8:12] = True
    assert viz.attention_mass_on(object_patch, mask).item() == pytest.approx(1.0)
    assert viz.attention_mass_on(torch.ones(1, 1, 4, 4), mask).item() == pytest.approx(1 / 16)
    with pytest.raises(ValueError, match="B×heads×gh×gw"):
        viz.plot_attention_maps(shapes.images, maps[0])


def test_plot_self_training_draws_one_panel_per_key():
    rows = [{"step": s, "pseudo_accuracy_all": s / 40, "mask_rate": s / 20, "loss": 1} for s in range(1, 21)]
    fig = viz.plot_self_training({"a": rows, "b": rows[:3]}, smooth=5)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 2
    assert len(fig.axes[0].lines[0].get_xdata()) == 16  # 20 points averaged over 5: 16
    plt.close(fig)
    plt.close(viz.plot_self_training({"a": rows}, keys=("loss",), smooth=1))
    with pytest.raises(ValueError, match="at least one run"):
        viz.plot_self_training({})


def test_plot_series_rows_and_forecasts_draw_on_tiny_input():
    series = torch.randn(3, 2, 20)
    fig = viz.plot_series_rows({"series": series, "view": series * 2}, n=2, titles=["a", "b"])
    assert len(fig.axes) == 4 and len(fig.axes[0].lines) == 2 and fig.axes[0].get_title() == "a"
    plt.close(fig)
    with pytest.raises(ValueError, match="B×C×L"):
        viz.plot_series_rows({"bad": torch.zeros(3, 4)})
    naive = {"naive": series[:, :, 14:15].expand(-1, -1, 5)}
    fig = viz.plot_forecasts(series[:, :, :15], series[:, :, 15:], naive, n=2)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 3
    plt.close(fig)


def test_plot_self_training_curves_draws_a_line_per_method_and_panel():
    rows = [{"iteration": i, "sampled": 10 * i, "accuracy": 0.1 * i, "pass@4": 0.2 * i} for i in range(3)]
    fig = viz.plot_self_training_curves({"a": rows, "b": rows[:2]}, metrics=("accuracy", "pass@4"))
    assert _titles(fig) == ["accuracy", "pass@4"]
    assert len(fig.axes[0].lines) == 3 and list(fig.axes[1].lines[0].get_ydata()) == [0.0, 20.0, 40.0]
    plt.close(fig)
    with pytest.raises(ValueError, match="non-empty"):
        viz.plot_self_training_curves({"a": []})
