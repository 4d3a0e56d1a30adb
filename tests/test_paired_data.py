"""Image–caption pairs: the generated shapes and digits with their captions, the word tokenizer, and
``pairs:<path>`` on a small generated folder with its bad inputs."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from sslcookbook import data
from sslcookbook.data import PairedDataset, WordTokenizer, make_shape_pairs
from sslcookbook.data.paired import SHAPE_COLOURS, is_held_out
from sslcookbook.data.shapes import SHAPE_CLASSES
from sslcookbook.data.text import EOT, PAD, SOT, UNK


def test_tokenizer_round_trip_unknown_words_truncation_and_bad_length():
    tok = WordTokenizer.from_texts(["A red Circle.", "a blue square"])
    assert tok.vocabulary[4:] == ["a", "red", "circle", "blue", "square"]
    ids = tok.encode(["a red square", "a green circle"], 6)
    assert ids.tolist() == [[SOT, 4, 5, 8, EOT, PAD], [SOT, 4, UNK, 6, EOT, PAD]]
    assert tok.decode(ids[0]) == "a red square"
    assert tok.encode("a red circle blue square", 4).tolist() == [SOT, 4, 5, EOT]  # <eot> survives the cut
    assert WordTokenizer.from_state_dict(tok.state_dict()).vocabulary == tok.vocabulary
    with pytest.raises(ValueError, match="length must be an int >= 2"):
        tok.encode("a", 1)


def test_shape_pairs_captions_name_the_attributes_and_hold_combinations_out_of_training():
    train, test = make_shape_pairs(400, "train", seed=0), make_shape_pairs(400, "test", seed=1)
    assert train.images.shape == (400, 3, 24, 24) and train.tokens.shape == (400, 16)
    colours = list(SHAPE_COLOURS)
    for dataset in (train, test):
        for caption, label, tokens, held in zip(
            dataset.captions, dataset.labels, dataset.tokens, dataset.held_out
        ):
            words = caption.split()
            assert words[3] == SHAPE_CLASSES[label] and dataset.tokenizer.decode(tokens) == caption
            assert bool(held) == is_held_out(int(label), colours.index(words[2]))
    assert not train.held_out.any() and 20 < int(test.held_out.sum()) < 120  # about 1 in 6
    assert len(train.prompts) == 8 and all(len(p) == 96 for p in train.prompts)
    assert train.tokenizer.vocabulary == test.tokenizer.vocabulary  # one vocabulary for both splits
    torch.testing.assert_close(make_shape_pairs(400, "train", seed=0).images, train.images)
    fit_part, val = train.split(0.25, seed=0)
    assert isinstance(val, PairedDataset) and len(val.captions) == 100
    assert all(val.tokenizer.decode(t) == c for t, c in zip(val.tokens, val.captions))


def test_digit_pairs_from_the_registry():
    pairs = data.load("digit_pairs", "test")
    assert isinstance(pairs, PairedDataset) and len(pairs) == 360 and "digit_pairs" in data.available()
    words = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    assert all(words[y] in c.split() for c, y in zip(pairs.captions, pairs.labels.tolist()))
    assert len(set(pairs.captions)) > 10  # the templates vary


def write_folder(root, rows, name="captions.csv"):
    for i in range(4):
        pixels = np.full((6, 6, 3), 40 * i, dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"img{i}.png")
    path = root / name
    if name.endswith(".csv"):
        path.write_text("\n".join(rows) + "\n")
    else:
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_pairs_folder_csv_with_splits_and_labels(tmp_path):
    write_folder(
        tmp_path,
        [
            "file,caption,label,split",
            "img0.png,a dark square,dark,train",
            "img1.png,a grey square,grey,train",
            "img2.png,a light square,light,train",
            "img3.png,a very dark square,dark,test",
        ],
    )
    train, test = data.load(f"pairs:{tmp_path}", "train"), data.load(f"pairs:{tmp_path}", "test")
    assert train.images.shape == (3, 3, 6, 6) and test.captions == ["a very dark square"]
    assert train.classes == ["dark", "grey", "light"] and test.labels.tolist() == [0]
    assert int(test.images.float().mean()) == 120
    # the vocabulary and length come from the train rows: "very" is unknown, and the caption is cut
    assert test.tokens[0].tolist() == [SOT, 4, UNK, 5, EOT]
    assert train.prompts[1] == ["a photo of a grey"]


def test_pairs_jsonl_file_without_labels_or_splits(tmp_path):
    rows = [{"file": f"img{i}.png", "caption": f"picture number {i}"} for i in range(4)]
    path = write_folder(tmp_path, rows, "captions.jsonl")
    pairs = data.load(f"pairs:{path}")
    assert len(pairs) == 4 and pairs.classes == ["unlabelled"] and pairs.captions[2] == "picture number 2"
    with pytest.raises(ValueError, match="no split column.*split='train'"):
        data.load(f"pairs:{path}", "test")


@pytest.mark.parametrize(
    "rows,error,match",
    [
        (
            ["file,caption", "img0.png,a square", "missing.png,a ghost"],
            FileNotFoundError,
            "line 3.*missing.png",
        ),
        (["file,caption"], ValueError, "has no rows"),
        (["image,text", "img0.png,a square"], ValueError, "no 'file' or 'caption' column.*image, text"),
        (["file,caption", "img0.png,  "], ValueError, "line 2: the caption is empty"),
        (["file,caption,split", "img0.png,a,val"], ValueError, "split column holds.*'val'"),
    ],
)
def test_pairs_bad_input_names_the_fix(tmp_path, rows, error, match):
    write_folder(tmp_path, rows)
    with pytest.raises(error, match=match):
        data.load(f"pairs:{tmp_path}")


def test_pairs_path_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="check the path after 'pairs:'"):
        data.load(f"pairs:{tmp_path / 'nowhere'}")
    with pytest.raises(FileNotFoundError, match="neither of captions.csv and captions.jsonl"):
        data.load(f"pairs:{tmp_path}")
    with pytest.raises(ValueError, match="needs a path"):
        data.load("pairs:")


def write_coco_tree(root, split_names=("train2017", "val2017"), images_per_split=3):
    """A tiny COCO captions tree: root/annotations/captions_<name>.json and root/<name>/*.jpg."""
    (root / "annotations").mkdir(parents=True)
    next_id = 0
    for s, name in enumerate(split_names):
        (root / name).mkdir()
        images, annotations = [], []
        for i in range(images_per_split):
            image_id = 100 * (s + 1) + (images_per_split - i)  # ids out of file order: images sort by id
            file_name = f"{image_id:012d}.jpg"
            Image.fromarray(np.full((8, 10, 3), 30 * i + 10, dtype=np.uint8)).save(root / name / file_name)
            images.append({"id": image_id, "file_name": file_name, "height": 8, "width": 10})
            for k in range(2):  # two captions per image, the first one is kept
                next_id += 1
                caption = f" a {'dark' if i == 0 else 'bright'} patch number {i} take {k} "
                annotations.append({"id": next_id, "image_id": image_id, "caption": caption})
        images.append({"id": 999 + s, "file_name": "uncaptioned.jpg"})  # no caption: left out, not read
        (root / "annotations" / f"captions_{name}.json").write_text(
            json.dumps({"info": {}, "images": images, "annotations": annotations})
        )
    return root


def test_pairs_coco_captions_tree(tmp_path):
    root = write_coco_tree(tmp_path)
    train, test = data.load(f"pairs:{root}", "train"), data.load(f"pairs:{root}", "test")
    assert isinstance(train, PairedDataset) and train.images.shape == (3, 3, 8, 10) and len(test) == 3
    # images by id (the file lists them in reverse), each with its first caption, stripped
    first = [f"a {'dark' if i == 0 else 'bright'} patch number {i} take 0" for i in (2, 1, 0)]
    assert train.captions == first
    assert train.images[:, 0, 0, 0].tolist() == [70, 40, 10] and train.classes == ["unlabelled"]
    assert train.tokenizer.decode(train.tokens[2]) == train.captions[2]
    assert test.tokenizer.vocabulary == train.tokenizer.vocabulary  # the vocabulary of the train captions
    # the path of one annotation file: that file is the train split
    lone = data.load(f"pairs:{root / 'annotations' / 'captions_val2017.json'}", "train")
    assert lone.captions == test.captions
    with pytest.raises(ValueError, match="one COCO annotation file.*split='train'"):
        data.load(f"pairs:{root / 'annotations' / 'captions_val2017.json'}", "test")


UNLISTED = {"images": [], "annotations": [{"image_id": 5, "caption": "a caption"}]}


@pytest.mark.parametrize(
    "damage,error,match",
    [
        (lambda a: a.write_text('{"images": [{"id": 1, "file_na'), ValueError, "not valid JSON.*corrupt"),
        (lambda a: a.write_text('{"images": []}'), ValueError, "not a COCO captions file.*'annotations'"),
        (
            lambda a: a.write_text(json.dumps(UNLISTED)),
            ValueError,
            "image_id 5, which 'images' does not list",
        ),
        (lambda a: a.unlink(), ValueError, "one COCO annotation file"),  # the val file alone remains
    ],
)
def test_pairs_coco_bad_annotation_file_names_the_fix(tmp_path, damage, error, match):
    root = write_coco_tree(tmp_path)
    damage(root / "annotations" / "captions_train2017.json")
    with pytest.raises(error, match=match):
        data.load(f"pairs:{root}", "test" if "one COCO" in match else "train")


def test_pairs_coco_missing_image_and_missing_annotations(tmp_path):
    root = write_coco_tree(tmp_path / "coco")
    next((root / "train2017").glob("*.jpg")).unlink()
    with pytest.raises(FileNotFoundError, match="image '0.*jpg' is not in .*train2017"):
        data.load(f"pairs:{root}", "train")
    (tmp_path / "bare").mkdir()
    with pytest.raises(FileNotFoundError, match="captions_\\*.json annotation files"):
        data.load(f"pairs:{tmp_path / 'bare'}", "train")


def test_pairs_coco_torchvision_reader_matches_the_json_reader(tmp_path):
    pytest.importorskip("pycocotools", reason="torchvision's CocoCaptions needs pycocotools")
    from sslcookbook.data.paired import _coco_index_from_json, _coco_index_from_torchvision

    root = write_coco_tree(tmp_path)
    annotation = root / "annotations" / "captions_train2017.json"
    assert _coco_index_from_torchvision(annotation, root / "train2017") == _coco_index_from_json(annotation)
