"""``paras2s-judge eval``: every metric of the model card, as JSON and Markdown.

Analysers (features cached by training):
  * held-out synthetic (test-split texts x held-out voices): accuracy and UAR of each
    dimension's head on that dimension's queries, and PolyTone contrast accuracy (both
    renderings of a text, same voice slot, classified right);
  * real voices, speaker-disjoint: TESS emotion UAR (train on one speaker, test the other),
    EMO-DB emotion UAR over its 6 shared classes (5 folds of 2 speakers), LibriSpeech gender
    accuracy (5 speaker folds); each fold trains on all synthetic train queries + the other
    real folds; the same protocols with a synthetic-only model;
  * a text-only control: a classifier on the query *texts* must be at chance.
Judge, end to end through the real backend (ASR, analysers, rubric) on test-split scenarios
with held-out voices:
  * known systems: topline > neutral voice > tone-deaf cascade > mismatched > reversed;
  * style-hallucination test: per query rendering, prefer the reply written for its style;
  * both again with the query's true style sent as a known label (perfect analysers), which
    splits the judge's error into the analysers' part and the rubric's part.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from judge_service.judge.labels import LABEL_SETS
from judge_service.judge.training.fit_analysers import FitSettings, fit_analyser
from judge_service.judge.training.metrics import accuracy, uar
from judge_service.judge.training.train import TrainingData

SYSTEMS = ("topline", "neutral_voice", "tone_deaf_cascade", "mismatched", "reversed")
"""Known systems in the order a style-aware judge must rank them (the benchmark's reference
systems): level-5 reply in its fitting voice; the same text in a neutral voice; a generic
(level-3) reply in a neutral voice; the reply written for the contrasting style; the level-1
reply in its reversed voice."""


def kendall_tau(order_scores: list[float]) -> float:
    """Kendall tau between the expected order (descending) and the observed scores."""
    n = len(order_scores)
    concordant = discordant = 0
    for i in range(n):
        for j in range(i + 1, n):
            if order_scores[i] > order_scores[j]:
                concordant += 1
            elif order_scores[i] < order_scores[j]:
                discordant += 1
    return (concordant - discordant) / (n * (n - 1) / 2)


def analyser_metrics(data: TrainingData, seed: int, log: Callable[[str], None]) -> dict:
    fit = FitSettings(seed=seed)
    train_q = data.train_queries()
    test_q = np.array([r.meta["split"] == "test" and r.meta["voice_split"] == "heldout" for r in data.queries])
    out: dict = {}
    model = fit_analyser(*data.analyser_inputs(train_q)[:4], fit)
    proba = model.predict_proba(data.query_x[0][test_q], data.query_x[1][test_q])
    tested = [r for r, m in zip(data.queries, test_q) if m]
    heldout = {}
    for dim, labels in LABEL_SETS.items():
        rows = [i for i, r in enumerate(tested) if r.meta["dimension"] == dim]
        y = np.array([labels.index(tested[i].labels[dim]) for i in rows])
        pred = proba[dim][rows].argmax(axis=1)
        correct = dict(zip(rows, pred == y))
        pairs = _contrast_pairs([tested[i] for i in rows], rows)
        heldout[dim] = {
            "clips": len(rows), "accuracy": accuracy(y, pred), "uar": uar(y, pred),
            "contrast_accuracy": float(np.mean([correct[a] and correct[b] for a, b in pairs])) if pairs else None,
            "contrast_pairs": len(pairs),
        }
    out["heldout_synthetic"] = heldout
    log("[eval] held-out synthetic: " + ", ".join(f"{d} contrast {m['contrast_accuracy']:.3f}" for d, m in heldout.items()))
    if data.real:
        out["real_voices"] = real_voice_metrics(data, train_q, fit, with_real=True)
        out["real_voices_synthetic_only"] = real_voice_metrics(data, train_q, fit, with_real=False)
        log(f"[eval] real voices: {out['real_voices']}; synthetic-only: {out['real_voices_synthetic_only']}")
    out["text_only_control"] = text_only_control(data, train_q, test_q)
    return out


def _contrast_pairs(records: list, rows: list[int]) -> list[tuple[int, int]]:
    """Pair the k-th rendering of style A with the k-th of style B for each scenario."""
    by_scenario: dict[str, dict[str, list[int]]] = {}
    for r, row in zip(records, rows):
        by_scenario.setdefault(str(r.meta["scenario_id"]), {}).setdefault(str(r.meta["style"]), []).append(row)
    pairs = []
    for styles in by_scenario.values():
        if len(styles) == 2:
            a, b = (sorted(v) for v in styles.values())
            pairs += list(zip(a, b))
    return pairs


def real_voice_metrics(data: TrainingData, train_q: np.ndarray, fit: FitSettings, with_real: bool) -> dict:
    """Speaker-disjoint protocols; ``with_real=False`` trains on synthetic data alone."""
    groups = np.array([r.group for r in data.real])
    sources = np.array([r.source for r in data.real])
    emotions, genders = LABEL_SETS["emotion"], LABEL_SETS["gender"]

    def predict(test: np.ndarray, dim: str) -> tuple[np.ndarray, np.ndarray]:
        real_mask = ~test if with_real else np.zeros(len(data.real), bool)
        model = fit_analyser(*data.analyser_inputs(train_q, real_mask)[:4], fit)
        proba = model.predict_proba(data.real_x[0][test], data.real_x[1][test])[dim]
        labels = LABEL_SETS[dim]
        y = np.array([labels.index(r.labels[dim]) if r.labels[dim] else -1 for r, t in zip(data.real, test) if t])
        return y, proba.argmax(axis=1)

    out: dict = {}
    if (sources == "tess").any():
        out["tess_emotion_uar"] = {}
        for speaker in sorted(set(groups[sources == "tess"])):
            y, p = predict(groups == speaker, "emotion")
            out["tess_emotion_uar"][speaker] = uar(y, p, list(range(len(emotions))))
        out["tess_emotion_uar_mean"] = float(np.mean(list(out["tess_emotion_uar"].values())))
    for corpus, dim, classes, metric in (
        ("emodb", "emotion", [emotions.index(e) for e in emotions if e != "surprised"], "emodb_emotion_uar"),
        ("librispeech", "gender", list(range(len(genders))), "librispeech_gender_accuracy"),
    ):
        speakers = sorted(set(groups[sources == corpus]))
        if not speakers:
            continue
        ys, ps = [], []
        for fold in range(5):
            y, p = predict(np.isin(groups, speakers[fold::5]), dim)
            ys.append(y)
            ps.append(p)
        y, p = np.concatenate(ys), np.concatenate(ps)
        out[metric] = uar(y, p, classes) if dim == "emotion" else accuracy(y, p)
    return out


def text_only_control(data: TrainingData, train_q: np.ndarray, test_q: np.ndarray) -> dict:
    """A classifier that sees only the query text (MiniLM embedding) predicting the style."""
    import torch

    from judge_service.judge.text_embedding import TextEmbedder, default_text_model_path

    embedder = TextEmbedder(default_text_model_path())
    out = {}
    for dim, labels in LABEL_SETS.items():
        tr = [i for i in np.where(train_q)[0] if data.queries[i].meta["dimension"] == dim]
        te = [i for i in np.where(test_q)[0] if data.queries[i].meta["dimension"] == dim]
        x_tr = torch.from_numpy(embedder.encode([data.queries[i].text or "" for i in tr]))
        x_te = torch.from_numpy(embedder.encode([data.queries[i].text or "" for i in te]))
        y_tr = torch.tensor([labels.index(data.queries[i].labels[dim]) for i in tr])
        y_te = np.array([labels.index(data.queries[i].labels[dim]) for i in te])
        torch.manual_seed(0)
        linear = torch.nn.Linear(x_tr.shape[1], len(labels))
        optimizer = torch.optim.Adam(linear.parameters(), lr=1e-2, weight_decay=1e-3)
        for _ in range(300):
            loss = torch.nn.functional.cross_entropy(linear(x_tr), y_tr)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        pred = linear(x_te).argmax(dim=1).numpy()
        majority = np.bincount(y_te).max() / len(y_te)
        out[dim] = {"accuracy": accuracy(y_te, pred), "majority_class_rate": float(majority), "test_clips": len(te)}
    return out


@dataclass(frozen=True)
class JudgeCase:
    scenario_id: str
    style: str
    query: Path
    replies: dict[str, Path]  # system -> reply clip
    matching: Path  # level-5 reply for this style
    other: Path  # level-5 reply for the contrasting style

    @property
    def dimension(self) -> str:
        return self.scenario_id.split("-")[0]


def judge_cases(data_dir: Path, render_dir: Path, seed: int, log: Callable[[str], None]) -> list[JudgeCase]:
    """Test-split scenarios x both styles: one held-out-voice query each, and the five known
    systems' replies (neutral-voice renderings are made here, in the reply's own voice)."""
    from judge_service.judge.polytone.render import Renderer
    from judge_service.judge.polytone.voices import voice_by_name
    import soundfile as sf

    rows = [json.loads(line) for line in (data_dir / "manifest.jsonl").read_text().splitlines()]
    queries: dict[tuple[str, str], dict] = {}
    for row in sorted((r for r in rows if r["role"] == "query" and r["split"] == "test"), key=lambda r: r["voice"]):
        queries.setdefault((row["scenario_id"], row["style"]), row)
    replies = {(r["scenario_id"], r["style"], r["level"]): r for r in rows if r["role"] == "reply" and r["split"] == "test"}
    render_dir.mkdir(parents=True, exist_ok=True)
    renderer = Renderer()
    cases = []
    for (sid, style), query in sorted(queries.items()):
        other_styles = {s for (q_sid, s) in queries if q_sid == sid} - {style}
        if len(other_styles) != 1 or any((sid, style, level) not in replies for level in (1, 3, 5)):
            continue
        (other,) = other_styles
        neutral = {}
        for level in (5, 3):
            reply = replies[(sid, style, level)]
            path = render_dir / f"{sid}-{style}-l{level}-neutral.flac"
            if not path.exists():
                samples = renderer.render(reply["text"], voice_by_name(reply["voice"]), "neutral", seed=seed + level)
                sf.write(path, samples, 16_000, subtype="PCM_16")
            neutral[level] = path
        cases.append(JudgeCase(
            scenario_id=sid, style=style, query=data_dir / query["path"],
            replies={
                "topline": data_dir / replies[(sid, style, 5)]["path"],
                "neutral_voice": neutral[5],
                "tone_deaf_cascade": neutral[3],
                "mismatched": data_dir / replies[(sid, other, 5)]["path"],
                "reversed": data_dir / replies[(sid, style, 1)]["path"],
            },
            matching=data_dir / replies[(sid, style, 5)]["path"],
            other=data_dir / replies[(sid, other, 5)]["path"],
        ))
    log(f"[eval] {len(cases)} judge cases from {len({c.scenario_id for c in cases})} test scenarios")
    return cases


def judge_metrics(cases: list[JudgeCase], backend, log: Callable[[str], None], batch_cases: int = 5) -> dict:
    """Run every case through ``backend`` (a ``MultiStageBackend``); see the module docstring.
    Each case's pairs are scored twice in one job, as heard and with the query's true style as
    a known label, so the clips are transcribed and analysed once."""
    from judge_service.audio import AudioLimits, decode_audio
    from judge_service.backends.base import BackendJob, PairSpec

    limits = AudioLimits(0.1, 60.0)
    heard: list[dict[str, float]] = []
    told: list[dict[str, float]] = []
    started = time.monotonic()
    for start in range(0, len(cases), batch_cases):
        jobs = []
        for case in cases[start : start + batch_cases]:
            clips = [decode_audio("query", case.query.read_bytes(), limits)] + [
                decode_audio(system, case.replies[system].read_bytes(), limits) for system in SYSTEMS
            ]
            truth = {case.dimension: case.style}
            pairs = [PairSpec(0, i + 1) for i in range(len(SYSTEMS))] + [
                PairSpec(0, i + 1, truth) for i in range(len(SYSTEMS))]
            jobs.append(BackendJob(clips, [None] * len(clips), pairs))
        report = backend.run_batch(jobs)
        for result in report.results:
            scores = [s["score"] for s in result.scores]
            heard.append(dict(zip(SYSTEMS, scores[: len(SYSTEMS)])))
            told.append(dict(zip(SYSTEMS, scores[len(SYSTEMS) :])))
    out = {"cases": len(cases), **system_metrics(cases, heard),
           "with_true_query_labels": system_metrics(cases, told), "seconds": round(time.monotonic() - started, 1)}
    log(f"[eval] judge: tau {out['kendall_tau']:.2f}, topline-reversed {out['topline_minus_reversed']:.2f}, "
        f"hallucination test {out['style_hallucination_preference']:.3f}, means {out['system_means']}; with true "
        f"query labels: topline-reversed {out['with_true_query_labels']['topline_minus_reversed']:.2f}, "
        f"hallucination test {out['with_true_query_labels']['style_hallucination_preference']:.3f}")
    return out


def system_metrics(cases: list[JudgeCase], scores: list[dict[str, float]]) -> dict:
    """Known-system metrics from each case's scores (``scores[i]``: system -> score of
    ``cases[i]``): mean per system, Kendall tau against ``SYSTEMS``' order, topline - reversed,
    the style-hallucination preference (topline > mismatched), and all of them per dimension."""

    def summary(rows: list[dict[str, float]]) -> dict:
        means = {system: float(np.mean([r[system] for r in rows])) for system in SYSTEMS}
        return {
            "system_means": means,
            "kendall_tau": kendall_tau([means[s] for s in SYSTEMS]),
            "topline_minus_reversed": means["topline"] - means["reversed"],
            "style_hallucination_preference": float(np.mean([r["topline"] > r["mismatched"] for r in rows])),
        }

    out = summary(scores)
    dimensions = sorted({c.dimension for c in cases})
    out["by_dimension"] = {
        d: summary([r for c, r in zip(cases, scores) if c.dimension == d]) for d in dimensions
    }
    return out


def evaluate_judge(
    model_dir: Path, data_dir: Path, real_speech_dir: Path | None, out_dir: Path, seed: int = 0,
    include_baseline: bool = True, log: Callable[[str], None] = print,
) -> dict:
    """Every metric; writes ``out_dir/metrics.json`` and ``out_dir/metrics.md``."""
    from judge_service.backends.multistage import MultiStageBackend
    from judge_service.config import load_settings
    from judge_service.judge.baseline import BaselineJudge
    from judge_service.judge.polytone_judge import PolyToneJudge

    started = time.monotonic()
    data = TrainingData(data_dir, real_speech_dir, data_dir / "cache", log)
    metrics: dict = {"analysers": analyser_metrics(data, seed, log)}
    cases = judge_cases(data_dir, data_dir / "eval_renders", seed, log)
    settings = load_settings(judge_model_path=model_dir)
    judge = PolyToneJudge(model_dir)
    backend = MultiStageBackend(settings, judge)
    metrics["judge"] = {"name": backend.info.name, "version": backend.info.version, **judge_metrics(cases, backend, log)}
    if include_baseline:
        baseline = MultiStageBackend(settings, BaselineJudge())
        metrics["baseline_judge"] = {"name": baseline.info.name, **judge_metrics(cases, baseline, log)}
    metrics["seconds"] = round(time.monotonic() - started, 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (out_dir / "metrics.md").write_text(metrics_markdown(metrics))
    return metrics


def _f(value: object, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def metrics_markdown(metrics: dict) -> str:
    lines = ["## Analysers: held-out synthetic (unseen texts and unseen voices)", "",
             "| dimension | clips | accuracy | UAR | contrast accuracy (pairs) |", "|---|---|---|---|---|"]
    for dim, m in metrics["analysers"]["heldout_synthetic"].items():
        lines.append(f"| {dim} | {m['clips']} | {_f(m['accuracy'])} | {_f(m['uar'])} | {_f(m['contrast_accuracy'])} ({m['contrast_pairs']}) |")
    for key, title in (("real_voices", "synthetic + real training"), ("real_voices_synthetic_only", "synthetic-only training")):
        if key in metrics["analysers"]:
            m = metrics["analysers"][key]
            lines += ["", f"## Analysers: real voices, speaker-disjoint ({title})", "",
                      "| protocol | metric | value |", "|---|---|---|"]
            for speaker, v in m.get("tess_emotion_uar", {}).items():
                lines.append(f"| TESS, test speaker {speaker.split(':')[1]} (trained without it) | emotion UAR, 7 classes | {_f(v)} |")
            lines.append(f"| EMO-DB, 5 folds of 2 speakers | emotion UAR, 6 classes (boredom left out) | {_f(m.get('emodb_emotion_uar'))} |")
            lines.append(f"| LibriSpeech sample, 5 speaker folds | gender accuracy | {_f(m.get('librispeech_gender_accuracy'))} |")
    lines += ["", "## Text-only control (a classifier on the query text alone)", "",
              "| dimension | accuracy | majority-class rate |", "|---|---|---|"]
    for dim, m in metrics["analysers"]["text_only_control"].items():
        lines.append(f"| {dim} | {_f(m['accuracy'])} | {_f(m['majority_class_rate'])} |")
    for key in ("judge", "baseline_judge"):
        if key not in metrics:
            continue
        m = metrics[key]
        lines += ["", f"## Judge `{m['name']}`: known systems on the test split ({m['cases']} cases)", "",
                  "| system | mean score |", "|---|---|"]
        lines += [f"| {s} | {_f(v, 2)} |" for s, v in m["system_means"].items()]
        lines += ["", f"Kendall tau vs the expected order: {_f(m['kendall_tau'], 2)}; topline - reversed: "
                      f"{_f(m['topline_minus_reversed'], 2)}; style-hallucination test (prefers the reply "
                      f"written for the heard style): {_f(m['style_hallucination_preference'])}"]
        told = m.get("with_true_query_labels")
        if told:
            lines += ["", f"With the query's true style given as a known label (perfect analysers, the rubric's "
                          f"own error left): tau {_f(told['kendall_tau'], 2)}, topline - reversed "
                          f"{_f(told['topline_minus_reversed'], 2)}, style-hallucination test "
                          f"{_f(told['style_hallucination_preference'])}"]
        lines += ["", "| dimension | tau | hallucination test | hallucination test, true labels | "
                  + " | ".join(SYSTEMS) + " |", "|---|---|---|---|" + "---|" * len(SYSTEMS)]
        for d, dm in m["by_dimension"].items():
            told_d = told["by_dimension"][d]["style_hallucination_preference"] if told else None
            lines.append(f"| {d} | {_f(dm['kendall_tau'], 2)} | {_f(dm['style_hallucination_preference'])} | "
                         f"{_f(told_d)} | " + " | ".join(_f(dm["system_means"][s], 2) for s in SYSTEMS) + " |")
    return "\n".join(lines) + "\n"
