"""The room a policy has above SFT under a given judge: what the judge rewards among the answers
a ``ReplyPolicy`` can give (``benchmarks/rl_reward_ceiling.py`` runs it on the experiment's
held-out prompts).

For each prompt the probe scores 19 answers (``probe_actions``): the labelled demonstration's
words in each of the 10 tones (one of which is the demonstration itself, its written tone), and
each other candidate in a neutral tone. ``summarise`` turns the scores into the bounds below.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from trainer_client.grpo.policy import TONES, Action, Prompt

NEUTRAL_TONE = TONES.index("neutral")


def probe_actions(prompt: Prompt) -> list[Action]:
    """The demonstration's words in every tone (``TONES`` order), then every other candidate in
    a neutral tone."""
    gold = prompt.gold()
    return [Action(gold.content, t) for t in range(len(TONES))] + [
        Action(c, NEUTRAL_TONE) for c in range(len(prompt.candidates)) if c != gold.content
    ]


def summarise(prompts: list[Prompt], scores: list[list[float | None]]) -> dict:
    """Means of the probe's scores (see the module docstring); ``scores[p]`` follows
    ``probe_actions(prompts[p])``. Unscored answers (``None``) are left out of every mean."""
    def mean(values) -> float:
        kept = [v for v in values if v is not None]
        return float(np.mean(kept)) if kept else float("nan")

    in_tone = np.array([[np.nan if s is None else s for s in row[: len(TONES)]] for row in scores])
    demonstration = mean(row[p.gold().tone] for p, row in zip(prompts, scores))
    by_style: dict[str, list[int]] = defaultdict(list)
    for k, p in enumerate(prompts):
        by_style[f"{p.dimension}:{p.style}"].append(k)
    per_style = {}
    learned_tone_scores = []
    for style, rows in sorted(by_style.items()):
        tone_means = np.nanmean(in_tone[rows], axis=0)
        best = int(np.nanargmax(tone_means))
        per_style[style] = {"prompts": len(rows), "demonstration_tone": TONES[prompts[rows[0]].gold().tone],
                            "demonstration": mean(scores[k][prompts[k].gold().tone] for k in rows),
                            "best_tone": TONES[best], "best_tone_mean": float(tone_means[best])}  # fmt: skip
        learned_tone_scores += list(in_tone[rows, best])
    by_level: dict[str, list[float | None]] = defaultdict(list)
    for p, row in zip(prompts, scores):
        label = f"{p.dimension}:{p.style}"
        by_level["true style, level 5"].append(row[NEUTRAL_TONE])
        for action, s in zip(probe_actions(p)[len(TONES) :], row[len(TONES) :]):
            cand = p.candidates[action.content]
            by_level[f"{'true' if cand.style == label else 'contrast'} style, level {cand.level}"].append(s)
    return {
        "prompts": len(prompts),
        "demonstration": demonstration,
        "demonstration_words_in_tone": {t: float(np.nanmean(in_tone[:, k])) for k, t in enumerate(TONES)},
        "best_tone_per_style": float(np.nanmean(learned_tone_scores)),
        "best_of_19_per_prompt": mean(max((s for s in row if s is not None), default=None) for row in scores),
        "per_style": per_style,
        "neutral_tone_by_written_style_and_level": {k: mean(v) for k, v in sorted(by_level.items())},
    }


def markdown(report: dict) -> str:
    s = report["summary"]
    lines = [f"# What `{report['judge']['name']}` {report['judge']['version']} rewards on {s['prompts']} held-out RL prompts", "",
             f"- the demonstration (what SFT imitates): **{s['demonstration']:.3f}**",
             f"- its words in the best tone per true style (in-sample): **{s['best_tone_per_style']:.3f}**",
             f"- best of the 19 probed answers per prompt (includes the judge's noise): {s['best_of_19_per_prompt']:.3f}", "",
             "| the demonstration's words in tone | mean |", "|---|---|"]  # fmt: skip
    lines += [f"| {t} | {v:.3f} |" for t, v in s["demonstration_words_in_tone"].items()]
    lines += ["", "| true style | prompts | demonstration (tone) | best fixed tone | its mean |", "|---|---|---|---|---|"]
    lines += [f"| {k} | {v['prompts']} | {v['demonstration']:.2f} ({v['demonstration_tone']}) | {v['best_tone']} | "
              f"{v['best_tone_mean']:.2f} |" for k, v in s["per_style"].items()]  # fmt: skip
    lines += ["", "| reply in a neutral tone, written for | mean |", "|---|---|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in s["neutral_tone_by_written_style_and_level"].items()]
    p = report["provenance"]
    lines += ["", f"{p['date_utc']}, commit {p['commit']}, {p['device']}; {report['pairs']} pairs scored in {report['judge_s']:.0f} s."]
    return "\n".join(lines) + "\n"
