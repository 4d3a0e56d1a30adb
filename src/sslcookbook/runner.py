"""Run a recipe end to end (train → evaluate against baselines → figures → results.json), evaluate or
export what a run trained.

This is what ``sslcookbook run | eval | export`` and the recipe cards call.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import torch

from . import data as datasets
from . import distributed
from .data.shards import evaluation_sets
from .evaluate import compare_baselines, embed, fine_tune, supervised_baseline
from .methods import SSLMethod
from .models import export_backbone
from .profiles import default_device, downloads_data
from .recipes import Resolved, get_recipe
from .settings import FineTuneProtocol
from .train import fit, load_checkpoint


def load_splits(name: str, train_subset: int | None = None, test_subset: int | None = None, download=False):
    """Train and test splits of a dataset; a folder without a test split holds out 10% of train."""
    train = datasets.load(name, "train", download=download)
    try:
        test = datasets.load(name, "test", download=download)
    except ValueError as e:
        if not name.startswith(("folder:", "shards:")):
            raise
        print(f"{e}: holding out 10% of the training images for evaluation")
        train, test = train.split(0.1, seed=0)
    if train_subset:
        train = train.subset(train_subset, seed=0)
    if test_subset:
        test = test.subset(test_subset, seed=0)
    return train, test


def run_recipe(
    name: str,
    data: str | None = None,
    profile: str | None = None,
    epochs: int | None = None,
    device: str | None = None,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    figures: bool = True,
    download: bool = False,  # always True in the gpu and full profiles
    sync_bn: bool = False,
    overrides: Mapping[str, object] | None = None,
    fine_tuning: bool = True,
) -> dict:
    """Train recipe ``name`` on the profile's data, evaluate, write ``out/results.json`` and figures.

    ``overrides`` change any knob by dotted key (``{"train.lr": 0.1, "method.temperature": 0.2}``, see
    ``Recipe.resolve``); ``data``, ``epochs`` and ``sync_bn`` are shorthands for ``data``,
    ``train.epochs`` and ``train.sync_bn``. The resolved setting is written to ``out/config.json``
    (what ``sslcookbook show`` prints) and the overrides go into the checkpoint, so ``eval`` and
    ``export`` rebuild the same method.

    Returns the results dict: ``recipe, data, profile, epochs, seconds`` and, for the SSL encoder and
    the ``raw``-pixel and ``random``-init baselines, linear-probe top-1 at 1, 10 and all labels per
    class (``probe``), kNN top-1 (``knn``), RankMe and feature std; unless ``fine_tuning`` is False,
    ``fine_tune``: test top-1 at 1, 10 and all labels per class of the SSL encoder fine-tuned end to end
    (``ssl``, :func:`evaluate.fine_tune`) and of the same network trained from scratch on the same
    labelled images (``random``, :func:`evaluate.supervised_baseline`), ``FINE_TUNE_STEPS[profile]``
    steps per labelled draw (``fine_tune_steps``) unless the setting's ``fine_tune`` says otherwise
    (its views and optimiser settings in words: ``fine_tune_views``).

    Under ``torchrun --nproc_per_node=N`` every rank trains on 1/N of each batch (DDP; ``sync_bn``
    for SyncBatchNorm) and rank 0 evaluates and writes the results; the other ranks return ``{}``.
    """
    shorthands = {"data": data, "train.epochs": epochs, "train.sync_bn": sync_bn or None}
    overrides = merge_overrides({k: v for k, v in shorthands.items() if v is not None}, overrides)
    resolved = get_recipe(name).resolve(profile, overrides)
    setting, profile = resolved.setting, resolved.profile
    data = setting.data
    device = distributed.init_from_env(device)
    out = Path(out or Path("runs") / f"{name}-{data.replace(':', '_').replace('/', '_')}-{profile}")
    if distributed.is_main_process():
        out.mkdir(parents=True, exist_ok=True)
        _write_json(out / "config.json", resolved.to_dict())
    download = download or downloads_data(profile)  # gpu and full fetch CIFAR-10 on first use
    train_ds, test_ds = load_splits(data, setting.train_subset, setting.test_subset, download=download)
    torch.manual_seed(setting.train.seed)  # the initial weights are part of the recipe
    method = resolved.build(in_channels=train_ds.image_shape[0], image_size=train_ds.image_shape[-1])
    views = resolved.views(train_ds.image_shape)
    config = setting.train
    meta = {
        "recipe": name,
        "profile": profile,
        "data": data,
        "in_channels": train_ds.image_shape[0],
        "image_size": train_ds.image_shape[-1],
        "overrides": overrides,
    }

    start = time.perf_counter()
    history = fit(
        method,
        train_ds,
        views,
        config,
        device=device,
        checkpoint_dir=out / "checkpoints",
        resume=resume,
        progress=progress,
        meta=meta,
    )
    seconds = time.perf_counter() - start
    if not distributed.is_main_process():
        return {}
    train_ds, test_ds = evaluation_sets(train_ds, test_ds)  # streamed splits: their first 10,000 images

    results = {
        **meta,
        "epochs": config.epochs,
        "seconds": round(seconds, 2),
        "device": str(device),
        "world_size": distributed.world_size(),
        "torch": torch.__version__,
        "final_loss": history.losses[-1] if history.losses else None,
    }
    protocol = resolved.fine_tune_protocol(train_ds.image_shape) if fine_tuning else None
    results.update(_evaluate(method, train_ds, test_ds, device, protocol, amp=setting.train.amp is True))
    if figures:
        results["figures"] = _figures(method, history, train_ds, test_ds, results, out, device)
    _write_json(out / "results.json", results)
    return results


def merge_overrides(shorthands: Mapping[str, object], overrides: Mapping[str, object] | None) -> dict:
    """``shorthands`` (from flags such as ``--epochs``) and ``overrides``; the same key twice with two
    different values is an error rather than a silent choice."""
    merged = dict(shorthands)
    for key, value in (overrides or {}).items():
        if key in merged and merged[key] != value:
            raise ValueError(f"{key} is given twice ({merged[key]!r} and {value!r}): keep one")
        merged[key] = value
    return merged


def load_trained_method(path: str | os.PathLike) -> tuple[SSLMethod, Resolved, dict]:
    """Rebuild the method in a checkpoint written by ``run_recipe``: ``(method, resolved setting, state)``."""
    state = load_checkpoint(path)
    meta = state.get("meta") or {}
    if "recipe" not in meta:
        raise ValueError(f"{path} has no recipe metadata: evaluate it in Python with sslcookbook.evaluate")
    resolved = get_recipe(meta["recipe"]).resolve(meta["profile"], meta.get("overrides"))
    method = resolved.build(in_channels=meta["in_channels"], image_size=meta.get("image_size"))
    method.load_state_dict(state["method"])
    return method, resolved, state


def evaluate_checkpoint(
    path: str | os.PathLike, data: str | None = None, device: str | None = None, fine_tuning: bool = True
) -> dict:
    """Rebuild the method stored in a checkpoint written by ``run_recipe`` and evaluate it as the run did
    (fine-tuning with the run's profile's step budget unless ``fine_tuning`` is False)."""
    method, resolved, state = load_trained_method(path)
    meta, setting = state["meta"], resolved.setting
    train_ds, test_ds = load_splits(data or meta["data"], setting.train_subset, setting.test_subset)
    train_ds, test_ds = evaluation_sets(train_ds, test_ds)
    device = default_device(device)
    method.to(device)
    results = {**meta, "checkpoint": str(path), "epochs_trained": state["epoch"]}
    protocol = resolved.fine_tune_protocol(train_ds.image_shape) if fine_tuning else None
    results.update(_evaluate(method, train_ds, test_ds, device, protocol, amp=setting.train.amp is True))
    return results


def export_checkpoint(path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the trained backbone of a ``run_recipe`` checkpoint to ``out`` (safetensors) with the
    metadata ``sslcookbook.models.load_backbone`` rebuilds it from."""
    method, resolved, state = load_trained_method(path)
    meta, setting = state["meta"], resolved.setting
    return export_backbone(
        method.evaluation_backbone,
        out,
        name=setting.backbone,
        kwargs=resolved.backbone_kwargs(meta.get("image_size")),
        in_channels=meta["in_channels"],
        recipe=resolved.recipe,
        profile=resolved.profile,
        data=meta["data"],
        epochs_trained=state["epoch"],
    )


def _evaluate(
    method, train_ds, test_ds, device, fine_tune_protocol: FineTuneProtocol | None = None, amp: bool = False
) -> dict:
    """The frozen-feature report for ssl / raw / random; with ``fine_tune_protocol``
    (``Resolved.fine_tune_protocol``), also end-to-end training on the probe's label draws: from the SSL
    weights (``ssl``, with the protocol's optimiser settings) and from scratch (``random``, with
    ``supervised_baseline``'s optimiser), both with the same steps and views, under bf16 autocast when
    ``amp`` (the recipe's ``train.amp`` set to True: left at None, the report fine-tunes in fp32 as it
    always has). Raw pixels have no network to fine-tune."""
    encoder = method.evaluation_backbone  # I-JEPA: its target encoder, as the paper evaluates
    scores = compare_baselines(encoder, train_ds, test_ds, device=device)
    results = {
        "probe": {k: v["probe"] for k, v in scores.items()},
        "knn": {k: v["knn"] for k, v in scores.items()},
        "rankme": {k: v["rankme"] for k, v in scores.items()},
        "feature_std": {k: v["feature_std"] for k, v in scores.items()},
    }
    if fine_tune_protocol is not None:
        # By default no views: one protocol for every method, whatever augmentations its pre-training used;
        # a recipe's Setting.fine_tune may set its own (the ViT recipes: see recipes.py).
        steps, views, described, optimizer = fine_tune_protocol
        splits = (train_ds.images, train_ds.labels, test_ds.images, test_ds.labels)
        results["fine_tune_steps"] = steps
        results["fine_tune_views"] = described
        results["fine_tune"] = {
            "ssl": fine_tune(encoder, *splits, steps=steps, views=views, device=device, amp=amp, **optimizer),
            "random": supervised_baseline(encoder, *splits, steps=steps, views=views, device=device, amp=amp),
        }
    if getattr(method, "uses_text", False) and getattr(test_ds, "tokens", None) is not None:
        results.update(_language_image_scores(method, test_ds))
    return results


def _language_image_scores(method, test_ds) -> dict:
    """Zero-shot top-1 from the class prompts, each image given the class of its best-matching prompt
    (all test images, and those whose attribute combination training never showed, when there are
    any), and image↔text recall@1/5 on the test pairs."""
    from .evaluate import retrieval_recall, zero_shot_accuracy

    zero_shot = {"all": zero_shot_accuracy(method, test_ds, ensemble="max")}
    if test_ds.held_out.any():
        zero_shot["held_out"] = zero_shot_accuracy(method, test_ds, test_ds.held_out, ensemble="max")
    return {"zero_shot": zero_shot, "retrieval": retrieval_recall(method, test_ds)}


def _figures(method, history, train_ds, test_ds, results, out: Path, device) -> list[str]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from . import viz

    test_features = embed(method.evaluation_backbone, test_ds.images, device=device)
    train_features = embed(method.evaluation_backbone, train_ds.images, device=device)
    made = {
        "loss.png": viz.plot_loss(history),
        "embedding.png": viz.plot_embedding(
            test_features, test_ds.labels, test_ds.classes, title=f"{results['recipe']} test embedding (PCA)"
        ),
        "neighbours.png": viz.plot_neighbours(test_ds.images, test_features, train_ds.images, train_features),
        "label_efficiency.png": viz.plot_label_efficiency(results["probe"]),
    }
    for fname, fig in made.items():
        fig.savefig(out / fname, dpi=120, bbox_inches="tight")
        plt.close(fig)
    return sorted(made)


def _write_json(path: Path, obj: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


LABEL_KEYS = ("1", "10", "all")


def format_results(results: dict) -> str:
    """A small text table of probe, kNN and (when the run fine-tuned) fine-tuning accuracies for ssl / raw /
    random; the random row's fine-tuning is the network trained from scratch."""
    tuned = results.get("fine_tune") or {}
    header = f"{'encoder':<8} {'probe@1':>8} {'probe@10':>9} {'probe@all':>10} {'kNN':>7} {'RankMe':>7}"
    if tuned:
        header += f" {'ft@1':>7} {'ft@10':>7} {'ft@all':>7}"
    lines = [header]
    for name, accs in results["probe"].items():
        line = (
            f"{name:<8} {100 * accs['1']:>7.1f}% {100 * accs['10']:>8.1f}% {100 * accs['all']:>9.1f}% "
            f"{100 * results['knn'][name]:>6.1f}% {results['rankme'][name]:>7.1f}"
        )
        if tuned:
            cells = [f"{100 * tuned[name][k]:>6.1f}%" if name in tuned else f"{'—':>7}" for k in LABEL_KEYS]
            line += " " + " ".join(cells)
        lines.append(line)
    if tuned:
        lines.append(
            f"ft = fine-tuned end to end, {results.get('fine_tune_steps', '?')} steps per labelled draw"
            f"{', ' + results['fine_tune_views'] if results.get('fine_tune_views') else ''} "
            "(ssl: from the SSL weights; random: the same network trained from scratch)"
        )
    return "\n".join(lines)
