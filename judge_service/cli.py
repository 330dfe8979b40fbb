"""``paras2s-judge``: serve the judge, score or analyse files, run the demo.

    paras2s-judge serve [--host H] [--port P]
    paras2s-judge worker [--worker-id ID]     (JUDGE_MODE=distributed, JUDGE_REDIS_URL)
    paras2s-judge score QUERY RESPONSE [--emotion sad ...] [--url URL]
    paras2s-judge analyze CLIP [--url URL]
    paras2s-judge demo [--port P]
    paras2s-judge train [--out DIR] [--data-dir DIR] [--real-speech DIR]
    paras2s-judge eval [--model DIR] [--data-dir DIR] [--real-speech DIR] [--out DIR]
    paras2s-judge distill --train RUN.json ... --eval RUN.json ... --out DIR
    paras2s-judge openapi
    paras2s-judge keys create|list|disable --file KEYS.json [--name N --class C ...]

Settings come from JUDGE_* environment variables (see README); flags override host/port.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from judge_service.config import SettingsError, load_settings
from judge_service.judge.labels import LABEL_SETS

DISTILLED_ARCHITECTURES = ("flat", "towers")
DISTILLED_CLIP_INPUTS = ("all", "summary")
DISTILLED_SPEAKING_RATES = ("none", "nuclei", "learned")
DISTILLED_PAIR_PRIORS = ("none", "baseline-tone")
"""``judge.distilled.ARCHITECTURES``, ``CLIP_INPUTS``, ``SPEAKING_RATES`` and ``PAIR_PRIORS``, spelled out so the CLI
starts without importing torch (a unit test keeps them equal)."""


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs every request it sends at INFO (the LLM rubric scorer sends one per pair): at
    # the service's default level that would drown its own lines. Their warnings still show, and
    # JUDGE_LOG_LEVEL=debug shows everything.
    if logging.getLevelName(level.upper()) != logging.DEBUG:
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from judge_service.app import create_app

    overrides: dict[str, Any] = {}
    if args.host is not None:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    settings = load_settings(**overrides)
    _configure_logging(settings.log_level)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # uvicorn waits this long for open requests; the lifespan then drains the queue.
        timeout_graceful_shutdown=max(1, int(settings.drain_timeout_s)),
        access_log=False,
    )
    uvicorn.Server(config).run()
    return 0


def _worker(args: argparse.Namespace) -> int:
    import asyncio

    from judge_service.distributed.worker import serve_worker

    settings = load_settings(**({"worker_id": args.worker_id} if args.worker_id else {}))
    _configure_logging(settings.log_level)
    if not settings.redis_url:
        print("paras2s-judge worker needs JUDGE_REDIS_URL (the work streams live in Redis)", file=sys.stderr)
        return 2
    return asyncio.run(serve_worker(settings))


def _known_labels(args: argparse.Namespace) -> dict[str, str]:
    return {dim: getattr(args, dim) for dim in LABEL_SETS if getattr(args, dim, None)}


def _score(args: argparse.Namespace) -> int:
    labels = _known_labels(args)
    if args.url:
        import httpx

        with open(args.query, "rb") as q, open(args.response, "rb") as r:
            reply = httpx.post(
                args.url.rstrip("/") + "/v1/score",
                files={"query": q, "response": r},
                data=labels,
                timeout=300,
            )
        print(json.dumps(reply.json(), indent=2))
        return 0 if reply.status_code == 200 else 1
    from judge_service.audio import AudioLimits, decode_audio
    from judge_service.backends.base import BackendJob, PairSpec
    from judge_service.backends.registry import create_backend

    settings = load_settings()
    limits = AudioLimits(settings.min_clip_duration_s, settings.max_clip_duration_s)
    query = decode_audio("query", Path(args.query).read_bytes(), limits)
    response = decode_audio("response", Path(args.response).read_bytes(), limits)
    backend = create_backend(settings)
    report = backend.run_batch([BackendJob([query, response], [None, None], [PairSpec(0, 1, labels)])])
    result = report.results[0]
    print(json.dumps({
        "judge": {"name": backend.info.name, "version": backend.info.version,
                  "rubric_version": backend.info.rubric_version},
        **result.scores[0], "query": result.analyses[0], "response": result.analyses[1],
    }, indent=2))
    return 1 if "error" in result.scores[0] else 0


def _analyze(args: argparse.Namespace) -> int:
    if args.url:
        import httpx

        with open(args.clip, "rb") as handle:
            reply = httpx.post(args.url.rstrip("/") + "/v1/analyze", files={"audio": handle}, timeout=300)
        print(json.dumps(reply.json(), indent=2))
        return 0 if reply.status_code == 200 else 1
    from judge_service.audio import AudioLimits, decode_audio
    from judge_service.backends.base import BackendJob
    from judge_service.backends.registry import create_backend

    settings = load_settings()
    limits = AudioLimits(settings.min_clip_duration_s, settings.max_clip_duration_s)
    clip = decode_audio("clip", Path(args.clip).read_bytes(), limits)
    backend = create_backend(settings)
    report = backend.run_batch([BackendJob([clip], [None], [])])
    print(json.dumps(report.results[0].analyses[0], indent=2))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from judge_service.demo import run_demo

    return run_demo(port=args.port)


def _real_speech(path: Path | None) -> Path | None:
    if path is not None:
        return path
    default = Path("../shared/speech")
    return default if default.is_dir() else None


def _model_dir(path: Path | None) -> Path:
    from judge_service.judge.polytone_judge import default_model_dir

    return path if path is not None else default_model_dir()


def _distill(args: argparse.Namespace) -> int:
    from judge_service.judge.training.distill import distill

    distill([Path(p) for p in args.train], [Path(p) for p in args.eval], Path(args.out), epochs=args.epochs,
            seed=args.seed, architecture=args.architecture, clip_inputs=args.clip_inputs, hidden=args.hidden,
            clip_embedding=args.clip_embedding, speaking_rate=args.speaking_rate, pair_prior=args.pair_prior, members=args.members,
            weight_decay=args.weight_decay, log=lambda m: print(m, file=sys.stderr))  # fmt: skip
    return 0


def _train(args: argparse.Namespace) -> int:
    from judge_service.judge.training.train import train_judge

    args.out = _model_dir(args.out)
    real = _real_speech(args.real_speech)
    print(f"training the PolyTone judge into {args.out} (data in {args.data_dir}, real speech: {real})")
    train_judge(args.out, args.data_dir, real, seed=args.seed, workers=args.workers, build=not args.no_build,
                max_seeds_per_dimension=args.max_seeds_per_dimension)
    return 0


def _eval(args: argparse.Namespace) -> int:
    from judge_service.judge.training.evaluate import evaluate_judge

    args.model = _model_dir(args.model)
    metrics = evaluate_judge(args.model, args.data_dir, _real_speech(args.real_speech), args.out,
                             seed=args.seed, include_baseline=not args.no_baseline)
    print((args.out / "metrics.md").read_text())
    if args.model_card:
        from judge_service.judge.training.model_card import write_model_card

        print(f"model card written to {write_model_card(args.model, metrics)}")
    print(f"metrics written to {args.out / 'metrics.json'} and {args.out / 'metrics.md'} ({metrics['seconds']:.0f} s)")
    return 0


def _openapi(args: argparse.Namespace) -> int:
    from judge_service.app import create_app

    print(json.dumps(create_app(load_settings()).openapi(), indent=2))
    return 0


def _keys(args: argparse.Namespace) -> int:
    from judge_service.api import keys_file

    path = Path(args.file)
    if args.keys_command == "create":
        key = keys_file.create_key(path, args.name, args.traffic_class, args.rate_per_s, args.burst)
        print(key)  # the one place the key is ever shown: the file keeps only its hash
        print(f"added {args.name!r} ({args.traffic_class}) to {path}; store the key above now, it "
              "cannot be shown again", file=sys.stderr)
    elif args.keys_command == "disable":
        keys_file.disable_key(path, args.name)
        print(f"disabled {args.name!r} in {path}; running servers stop accepting it within a second",
              file=sys.stderr)
    else:
        print(keys_file.describe_keys(keys_file.load_keys(path)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="paras2s-judge", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default=None, help="interface (default JUDGE_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default JUDGE_PORT or 8000)")
    serve.set_defaults(func=_serve)

    worker = sub.add_parser("worker", help="score work from the Redis Streams (distributed mode)")
    worker.add_argument("--worker-id", default=None, help="consumer name (default JUDGE_WORKER_ID or host-pid)")
    worker.set_defaults(func=_worker)

    score = sub.add_parser("score", help="score one (query, response) pair of audio files")
    score.add_argument("query")
    score.add_argument("response")
    score.add_argument("--url", help="score through a running service instead of in-process")
    for dim, labels in LABEL_SETS.items():
        score.add_argument(f"--{dim}", choices=labels, help=f"known {dim} of the query")
    score.set_defaults(func=_score)

    analyze = sub.add_parser("analyze", help="transcribe one clip and measure its style")
    analyze.add_argument("clip")
    analyze.add_argument("--url", help="analyse through a running service instead of in-process")
    analyze.set_defaults(func=_analyze)

    demo = sub.add_parser("demo", help="start the service, score the bundled examples over HTTP, stop")
    demo.add_argument("--port", type=int, default=0, help="port for the demo server (0 = free port)")
    demo.set_defaults(func=_demo)

    train = sub.add_parser("train", help="render the PolyTone data and train the judge's analysers and rubric")
    train.add_argument("--out", type=Path, default=None, help="model directory to write (default: the shipped judge's)")
    train.add_argument("--data-dir", type=Path, default=Path(".cache/polytone"), help="PolyTone data and feature cache")
    train.add_argument("--real-speech", type=Path, default=None, help="TESS/EMO-DB/LibriSpeech manifests (default ../shared/speech if present)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--workers", type=int, default=2, help="rendering processes")
    train.add_argument("--no-build", action="store_true", help="reuse the rendered data as it is")
    train.add_argument("--max-seeds-per-dimension", type=int, default=None, help="a quick, small build (tests)")
    train.set_defaults(func=_train)

    distill = sub.add_parser("distill", help="train the fast distilled reward model on paras2s-bench results")
    distill.add_argument("--train", nargs="+", required=True, help="RESULTS.json of runs over training prompts")
    distill.add_argument("--eval", nargs="+", required=True, help="RESULTS.json of runs over held-out prompts")
    distill.add_argument("--out", required=True)
    distill.add_argument("--epochs", type=int, default=600)
    distill.add_argument("--seed", type=int, default=0)
    distill.add_argument("--architecture", choices=DISTILLED_ARCHITECTURES, default="towers",
                         help="towers: one clip tower for both clips, then a pair head (default); flat: one MLP")
    distill.add_argument("--clip-inputs", choices=DISTILLED_CLIP_INPUTS, default="summary",
                         help="summary: loudness, dynamics, duration and prosody (default); all: also the per-bin mel statistics")
    distill.add_argument("--hidden", type=int, default=256, help="hidden units of every layer (default 256)")
    distill.add_argument("--clip-embedding", type=int, default=64, help="towers: size of a clip's embedding (default 64)")
    distill.add_argument("--speaking-rate", choices=DISTILLED_SPEAKING_RATES, default="learned",
                         help="learned: a syllable counter fitted to the teacher's transcripts in the --train results fills "
                              "the rate slot (default); nuclei: vowel-band loudness peaks per speech second; none: left missing")
    distill.add_argument("--pair-prior", choices=DISTILLED_PAIR_PRIORS, default="baseline-tone",
                         help="baseline-tone: the baseline rubric's arousal and tone fit of the two clips join the pair "
                              "inputs (default); none: not")
    distill.add_argument("--members", type=int, default=3,
                         help="students in the ensemble, seeds SEED..SEED+MEMBERS-1; the model scores their mean (default 3)")
    distill.add_argument("--weight-decay", type=float, default=1e-2, help="AdamW weight decay (default 0.01)")
    distill.set_defaults(func=_distill)

    evaluate = sub.add_parser("eval", help="measure the trained judge (JSON + Markdown)")
    evaluate.add_argument("--model", type=Path, default=None, help="model directory (default: the shipped judge)")
    evaluate.add_argument("--data-dir", type=Path, default=Path(".cache/polytone"))
    evaluate.add_argument("--real-speech", type=Path, default=None)
    evaluate.add_argument("--out", type=Path, default=Path("eval-results"))
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--no-baseline", action="store_true", help="skip the baseline judge comparison")
    evaluate.add_argument("--model-card", action="store_true", help="also write MODEL_CARD.md into the model directory")
    evaluate.set_defaults(func=_eval)

    openapi = sub.add_parser("openapi", help="print the OpenAPI document")
    openapi.set_defaults(func=_openapi)

    from judge_service.api.keys_file import DEFAULT_BURST, DEFAULT_RATE_PER_S
    from judge_service.api.traffic_classes import TRAFFIC_CLASSES

    keys = sub.add_parser("keys", help="create, list or disable API keys (the JUDGE_API_KEYS_FILE)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="add a key; prints it once, stores only its hash")
    create.add_argument("--name", required=True, help="who or what uses the key (shown in logs)")
    create.add_argument("--class", dest="traffic_class", required=True, choices=sorted(TRAFFIC_CLASSES))
    create.add_argument("--rate-per-s", type=float, default=DEFAULT_RATE_PER_S, help="sustained requests per second")
    create.add_argument("--burst", type=int, default=DEFAULT_BURST, help="requests allowed at once")
    keys_sub.add_parser("list", help="names, classes, limits and hash prefixes")
    disable = keys_sub.add_parser("disable", help="refuse a key from now on (403)")
    disable.add_argument("--name", required=True)
    for command in keys_sub.choices.values():
        command.add_argument("--file", required=True, help="the keys file (JUDGE_API_KEYS_FILE)")
    keys.set_defaults(func=_keys)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
