"""Command line: ``sslcookbook list | run | eval``."""

from __future__ import annotations

import argparse
import json
import sys

from .profiles import PROFILES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sslcookbook", description="Self-supervised learning recipes.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the recipes")

    run = sub.add_parser("run", help="train a recipe, evaluate it against baselines, write results.json")
    run.add_argument("recipe")
    run.add_argument("--data", help="dataset name (digits, shapes, cifar10, ..., folder:PATH)")
    run.add_argument("--profile", choices=PROFILES, help="default: $SSLCOOKBOOK_PROFILE, else gpu/cpu")
    run.add_argument("--epochs", type=int)
    run.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    run.add_argument("--out", help="output folder (default: runs/RECIPE-DATA-PROFILE)")
    run.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt")
    run.add_argument("--download", action="store_true", help="download torchvision datasets if missing")
    run.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across ranks (torchrun)")
    run.add_argument("--no-progress", action="store_true")

    ev = sub.add_parser("eval", help="evaluate a checkpoint written by `run`")
    ev.add_argument("checkpoint")
    ev.add_argument("--data")
    ev.add_argument("--device")
    ev.add_argument("--json", action="store_true", help="print the results as JSON")

    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except (KeyError, ValueError, FileNotFoundError, TypeError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {message}", file=sys.stderr)
        return 2


def _dispatch(args) -> int:
    from .recipes import list_recipes

    if args.command == "list":
        for name, description in list_recipes():
            print(f"{name:<12} {description}")
        return 0

    from . import distributed
    from .runner import evaluate_checkpoint, format_results, run_recipe

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
        results = evaluate_checkpoint(args.checkpoint, data=args.data, device=args.device)
        print(json.dumps(results, indent=2) if args.json else format_results(results))
        return 0
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
