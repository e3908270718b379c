"""Command line: ``python -m stroke_lib {cohort,chapter,book,html,data,train,cv} ...``.

Examples::

    python -m stroke_lib cohort --profile smoke
    python -m stroke_lib chapter 00_cohort -p profile full -p dataset synthetic
    python -m stroke_lib book --profile auto  # re-executes only the chapters that changed
    python -m stroke_lib book --force         # re-executes every chapter
    python -m stroke_lib html                 # HTML from the executed chapters, no execution
    python -m stroke_lib data check soop /data/soop
    torchrun --nproc_per_node 2 -m stroke_lib train --model resnet10 --out runs/ddp
    torchrun --nproc_per_node 2 -m stroke_lib cv --folds 3 --out runs/cv
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

import yaml


def _params(pairs: list[list[str]] | None) -> dict[str, object]:
    return {k: yaml.safe_load(v) for k, v in (pairs or [])}


def _cohort(args: argparse.Namespace) -> None:
    from stroke_lib.data.synthetic import CohortSpec, generate_cohort
    from stroke_lib.runtime import PROFILES, resolve_device, resolve_profile

    settings = PROFILES[resolve_profile(args.profile, resolve_device("auto"))]
    spec = CohortSpec(
        n_subjects=args.n_subjects or int(settings["n_subjects"]),
        in_plane=args.in_plane or int(settings["in_plane"]),
        seed=args.seed,
    )
    print(f"embedded cohort {asdict(spec)}", flush=True)
    print(generate_cohort(spec))


def _chapter(args: argparse.Namespace) -> int:
    from stroke_lib.book import UnknownParameterError, execute_chapter

    try:
        print(execute_chapter(args.name, _params(args.p), args.output))
    except UnknownParameterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _book(args: argparse.Namespace) -> int:
    from stroke_lib.book import UnknownParameterError, build_book

    try:
        build_book({"profile": args.profile, **_params(args.p)}, force=args.force)
    except UnknownParameterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _html(args: argparse.Namespace) -> None:
    from stroke_lib.book import build_html

    print(build_html())


def _data(args: argparse.Namespace) -> int:
    from stroke_lib.data.manifests import check_dataset, manifest_table

    if args.action == "list":
        print(manifest_table()[["dataset", "title", "licence"]].to_string(index=False))
        return 0
    if not args.name or not args.path:
        print("usage: python -m stroke_lib data check NAME PATH", file=sys.stderr)
        return 2
    report = check_dataset(args.name, args.path)
    print(report)
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    """Run one command of ``python -m stroke_lib`` (the arguments ``argv``, default
    ``sys.argv[1:]``); returns its exit status (0 on success)."""
    parser = argparse.ArgumentParser(prog="python -m stroke_lib", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    c = sub.add_parser("cohort", help="generate the embedded cohort (cached)")
    c.add_argument("--profile", default="auto", choices=["smoke", "full", "auto"])
    c.add_argument("--n-subjects", type=int)
    c.add_argument("--in-plane", type=int)
    c.add_argument("--seed", type=int, default=0)
    c.set_defaults(func=_cohort)

    ch = sub.add_parser("chapter", help="execute one chapter with papermill")
    ch.add_argument("name", help="notebook stem, e.g. 01_evaluation")
    ch.add_argument("-p", nargs=2, action="append", metavar=("NAME", "VALUE"))
    ch.add_argument("--output", help="executed notebook path (default book/chapters/NAME.ipynb)")
    ch.set_defaults(func=_chapter)

    b = sub.add_parser("book", help="execute every chapter and build the HTML book")
    b.add_argument("--profile", default="auto", choices=["smoke", "full", "auto"])
    b.add_argument("-p", nargs=2, action="append", metavar=("NAME", "VALUE"))
    b.add_argument("--force", action="store_true",
                   help="re-execute every chapter and rebuild the HTML, even when unchanged")
    b.set_defaults(func=_book)

    h = sub.add_parser("html", help="build the HTML from the executed chapters (no execution)")
    h.set_defaults(func=_html)

    from stroke_lib.distributed import add_commands

    add_commands(sub)

    d = sub.add_parser("data", help="dataset manifests: list, or check a folder")
    d.add_argument("action", choices=["check", "list"])
    d.add_argument("name", nargs="?")
    d.add_argument("path", nargs="?")
    d.set_defaults(func=_data)

    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
