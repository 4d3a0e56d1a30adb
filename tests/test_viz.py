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
