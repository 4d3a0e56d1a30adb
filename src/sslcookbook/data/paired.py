"""Image–caption pairs: generated ones that need no download, and ``pairs:<path>`` for real ones.

A :class:`PairedDataset` is an :class:`~sslcookbook.data.ImageDataset` (images, class labels for the
probes) whose every image also has a caption, its token ids (``tokens``, N×L, what ``fit`` hands a
language–image method with each batch), the tokenizer that made them, and per class the prompts that
zero-shot classification turns into a classifier.

- ``shape_pairs``: the synthetic shapes with captions built from their attributes, "a small red triangle
  in the top left corner on a dark background". One (shape, colour) combination per shape never appears
  in the train split (colour index = shape index mod 6); the test split has every combination and marks
  the held-out ones (``held_out``), so zero-shot transfer to unseen combinations is measured honestly.
- ``digit_pairs``: the 8×8 digits with templated captions ("the digit seven", "a handwritten seven", ...).
- ``pairs:<path>``: a folder of images with ``captions.csv`` or ``captions.jsonl`` (or the path of such a
  file, its images relative to its folder), columns ``file`` and ``caption`` and, optionally, ``label``
  (a class name, for the probes and zero-shot prompts) and ``split`` (``train``/``test``; without it every
  row is the train split). The vocabulary is built from the train rows' captions.
- ``pairs:<path>`` of a COCO captions tree (torchvision's ``CocoCaptions`` layout): a folder holding
  ``captions_*.json`` annotation files (itself or in its ``annotations/``), or the path of one; the file
  whose name says ``train`` is the train split, the one that says ``val`` or ``test`` the test split (a
  lone file is the train split). The images of ``captions_<name>.json`` are in ``<root>/<name>/``,
  ``<root>/images/<name>/``, ``<root>/images/`` or ``<root>/``, the first that holds them (``<root>``:
  the folder above ``annotations/``). Each image keeps its first caption (COCO has about five); no labels.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .dataset import ImageDataset
from .shapes import SHAPE_CLASSES, _rasterise
from .text import WordTokenizer, words

SHAPE_COLOURS = {
    "red": (0.85, 0.12, 0.12),
    "green": (0.15, 0.7, 0.2),
    "blue": (0.2, 0.35, 0.95),
    "yellow": (0.95, 0.85, 0.1),
    "purple": (0.6, 0.2, 0.8),
    "orange": (1.0, 0.5, 0.05),
}
SHAPE_SIZES = {"small": (0.35, 0.45), "large": (0.6, 0.72)}  # scale, as a fraction of the half-width
SHAPE_CORNERS = ("top left", "top right", "bottom left", "bottom right")
SHAPE_BACKGROUNDS = {"dark": (0.05, 0.25), "light": (0.75, 0.95)}  # grey level of the background
SHAPE_PAIRS_PIXELS = 24
SHAPE_PAIRS_TRAIN_SIZE, SHAPE_PAIRS_TEST_SIZE = 4000, 1000
SHAPE_CAPTION_LENGTH = 16  # tokens: <sot>, 13 words, <eot>, a spare
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIGIT_TEMPLATES = (
    "the digit {}",
    "a handwritten {}",
    "a scanned picture of the number {}",
    "{} written by hand",
    "a small blurry {}",
)
DIGIT_CAPTION_LENGTH = 8
PAIRS_MAX_LENGTH = 32
CAPTION_FILES = ("captions.csv", "captions.jsonl")
COCO_PATTERN = "captions_*.json"  # COCO's caption annotations: captions_train2017.json, captions_val2017.json


@dataclass(eq=False, repr=False)
class PairedDataset(ImageDataset):
    """An ImageDataset with one caption per image; see the module docstring.

    ``captions``: N strings; ``tokens``: int64 N×L token ids (made with ``tokenizer`` when not given);
    ``prompts``: per class, the texts whose mean embedding is that class in zero-shot classification;
    ``held_out``: bool N, the images whose attribute combination the train split never shows.
    """

    captions: list[str] = field(default_factory=list)
    tokenizer: WordTokenizer | None = None
    tokens: torch.Tensor | None = None
    prompts: list[list[str]] = field(default_factory=list)
    held_out: torch.Tensor | None = None
    caption_length: int = SHAPE_CAPTION_LENGTH

    def __post_init__(self) -> None:
        super().__post_init__()
        n = len(self)
        if len(self.captions) != n:
            raise ValueError(
                f"a paired data set needs one caption per image: {n} images, {len(self.captions)} captions"
            )
        if not isinstance(self.tokenizer, WordTokenizer):
            raise TypeError("a paired data set needs its tokenizer (WordTokenizer.from_texts(captions))")
        if self.tokens is None:
            self.tokens = self.tokenizer.encode(self.captions, self.caption_length)
        if self.tokens.dtype != torch.int64 or self.tokens.dim() != 2 or self.tokens.shape[0] != n:
            raise ValueError(
                f"tokens must be int64 N×L with N = {n}, got {self.tokens.dtype} {tuple(self.tokens.shape)}"
            )
        self.held_out = torch.zeros(n, dtype=torch.bool) if self.held_out is None else self.held_out.bool()
        self.prompts = [list(p) for p in self.prompts] or [[name] for name in self.classes]
        if len(self.prompts) != len(self.classes) or not all(self.prompts):
            raise ValueError(
                f"prompts must give at least one text for each of the {len(self.classes)} classes"
            )

    def __repr__(self) -> str:
        return super().__repr__().replace("ImageDataset(", "PairedDataset(", 1)

    def _take(self, keep: torch.Tensor, tag: str) -> PairedDataset:
        base = super()._take(keep, tag)
        rows = keep.cpu()
        return PairedDataset(
            base.images,
            base.labels,
            base.classes,
            base.name,
            captions=[self.captions[i] for i in rows.tolist()],
            tokenizer=self.tokenizer,
            tokens=self.tokens.index_select(0, rows.to(self.tokens.device)),
            prompts=self.prompts,
            held_out=self.held_out[rows],
            caption_length=self.caption_length,
        )


# ------------------------------------------------------------------------------------------------
# Generated pairs
# ------------------------------------------------------------------------------------------------


def shape_caption(shape: str, colour: str, size: str, corner: str, background: str) -> str:
    return f"a {size} {colour} {shape} in the {corner} corner on a {background} background"


def is_held_out(shape: int, colour: int) -> bool:
    """The (shape, colour) combinations the train split of ``shape_pairs`` never shows: one per shape."""
    return colour == shape % len(SHAPE_COLOURS)


def shape_prompts() -> list[list[str]]:
    """Per shape, every caption the generator can write for it (zero-shot's prompt ensemble)."""
    return [
        [
            shape_caption(shape, *attributes)
            for attributes in itertools.product(SHAPE_COLOURS, SHAPE_SIZES, SHAPE_CORNERS, SHAPE_BACKGROUNDS)
        ]
        for shape in SHAPE_CLASSES
    ]


def make_shape_pairs(
    n: int, split: str = "train", size: int = SHAPE_PAIRS_PIXELS, seed: int = 0
) -> PairedDataset:
    """``n`` shapes (uint8 n×3×size×size) with captions of their attributes, deterministic in ``seed``.

    Attributes, drawn independently: the shape (label), colour (one of :data:`SHAPE_COLOURS`, ±0.05
    jitter), size (small or large), corner (the centre 0.18–0.3 of the half-width from the middle in
    both axes), background (a dark or light grey gradient) and rotation (uniform, not captioned). In the
    ``train`` split the held-out (shape, colour) combinations are redrawn with another colour.
    """
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}: choose 'train' or 'test'")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int (number of images), got {n!r}")
    g = torch.Generator().manual_seed(seed)
    num_colours = len(SHAPE_COLOURS)
    labels = (torch.arange(n) % len(SHAPE_CLASSES))[torch.randperm(n, generator=g)]
    colours = torch.randint(num_colours, (n,), generator=g)
    if split == "train":  # move held-out combinations to the next colour: every other one stays uniform
        held = colours == labels % num_colours
        colours[held] = (
            colours[held] + 1 + torch.randint(num_colours - 1, (int(held.sum()),), generator=g)
        ) % num_colours
    sizes = torch.randint(len(SHAPE_SIZES), (n,), generator=g)
    corners = torch.randint(len(SHAPE_CORNERS), (n,), generator=g)
    backgrounds = torch.randint(len(SHAPE_BACKGROUNDS), (n,), generator=g)

    def uniform(low, high, *shape):
        low, high = torch.as_tensor(low, dtype=torch.float32), torch.as_tensor(high, dtype=torch.float32)
        return low + (high - low) * torch.rand(*(shape or (n,)), generator=g)

    size_range = torch.tensor(list(SHAPE_SIZES.values()))[sizes]
    grey_range = torch.tensor(list(SHAPE_BACKGROUNDS.values()))[backgrounds]
    horizontal = torch.where(corners % 2 == 1, 1.0, -1.0)  # right: +x
    vertical = torch.where(corners >= 2, 1.0, -1.0)  # bottom: +y (rows grow downwards)
    bg_a = (uniform(grey_range[:, 0], grey_range[:, 1]).unsqueeze(1) + uniform(-0.04, 0.04, n, 3)).clamp(0, 1)
    angle = uniform(0, 2 * math.pi, n)
    params = {
        "cx": horizontal * uniform(0.18, 0.3, n),
        "cy": vertical * uniform(0.18, 0.3, n),
        "scale": uniform(size_range[:, 0], size_range[:, 1]),
        "angle": uniform(0, 2 * math.pi, n),
        "grad_cos": torch.cos(angle),
        "grad_sin": torch.sin(angle),
        "bg_a": bg_a,
        "bg_b": (bg_a + uniform(-0.1, 0.1, n, 3)).clamp(0, 1),
        "fg": (torch.tensor(list(SHAPE_COLOURS.values()))[colours] + uniform(-0.05, 0.05, n, 3)).clamp(0, 1),
        "noise_std": torch.full((n,), 0.02),
        "noise": torch.randn(n, 3, size, size, generator=g),
    }
    pixels = _rasterise(labels, params, size)
    images = (pixels * 255).round_().clamp_(0, 255).to(torch.uint8)
    colour_names, size_names, background_names = (
        list(SHAPE_COLOURS),
        list(SHAPE_SIZES),
        list(SHAPE_BACKGROUNDS),
    )
    captions = [
        shape_caption(SHAPE_CLASSES[s], colour_names[c], size_names[z], SHAPE_CORNERS[k], background_names[b])
        for s, c, z, k, b in zip(*(t.tolist() for t in (labels, colours, sizes, corners, backgrounds)))
    ]
    prompts = shape_prompts()
    return PairedDataset(
        images,
        labels,
        list(SHAPE_CLASSES),
        f"shape_pairs-{size}px-seed{seed}/{split}",
        captions=captions,
        tokenizer=WordTokenizer.from_texts(p for per_class in prompts for p in per_class),
        prompts=prompts,
        held_out=colours == labels % num_colours,
        caption_length=SHAPE_CAPTION_LENGTH,
    )


def digit_pairs(digits: ImageDataset, seed: int = 0) -> PairedDataset:
    """The digits with a caption each: a template of :data:`DIGIT_TEMPLATES` drawn per image (seeded)."""
    g = torch.Generator().manual_seed(seed)
    templates = torch.randint(len(DIGIT_TEMPLATES), (len(digits),), generator=g).tolist()
    captions = [DIGIT_TEMPLATES[t].format(DIGIT_WORDS[y]) for t, y in zip(templates, digits.labels.tolist())]
    prompts = [[template.format(word) for template in DIGIT_TEMPLATES] for word in DIGIT_WORDS]
    return PairedDataset(
        digits.images,
        digits.labels,
        list(digits.classes),
        digits.name.replace("digits", "digit_pairs", 1),
        captions=captions,
        tokenizer=WordTokenizer.from_texts(p for per_class in prompts for p in per_class),
        prompts=prompts,
        caption_length=DIGIT_CAPTION_LENGTH,
    )


# ------------------------------------------------------------------------------------------------
# pairs:<path>
# ------------------------------------------------------------------------------------------------


def load_pairs(path: str | os.PathLike, split: str) -> PairedDataset:
    """``split`` of the pairs described by a captions file or a COCO captions tree (see the module
    docstring)."""
    path = Path(path).expanduser()
    coco = _coco_annotation_files(path)
    if coco:
        return load_coco_captions(coco, split)
    caption_file = _caption_file(path)
    rows = _read_rows(caption_file)
    has_split = "split" in rows[0]
    if has_split:
        bad = sorted({row["split"] for row in rows} - {"train", "test"})
        if bad:
            raise ValueError(
                f"{caption_file}: the split column holds {bad}; use 'train' or 'test' in every row"
            )
    elif split == "test":
        raise ValueError(
            f"{caption_file} has no split column, so every row is the train split: load split='train', or "
            "add a 'split' column with 'train'/'test' per row"
        )
    train_rows = [row for row in rows if row.get("split", "train") == "train"]
    chosen = [row for row in rows if row.get("split", "train") == split]
    if not train_rows or not chosen:
        raise ValueError(f"{caption_file} has no rows for the {'train' if not train_rows else split} split")
    labelled = "label" in rows[0]
    classes = sorted({row["label"] for row in rows}) if labelled else ["unlabelled"]
    folder = caption_file.parent
    paths = []
    for row in chosen:
        image = folder / row["file"]
        if not image.is_file():
            raise FileNotFoundError(
                f"{caption_file}, line {row['_line']}: image {image} does not exist; fix the file column "
                f"(paths are relative to {folder}) or remove the row"
            )
        paths.append(str(image))
    from .folder import _decode_all, _stack_images

    images = _stack_images(paths, _decode_all(paths))
    longest = max(len(words(row["caption"])) for row in train_rows)
    return PairedDataset(
        images,
        torch.tensor([classes.index(row["label"]) if labelled else 0 for row in chosen]),
        classes,
        f"pairs:{caption_file}/{split}",
        captions=[row["caption"] for row in chosen],
        tokenizer=WordTokenizer.from_texts(row["caption"] for row in train_rows),
        prompts=[[f"a photo of a {name}"] for name in classes] if labelled else [],
        caption_length=min(longest + 2, PAIRS_MAX_LENGTH),
    )


def _caption_file(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: check the path after 'pairs:'")
    if path.is_file():
        if path.suffix.lower() not in (".csv", ".jsonl"):
            raise ValueError(
                f"pairs:{path} must be a .csv or .jsonl captions file, a COCO {COCO_PATTERN} annotation "
                "file, or a folder holding one"
            )
        return path
    found = [path / name for name in CAPTION_FILES if (path / name).is_file()]
    if len(found) != 1:
        what = "both" if found else "neither"
        raise FileNotFoundError(
            f"{path} holds {what} of {' and '.join(CAPTION_FILES)}: put exactly one captions file there, "
            "with columns file,caption (and optionally label, split), or pass the file's path after 'pairs:'"
            f"; a COCO captions tree needs its {COCO_PATTERN} annotation files there or in annotations/"
        )
    return found[0]


def _read_rows(caption_file: Path) -> list[dict]:
    """The rows as dicts with ``file`` and ``caption`` (and ``label``, ``split`` when present), checked."""
    if caption_file.suffix.lower() == ".csv":
        with open(caption_file, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = [{**row, "_line": i} for i, row in enumerate(reader, start=2)]
            columns = list(reader.fieldnames or [])
    else:
        rows = []
        with open(caption_file, encoding="utf-8") as f:
            for i, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        value = json.loads(line)
                    except json.JSONDecodeError as error:
                        raise ValueError(
                            f"{caption_file}, line {i} is not JSON ({error}): one object per line"
                        ) from error
                    if not isinstance(value, dict):
                        raise ValueError(
                            f"{caption_file}, line {i}: expected a JSON object such as "
                            '{"file": ..., "caption": ...}'
                        )
                    rows.append({**value, "_line": i})
        columns = list(rows[0]) if rows else []
    if not rows:
        raise ValueError(f"{caption_file} has no rows: add one line per image with its file and caption")
    missing = [c for c in ("file", "caption") if c not in columns]
    if missing:
        raise ValueError(
            f"{caption_file} has no {' or '.join(repr(c) for c in missing)} column (its columns: "
            f"{', '.join(c for c in columns if c != '_line')}): name the columns file and caption "
            "(optionally label and split)"
        )
    for row in rows:
        for column in ("file", "caption", *(c for c in ("label", "split") if c in columns)):
            value = row.get(column)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(
                    f"{caption_file}, line {row['_line']}: the {column} is empty; "
                    "fill it in or remove the row"
                )
        row["caption"] = row["caption"].strip()
    return rows


# ------------------------------------------------------------------------------------------------
# pairs:<path> of a COCO captions tree
# ------------------------------------------------------------------------------------------------


def _coco_annotation_files(path: Path) -> dict[str, Path]:
    """``{"train": file, "test": file}`` (or only train) of a COCO captions tree at ``path``; ``{}`` when
    ``path`` is not one (then it is a CSV/JSONL captions folder or file)."""
    if path.is_file():
        return {"train": path} if path.match(COCO_PATTERN) else {}
    if not path.is_dir():
        return {}
    found = sorted(path.glob(COCO_PATTERN)) or sorted((path / "annotations").glob(COCO_PATTERN))
    if not found:
        return {}
    if len(found) == 1:
        return {"train": found[0]}
    by_split: dict[str, list[Path]] = {"train": [], "test": []}
    for file in found:
        name = file.stem.lower()
        if "train" in name:
            by_split["train"].append(file)
        elif "val" in name or "test" in name:
            by_split["test"].append(file)
    names = ", ".join(f.name for f in found)
    for split, files in by_split.items():
        if len(files) != 1:
            raise ValueError(
                f"{path} holds the COCO annotation files {names}: expected exactly one whose name says "
                f"{'train' if split == 'train' else 'val or test'}, found {len(files)}; pass one file's "
                "path after 'pairs:' (it is then the train split) or keep one train and one val file"
            )
    return {split: files[0] for split, files in by_split.items()}


def load_coco_captions(annotation_files: dict[str, Path], split: str) -> PairedDataset:
    """``split`` of a COCO captions tree (``{"train": captions_train*.json, "test": captions_val*.json}``):
    each image with its first caption, the vocabulary from the train file's captions, no labels.

    With pycocotools installed the annotations are read by ``torchvision.datasets.CocoCaptions`` (its
    index: images by id, their captions in file order); without it, the JSON is parsed here with the
    standard library: pycocotools is a compiled extension that sslcookbook does not depend on, and the
    caption annotations need none of it (``images``: id, file_name; ``annotations``: image_id, caption).
    Both readers give the same rows.
    """
    if split not in annotation_files:
        only = annotation_files["train"]
        raise ValueError(
            f"{only.parent} has one COCO annotation file ({only.name}), which is the train split: load "
            "split='train', or point pairs: at a folder holding captions_train*.json and captions_val*.json"
        )
    train_rows = _coco_rows(annotation_files["train"])
    rows = train_rows if split == "train" else _coco_rows(annotation_files[split])
    from .folder import _decode_all, _stack_images

    paths = [str(file) for file, _ in rows]
    images = _stack_images(paths, _decode_all(paths))
    captions = [caption for _, caption in rows]
    longest = max(len(words(caption)) for _, caption in train_rows)
    return PairedDataset(
        images,
        torch.zeros(len(rows), dtype=torch.int64),
        ["unlabelled"],
        f"pairs:{annotation_files[split]}/{split}",
        captions=captions,
        tokenizer=WordTokenizer.from_texts(caption for _, caption in train_rows),
        caption_length=min(longest + 2, PAIRS_MAX_LENGTH),
    )


def _coco_rows(annotation_file: Path) -> list[tuple[Path, str]]:
    """(image path, first caption) per captioned image of one COCO annotation file, images by id."""
    folder = _coco_image_folder(annotation_file)
    try:
        import pycocotools  # noqa: F401
    except ImportError:
        images = _coco_index_from_json(annotation_file)
    else:
        images = _coco_index_from_torchvision(annotation_file, folder)
    rows = []
    for file_name, captions in images:
        if not captions:
            continue  # an image without captions has nothing to pair with
        image = folder / file_name
        if not image.is_file():
            raise FileNotFoundError(
                f"{annotation_file}: image {file_name!r} is not in {folder}; put the images the file lists "
                "there (or in images/), or remove their entries"
            )
        rows.append((image, captions[0].strip()))
    if not rows:
        raise ValueError(f"{annotation_file} has no captioned image: its annotations list no caption")
    return rows


def _coco_image_folder(annotation_file: Path) -> Path:
    """Where the images of ``captions_<name>.json`` are: the first of ``<root>/<name>``,
    ``<root>/images/<name>``, ``<root>/images``, ``<root>`` that exists (``<root>``: above annotations/)."""
    here = annotation_file.parent
    root = here.parent if here.name == "annotations" else here
    name = annotation_file.stem[len("captions_") :]
    candidates = [root / name, root / "images" / name, root / "images", root]
    return next(c for c in candidates if c.is_dir())


def _read_coco_json(annotation_file: Path) -> dict:
    """The parsed annotation file, checked: every image has an id and a file name, every annotation a
    caption and the id of a listed image (either reader would otherwise fail obscurely or drop it)."""
    try:
        with open(annotation_file, encoding="utf-8") as f:
            value = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(
            f"{annotation_file} is not valid JSON ({error}): the file is truncated or corrupt; download or "
            "regenerate it (COCO's captions_*.json)"
        ) from error
    if not isinstance(value, dict) or not all(
        isinstance(value.get(key), list) for key in ("images", "annotations")
    ):
        raise ValueError(
            f"{annotation_file} is not a COCO captions file: it needs an 'images' list (id, file_name) and "
            "an 'annotations' list (image_id, caption)"
        )
    for i, image in enumerate(value["images"]):
        if not isinstance(image, dict) or "id" not in image or not isinstance(image.get("file_name"), str):
            raise ValueError(f"{annotation_file}: images[{i}] needs an 'id' and a 'file_name'")
    listed = {image["id"] for image in value["images"]}
    for i, annotation in enumerate(value["annotations"]):
        if not isinstance(annotation, dict) or not isinstance(annotation.get("caption"), str):
            raise ValueError(f"{annotation_file}: annotations[{i}] needs an 'image_id' and a 'caption'")
        if annotation.get("image_id") not in listed:
            raise ValueError(
                f"{annotation_file}: annotations[{i}] is for image_id {annotation.get('image_id')!r}, which "
                "'images' does not list; add the image or remove the annotation"
            )
    return value


def _coco_index_from_json(annotation_file: Path) -> list[tuple[str, list[str]]]:
    """(file_name, captions in file order) per image, sorted by image id, with the standard library."""
    value = _read_coco_json(annotation_file)
    files = {image["id"]: image["file_name"] for image in value["images"]}
    captions: dict = {image_id: [] for image_id in files}
    for annotation in value["annotations"]:
        captions[annotation["image_id"]].append(annotation["caption"])
    return [(files[image_id], captions[image_id]) for image_id in sorted(files)]


def _coco_index_from_torchvision(annotation_file: Path, folder: Path) -> list[tuple[str, list[str]]]:
    """The same index read by ``torchvision.datasets.CocoCaptions`` (needs pycocotools)."""
    from torchvision.datasets import CocoCaptions

    _read_coco_json(annotation_file)  # the clear errors for a bad file, before pycocotools' own
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        dataset = CocoCaptions(str(folder), str(annotation_file))
    coco = dataset.coco
    return [
        (
            coco.loadImgs(image_id)[0]["file_name"],
            [a["caption"] for a in coco.loadAnns(coco.getAnnIds(imgIds=image_id))],
        )
        for image_id in dataset.ids
    ]
