"""``paras2s-bench``: ParaS2SBench sets, runs, reports, comparisons and the CI gate.

    paras2s-bench generate --out DIR [--per-dimension 100] [--seed 0] [--workers N] [--split test|train]
    paras2s-bench real --out DIR [--tess PATH] [--emodb PATH] [--ravdess PATH] [--cremad PATH]
                       [--iemocap PATH] [--max-per-style N] [--seed 0]
    paras2s-bench merge --out DIR MANIFEST [MANIFEST ...]   (e.g. the synthetic + the real split)
    paras2s-bench validate MANIFEST
    paras2s-bench run --manifest M --system NAME --out RESULTS.json [--judge-url URL]
                      [--concurrency 16] [--limit N] [--restart] [--no-progress]
    paras2s-bench serve-system --system NAME --manifest M [--host 127.0.0.1] [--port 8100]
    paras2s-bench report RESULTS.json          (re-writes RESULTS.md and RESULTS.html)
    paras2s-bench compare A.json B.json [--out CMP.md]
    paras2s-bench ci RESULTS.json [--min-overall X] [--baseline B.json --max-drop Y]
                     [--max-error-rate R] [--summary FILE]

Exit status: 0 success (``ci``: every check passed), 1 a ``ci`` check failed, 2 bad input
(an invalid manifest or results file, an unknown system, a bad flag).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

EXIT_OK, EXIT_GATE_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _generate(args: argparse.Namespace) -> int:
    from benchmark_client.generate import SPLIT_VOICES, generate

    manifest = generate(args.out, per_dimension=args.per_dimension, seed=args.seed, workers=args.workers, log=_log,
                        scenario_split=args.split, voices=SPLIT_VOICES[args.split])  # fmt: skip
    print(manifest.path)
    return EXIT_OK


def _real(args: argparse.Namespace) -> int:
    from benchmark_client.corpora import CORPUS_LOADERS, build_real_split

    corpora = {name: Path(getattr(args, name)) for name in CORPUS_LOADERS if getattr(args, name, None)}
    if not corpora:
        _log(f"name at least one corpus folder: {' '.join('--' + n for n in CORPUS_LOADERS)}")
        return EXIT_BAD_INPUT
    manifest = build_real_split(Path(args.out), corpora, max_per_style=args.max_per_style, seed=args.seed)
    print(manifest.path)
    return EXIT_OK


def _merge(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from benchmark_client.manifest import MANIFEST_NAME, load_manifest, merge_manifests

    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    merged = merge_manifests(Path(args.out) / MANIFEST_NAME, [load_manifest(m) for m in args.manifests], created)
    print(merged.path)
    return EXIT_OK


def _validate(args: argparse.Namespace) -> int:
    from collections import Counter

    from benchmark_client.manifest import load_manifest

    manifest = load_manifest(args.manifest)
    counts = Counter((i.split, i.dimension) for i in manifest.items)
    print(f"{manifest.path}: valid, format version {manifest.header['version']}, {len(manifest.items)} items")
    for (split, dimension), n in sorted(counts.items()):
        print(f"  {split:9s} {dimension:8s} {n}")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from benchmark_client.manifest import load_manifest
    from benchmark_client.run import run_benchmark
    from benchmark_client.systems import make_system

    manifest = load_manifest(args.manifest)
    cache_dir = Path(args.reply_cache) if args.reply_cache else manifest.root / "reference_replies"
    system = make_system(args.system, cache_dir=cache_dir, workers=args.workers)
    doc = run_benchmark(
        manifest, system, args.out, judge_url=args.judge_url, concurrency=args.concurrency, limit=args.limit,
        restart=args.restart, progress=not args.no_progress, log=_log,
    )  # fmt: skip
    from benchmark_client.report import markdown_report

    print(markdown_report(doc))
    return EXIT_OK


def _serve_system(args: argparse.Namespace) -> int:
    import uvicorn

    from benchmark_client.manifest import load_manifest
    from benchmark_client.systems import make_system
    from benchmark_client.systems.http_server import create_app

    manifest = load_manifest(args.manifest)
    cache_dir = Path(args.reply_cache) if args.reply_cache else manifest.root / "reference_replies"
    system = make_system(args.system, cache_dir=cache_dir, workers=args.workers)
    system.prepare(manifest.items, _log)
    _log(f"serving {system.name} on http://{args.host}:{args.port}/respond")
    uvicorn.run(create_app(system, manifest), host=args.host, port=args.port, log_level="warning")
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from benchmark_client.report import write_reports

    for kind, path in write_reports(_load_doc(args.results), Path(args.results)).items():
        print(f"{kind}: {path}")
    return EXIT_OK


def _load_doc(path: str) -> dict:
    import json

    from benchmark_client.results import load_results

    load_results(path)  # validates format and every item
    return json.loads(Path(path).read_text())


def _compare(args: argparse.Namespace) -> int:
    from benchmark_client.compare import compare_markdown, compare_results

    text = compare_markdown(compare_results(_load_doc(args.a), _load_doc(args.b), seed=args.seed))
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return EXIT_OK


def _ci(args: argparse.Namespace) -> int:
    from benchmark_client.ci import gate

    if args.max_drop is not None and args.baseline is None:
        _log("--max-drop needs --baseline B.json")
        return EXIT_BAD_INPUT
    baseline = _load_doc(args.baseline) if args.baseline else None
    result = gate(_load_doc(args.results), min_overall=args.min_overall, baseline=baseline,
                  max_drop=args.max_drop, max_error_rate=args.max_error_rate)  # fmt: skip
    print(result.markdown)
    if args.summary:
        with open(args.summary, "a", encoding="utf-8") as summary:
            summary.write(result.markdown + "\n")
    return EXIT_OK if result.passed else EXIT_GATE_FAILED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="paras2s-bench", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="render the synthetic split (the benchmark: the scenario bank's test split)")
    p.add_argument("--out", required=True, help="output folder (manifest.jsonl + audio/)")
    p.add_argument("--per-dimension", type=int, default=100, help="texts per dimension, each in 2 styles (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, help="render processes (default: CPU count)")
    p.add_argument("--split", choices=("test", "train"), default="test",
                   help="test: the benchmark (test scenarios, benchmark voices); train: training prompts for "
                        "students and policies (train scenarios, the judge's training voices)")  # fmt: skip
    p.set_defaults(func=_generate)

    p = sub.add_parser("real", help="build the real split from corpus folders (audio is referenced, not copied)")
    p.add_argument("--out", required=True)
    for name in ("tess", "emodb", "ravdess", "cremad", "iemocap"):
        p.add_argument(f"--{name}", metavar="PATH", help=f"{name} corpus folder")
    p.add_argument("--max-per-style", type=int, default=None, help="cap items per (corpus, style)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_real)

    p = sub.add_parser("merge", help="one manifest from several (absolute audio paths)")
    p.add_argument("--out", required=True, help="output folder for manifest.jsonl")
    p.add_argument("manifests", nargs="+")
    p.set_defaults(func=_merge)

    p = sub.add_parser("validate", help="check a manifest and count its items")
    p.add_argument("manifest")
    p.set_defaults(func=_validate)

    p = sub.add_parser("run", help="run a system over a manifest and score it with the judge")
    p.add_argument("--manifest", required=True, help="manifest.jsonl or its folder")
    p.add_argument("--system", required=True, help="reference system name, dir:PATH, http://URL or py:module:function")
    p.add_argument("--out", required=True, help="RESULTS.json (a .items.jsonl sidecar makes the run resumable)")
    p.add_argument("--judge-url", default=None, help="a running judge service (default: start one locally)")
    p.add_argument("--concurrency", type=int, default=16, help="items in flight (default 16)")
    p.add_argument("--limit", type=int, default=None, help="only the first N items")
    p.add_argument("--restart", action="store_true", help="discard a previous partial run at --out")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--reply-cache", default=None, help="reference replies' audio cache (default: MANIFEST_DIR/reference_replies)")
    p.add_argument("--workers", type=int, default=None, help="render processes for reference systems")
    p.set_defaults(func=_run)

    p = sub.add_parser("serve-system", help="serve a system over the S2S HTTP contract (POST /respond)")
    p.add_argument("--system", required=True)
    p.add_argument("--manifest", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8100)
    p.add_argument("--reply-cache", default=None)
    p.add_argument("--workers", type=int, default=None)
    p.set_defaults(func=_serve_system)

    p = sub.add_parser("report", help="re-write the Markdown and HTML reports of RESULTS.json")
    p.add_argument("results")
    p.set_defaults(func=_report)

    p = sub.add_parser("compare", help="per-dimension differences B - A with paired bootstrap intervals")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--out", default=None, help="also write the Markdown here")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_compare)

    p = sub.add_parser("ci", help="gate: exit 0 when every check passes, 1 otherwise")
    p.add_argument("results")
    p.add_argument("--min-overall", type=float, default=None)
    p.add_argument("--baseline", default=None, help="RESULTS.json of the baseline run")
    p.add_argument("--max-drop", type=float, default=None, help="largest allowed fall of any mean vs the baseline")
    p.add_argument("--max-error-rate", type=float, default=0.0, help="largest allowed share of errored items")
    p.add_argument("--summary", default=None, help="append the Markdown here (e.g. $GITHUB_STEP_SUMMARY)")
    p.set_defaults(func=_ci)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from benchmark_client.corpora import CorpusError
    from benchmark_client.manifest import ManifestError
    from benchmark_client.results import ResultsError
    from benchmark_client.systems.base import SystemSpecError

    try:
        return args.func(args)
    except (ManifestError, ResultsError, SystemSpecError, CorpusError) as exc:
        _log(f"paras2s-bench {args.command}: {exc}")
        return EXIT_BAD_INPUT
    except ValueError as exc:  # the gate's and comparison's argument checks (e.g. no shared items)
        if args.command not in ("ci", "compare"):
            raise
        _log(f"paras2s-bench {args.command}: {exc}")
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
