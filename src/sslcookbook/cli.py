"""Command line: ``sslcookbook list | show | run | eval | export | pack``.

``--set KEY=VALUE`` (repeatable) overrides any knob of a recipe by dotted key: ``train.<field>``,
``method.<argument>``, ``views.<argument>``, ``backbone.<argument>``, ``fine_tune.steps`` (and ``.views``,
``.view_strength``, ``.lr``, ``.weight_decay``, ``.layer_decay``: the fine-tuning evaluation), ``data``,
``backbone``, ``views``.
Values are Python literals (``0.1``, ``True``, ``(0.2, 1.0)``, ``None``); anything else is a string.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys

from .profiles import PROFILE_HELP, PROFILES

SET_HELP = (
    "override a setting, e.g. train.lr=0.1, method.temperature=0.2, views.strength=0.5, backbone.width=64, "
    "data=folder:PATH (repeatable; `sslcookbook show RECIPE` shows every knob and its value)"
)
NO_FINE_TUNE_HELP = (
    "skip the fine-tuning evaluation (the SSL encoder fine-tuned and the network trained from scratch on "
    "1, 10 and all labels per class): only probes and kNN"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sslcookbook", description="Self-supervised learning recipes.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the recipes")

    show = sub.add_parser("show", help="print a recipe's fully resolved setting as JSON")
    show.add_argument("recipe")
    show.add_argument("--profile", choices=PROFILES, help=PROFILE_HELP)
    show.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP
    )

    run = sub.add_parser("run", help="train a recipe, evaluate it against baselines, write results.json")
    run.add_argument("recipe")
    run.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP
    )
    run.add_argument(
        "--data", help="dataset name (digits, shapes, cifar10, ..., folder:PATH); = --set data=..."
    )
    run.add_argument("--profile", choices=PROFILES, help=PROFILE_HELP)
    run.add_argument("--epochs", type=int, help="= --set train.epochs=...")
    run.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    run.add_argument("--out", help="output folder (default: runs/RECIPE-DATA-PROFILE)")
    run.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt")
    run.add_argument("--download", action="store_true", help="download torchvision datasets if missing")
    run.add_argument(
        "--sync-bn",
        action="store_true",
        help="SyncBatchNorm across ranks (torchrun); = --set train.sync_bn=True",
    )
    run.add_argument("--no-progress", action="store_true")
    run.add_argument("--no-fine-tune", action="store_true", help=NO_FINE_TUNE_HELP)

    ev = sub.add_parser("eval", help="evaluate a checkpoint written by `run`")
    ev.add_argument("checkpoint")
    ev.add_argument("--data")
    ev.add_argument("--device")
    ev.add_argument("--json", action="store_true", help="print the results as JSON")
    ev.add_argument("--no-fine-tune", action="store_true", help=NO_FINE_TUNE_HELP)

    export = sub.add_parser(
        "export",
        help="write a checkpoint's backbone to a .safetensors file (sslcookbook.models.load_backbone)",
    )
    export.add_argument("checkpoint", help="a last.pt written by `run` (OUT/checkpoints/last.pt)")
    export.add_argument("out", help="the .safetensors file to write")

    pack = sub.add_parser(
        "pack", help="pack an ImageFolder tree (or a 'path,class' list file) into WebDataset shards"
    )
    pack.add_argument("folder", help="FOLDER/<class>/<image> (or FOLDER/{train,test}/...), or a list file")
    pack.add_argument("out", help="output folder: OUT/<split>/shard-NNNNNN.tar + index.json (shards:OUT)")
    pack.add_argument("--shard-size", type=int, default=1000, help="images per shard (default 1000)")
    pack.add_argument("--max-side", type=int, help="re-encode as JPEG with the longer side at most this")
    pack.add_argument("--quality", type=int, help="re-encode as JPEG at this quality (1..100)")
    pack.add_argument("--seed", type=int, default=0, help="seed of the order the images are packed in")

    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except (KeyError, ValueError, FileNotFoundError, TypeError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {message}", file=sys.stderr)
        return 2


def parse_overrides(items: list[str]) -> dict[str, object]:
    """``["train.lr=0.1", "data=folder:/x"]`` -> ``{"train.lr": 0.1, "data": "folder:/x"}``."""
    overrides: dict[str, object] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects KEY=VALUE (e.g. --set train.lr=0.1), got {item!r}")
        overrides[key.strip()] = parse_value(text)
    return overrides


def parse_value(text: str) -> object:
    """A Python literal (number, bool, None, tuple, list, quoted string), else ``text`` itself."""
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return text


def _dispatch(args) -> int:
    from .recipes import get_recipe, list_recipes

    if args.command == "list":
        for name, description in list_recipes():
            print(f"{name:<12} {description}")
        return 0
    if args.command == "show":
        resolved = get_recipe(args.recipe).resolve(args.profile, parse_overrides(args.overrides))
        print(json.dumps(resolved.to_dict(), indent=2))
        return 0

    from . import distributed
    from .runner import evaluate_checkpoint, export_checkpoint, format_results, run_recipe

    if args.command == "run":
        results = run_recipe(
            args.recipe,
            data=args.data,
            profile=args.profile,
            epochs=args.epochs,
            device=args.device,
            out=args.out,
            resume=args.resume,
            progress=not args.no_progress,
            download=args.download,
            sync_bn=args.sync_bn,
            overrides=parse_overrides(args.overrides),
            fine_tuning=not args.no_fine_tune,
        )
        distributed.shutdown()  # under torchrun: leave the process group before Python exits
        if not results:  # a non-zero rank under torchrun: rank 0 reports
            return 0
        print(
            f"\n{results['recipe']} on {results['data']} ({results['profile']} profile, "
            f"{results['epochs']} epochs): trained in {results['seconds']:.1f} s"
        )
        print(format_results(results))
        return 0
    if args.command == "eval":
        results = evaluate_checkpoint(
            args.checkpoint, data=args.data, device=args.device, fine_tuning=not args.no_fine_tune
        )
        print(json.dumps(results, indent=2) if args.json else format_results(results))
        return 0
    if args.command == "export":
        path = export_checkpoint(args.checkpoint, args.out)
        print(f"wrote {path}: load it with sslcookbook.models.load_backbone({str(path)!r})")
        return 0
    if args.command == "pack":
        return _pack(args)
    raise AssertionError(args.command)


def _pack(args) -> int:
    from .data.shards import pack

    indexes = pack(
        args.folder, args.out, shard_size=args.shard_size, max_side=args.max_side, quality=args.quality,
        seed=args.seed,
    )  # fmt: skip
    for split, index in indexes.items():
        skipped = len(index["skipped"])
        print(
            f"{split}: {index['count']} images of {len(index['classes'])} classes in {len(index['shards'])} "
            f"shards under {args.out}/{split}; {skipped} unreadable files skipped"
            + (" (named above and in index.json)" if skipped else "")
        )
    print(f"train on them with: sslcookbook run RECIPE --data shards:{args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
