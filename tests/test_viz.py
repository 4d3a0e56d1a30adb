"""Tests of the figures the notebooks and the CLI draw (sslcookbook.viz)."""

from __future__ import annotations

import matplotlib
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
