"""A distilled reward model: the full judge's score predicted from cheap acoustics, for RL.

The paper distils its slow multi-stage judge into a fast end-to-end reward model for GRPO. Ours
skips the slowest stages (Whisper and MiniLM): per clip it pools the log-mel features the
service computes anyway and measures prosody, and a small MLP maps the (query, response) pair to the teacher's 1-5
score.

Clip features ``(CLIP_FEATURES,)``, from the clip's 80-bin Whisper log-mel ``(80, frames)``:
    mean and std of every bin (160); mean, std, 10th and 90th percentile of the per-frame mean
    level (4, a loudness/activity profile); mean absolute frame-to-frame change of the level and
    of the whole spectrum (2, dynamics and spectral flux: articulation and liveliness); log
    duration in seconds (1); the judge's prosody vector (12: F0 level, range and spread in
    semitones, voicing, energy, pauses; YIN pitch is the one costly part, about a tenth of the
    full judge's time). The teacher's speaking rate counts the syllables of its transcript;
    with ``speaking_rate="nuclei"`` (format 3, the default of ``paras2s-judge distill``) the
    rate slot holds ``syllable_nuclei`` per speech second instead, which agrees with the text's
    syllable rate at Pearson 0.90 on 300 rendered benchmark queries (0.62 on TESS, whose
    sentences all have 4 syllables, so only the duration varies). An oracle probe (last
    format) showed the transcript's rate lifts a student's tone term from 0.5 to 0.99.
    With ``speaking_rate="learned"`` (format 5, the default of ``paras2s-judge distill``) the
    model carries its own ``SyllableCounter`` (``syllable_counter.py``), fitted to the
    syllables of the teacher's transcripts of the training clips, and the slot holds its count
    per speech second.
Pair input: [query features, response features] standardised with the training statistics,
then the clip columns the config names (``clip_inputs``: ``all``, or ``summary``: everything but
the 160 per-bin mel statistics, which mostly describe the voice and the recording).
Models (``architecture``; H = ``hidden``, E = ``clip_embedding``):
    ``flat``: Linear(2 x inputs, H) -> GELU -> Linear(H, H) -> GELU -> Linear(H, 1).
    ``towers``: one clip tower Linear(inputs, H) -> GELU -> Linear(H, E) applied to the query
        and to the response (the same weights: a clip is measured the same way whichever side it
        is on), then Linear(3 x E, H) -> GELU -> Linear(H, 1) on [query, response, their
        product]. The teacher's own rubric is shaped this way (the same tone measure on both
        clips, then a comparison).
    Both end in 1 + 4 sigmoid, a score in [1, 5].
``pair_prior="baseline-tone"`` (format 4) adds three unstandardised inputs to the pair head (or
the flat MLP): the baseline rubric's query arousal, reply arousal and tone fit, computed by its
own formula from the clips' measured prosody (``baseline_tone_terms``; nuclei stand in for the
transcript's syllables). The tone fit is 0.6 of the baseline teacher's score, and an MLP that has
to discover its |difference| and clipping from ~4,000 pairs whose relevance part it cannot see
learns it only roughly. For another teacher it is one more acoustic input.
``members`` (format 4): the model is an ensemble of that many students of this shape, each
trained from its own seed and early-stopping split; it scores their mean.
Measured on the 5,961 held-out benchmark pairs (unseen scenarios and voices), trained on 4,800
pairs of the train split, both scored by the baseline judge after the ASR fix of
``judge/asr.py`` (long replies are no longer cut short), towers H=256/E=64 over summary inputs.
On the pairs rebuilt from scratch on 2026-11-27 (same teacher version), single students of seeds
0/1/2: nuclei rate 0.897/0.884/0.886, learned rate 0.900/0.895/0.884, learned rate with the
baseline-tone prior 0.902/0.896/0.879; ensembles of 3 (seed 0): nuclei 0.894, nuclei + prior
0.899, learned 0.897, learned + prior 0.904 (0.688 without silence; the shipped model). The
transcripts' own syllables (an oracle, not servable) give 0.920. The previous shipped model
(nuclei, one student) scores 0.892 on these pairs. So the learned rate is worth about +0.004 and
the ensemble about as much again; neither is large beside the 0.01 spread between seeds. Earlier,
on the previous render of the same benchmark: nuclei rate 0.879 and 0.871 (seeds 0 and 1), no
rate 0.874 and 0.854. On the answers an RL policy chooses between (441 scored
probe pairs of ``benchmarks/rl_reward_ceiling.py``, mostly one reply in ten tones) the nuclei
rate's gain was clearer: 0.64 and 0.63 against 0.59 and 0.59. Against the previous teacher
(before the ASR fix) the same recipe without a rate reached 0.90. Read these against a ceiling: the teacher's score is
``1 + 4 (0.4 relevance + 0.6 tone fit)``, and relevance (MiniLM over the two transcripts) is
invisible without a transcript. A student that knew the tone term exactly and only each
system's mean relevance would reach Pearson 0.93 overall and 0.79 without silence on these
pairs; within one system at most about 0.8.

It has no transcript and no labels: it is a student, good only where its teacher's scores were
learned (its metrics.json says how well it agrees with the teacher on held-out pairs), and it
inherits every bias of the teacher. Weights load from safetensors only.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from judge_service.features import log_mel_spectrogram
from judge_service.judge.syllable_counter import SyllableCounter

N_MELS = 80
N_PROSODY = 12  # len(analysers.PROSODY_FEATURES), checked in clip_features
CLIP_FEATURES = 2 * N_MELS + 4 + 2 + 1 + N_PROSODY
LOG_DURATION_INDEX = 2 * N_MELS + 6
DISTILLED_FORMAT = "paras2s-distilled/5"
READABLE_FORMATS = ("paras2s-distilled/1", "paras2s-distilled/2", "paras2s-distilled/3", "paras2s-distilled/4",
                    DISTILLED_FORMAT)  # fmt: skip
"""/1 had no ``architecture`` or ``clip_inputs``: it is ``flat`` over ``all``, the defaults; /1
and /2 had no ``speaking_rate``: ``none``, the default; /1 to /3 had one student and no
``members``: 1, its weights named without the ``students.0.`` prefix; /5 added the ``learned``
speaking rate, whose counter's weights are ``syllable_counter.*``."""
SPEAKING_RATES = ("none", "nuclei", "learned")
"""What fills the prosody vector's speaking-rate slot: nothing (``rate_missing``),
``syllable_nuclei`` per speech second, or the model's own ``SyllableCounter`` (trained on the
syllables of the teacher's transcripts) per speech second."""
MIN_LEARNED_SYLLABLES = 1.0
"""A learned count below one syllable is no speech: the rate stays missing, as the teacher's
does for an empty transcript."""
VOWEL_BAND_HZ = (300.0, 2500.0)
"""Where vowels carry their energy (F1 and F2): a syllable nucleus is a peak of this band."""
NUCLEUS_SMOOTHING_FRAMES = 5
NUCLEUS_DIP_DB = 3.0
NUCLEUS_RANGE_DB = 25.0
"""A nucleus is a peak of the band level (dB, Hann-smoothed over 50 ms) at most 25 dB below the
clip's loudest, with a dip of at least 3 dB to the previous nucleus (de Jong & Wempe 2009 count
intensity peaks with a 2 dB dip). Chosen from 80 settings by the rate's Pearson with the text's
syllable rate on 300 rendered benchmark queries (0.91; 0.90 on another 300)."""
ARCHITECTURES = ("flat", "towers")
CLIP_INPUTS = {"all": range(0, CLIP_FEATURES), "summary": range(2 * N_MELS, CLIP_FEATURES)}
"""Which columns of a clip's ``clip_features`` row the model reads."""
PAIR_PRIORS = ("none", "baseline-tone")
"""Extra pair inputs: none, or the baseline rubric's tone terms measured on the two clips
(``baseline_tone_terms``): the query's and the reply's arousal and the tone fit."""
PROSODY_START = LOG_DURATION_INDEX + 1
"""Where ``prosody_vector`` begins in a clip's feature row."""


def default_distilled_model_path() -> Path:
    from importlib import resources

    return Path(str(resources.files("judge_service") / "models" / "distilled"))


@functools.cache
def vowel_band_bins(n_mels: int = N_MELS) -> np.ndarray:
    """Indices of the mel bins whose peak lies in ``VOWEL_BAND_HZ`` (computed once per size)."""
    from judge_service.features.reference import mel_filters

    peak_hz = mel_filters(n_mels).argmax(dim=1).numpy() * 16_000 / 400  # 400-point FFT: 40 Hz bins
    return np.flatnonzero((peak_hz >= VOWEL_BAND_HZ[0]) & (peak_hz <= VOWEL_BAND_HZ[1]))


def syllable_nuclei(mel: np.ndarray) -> int:
    """Count of syllable nuclei in a clip's Whisper log-mel ``(n_mels, frames)`` (10 ms frames).

    The teacher's speaking rate counts the syllables of its transcript; the student has no
    transcript, so it counts loudness peaks of the vowel band instead. Each peak must rise
    ``NUCLEUS_DIP_DB`` above the lowest point since the previous nucleus, else the two are one
    nucleus (the higher peak)."""
    if mel.shape[1] < 3:
        return 0
    log10_power = 4.0 * mel[vowel_band_bins(mel.shape[0])].astype(np.float64) - 4.0  # Whisper units
    band_db = 10.0 * np.log10(np.power(10.0, log10_power).sum(axis=0))
    window = np.hanning(NUCLEUS_SMOOTHING_FRAMES + 2)[1:-1]
    band_db = np.convolve(band_db, window / window.sum(), mode="same")
    floor_db = band_db.max() - NUCLEUS_RANGE_DB
    nuclei: list[float] = []  # level of each nucleus so far
    lowest_since = np.inf
    for i in range(1, band_db.shape[0] - 1):
        level = band_db[i]
        lowest_since = min(lowest_since, level)
        if not (level >= band_db[i - 1] and level > band_db[i + 1] and level > floor_db):
            continue
        if nuclei and min(nuclei[-1], level) - lowest_since < NUCLEUS_DIP_DB:
            if level > nuclei[-1]:
                nuclei[-1], lowest_since = level, level
            continue
        nuclei.append(level)
        lowest_since = level
    return len(nuclei)


def clip_features(clips: Sequence[np.ndarray], speaking_rate: str = "none",
                  syllable_counter: SyllableCounter | None = None) -> np.ndarray:  # fmt: skip
    """``(len(clips), CLIP_FEATURES)`` float32 from 16 kHz mono float32 clips ``(n_i,)``; each
    row depends only on its own clip (log-mel is per clip, padding is cut away).
    ``speaking_rate`` is one of ``SPEAKING_RATES`` (the model's config says which);
    ``learned`` counts with ``syllable_counter`` (``DistilledRewardModel.clip_features`` passes
    the model's own)."""
    if speaking_rate not in SPEAKING_RATES:
        raise ValueError(f"speaking_rate {speaking_rate!r}: one of {', '.join(SPEAKING_RATES)}")
    if (speaking_rate == "learned") != (syllable_counter is not None):
        raise ValueError("a syllable_counter is needed for speaking_rate 'learned', and only for it")
    out = np.zeros((len(clips), CLIP_FEATURES), dtype=np.float32)
    if not clips:
        return out
    from judge_service.judge.analysers import PROSODY_FEATURES, prosody_vector
    from judge_service.judge.prosody import measure_prosody, syllable_rate

    assert len(PROSODY_FEATURES) == N_PROSODY
    mel, frames = log_mel_spectrogram([torch.from_numpy(np.ascontiguousarray(c, dtype=np.float32)) for c in clips],
                                      n_mels=N_MELS)  # fmt: skip
    if syllable_counter is not None:
        with torch.no_grad():
            learned_counts = syllable_counter(mel, frames).tolist()  # each clip on its own frames
    for i, (clip, n) in enumerate(zip(clips, frames.tolist())):
        m = mel[i, :, : max(1, n)]
        level = m.mean(dim=0)
        quantiles = torch.quantile(level, torch.tensor([0.1, 0.9]))
        if m.shape[1] > 1:
            dynamics = [float(level.diff().abs().mean()), float(m.diff(dim=1).abs().mean())]
        else:
            dynamics = [0.0, 0.0]
        prosody = measure_prosody(np.ascontiguousarray(clip, dtype=np.float32), None)
        if speaking_rate == "nuclei":
            syllables = float(syllable_nuclei(m.numpy()))
        elif speaking_rate == "learned":
            syllables = learned_counts[i] if learned_counts[i] >= MIN_LEARNED_SYLLABLES else 0.0
        else:
            syllables = 0.0
        if syllables:
            # The teacher's rule with estimated syllables; none stays missing, as an empty
            # transcript does for the teacher.
            rate = syllable_rate(syllables, prosody.speech_duration_s)
            prosody = dataclasses.replace(prosody, speaking_rate_syllables_per_s=rate)
        out[i] = np.concatenate([
            m.mean(dim=1).numpy(), m.std(dim=1, unbiased=False).numpy(),
            [float(level.mean()), float(level.std(unbiased=False)), float(quantiles[0]), float(quantiles[1])],
            dynamics, [np.log(max(clip.shape[0], 1) / 16_000.0)], prosody_vector(prosody),
        ])  # fmt: skip
    return out


def baseline_tone_terms(query: torch.Tensor, response: torch.Tensor) -> torch.Tensor:
    """The ``paras2s-baseline`` rubric's tone terms from two batches of raw clip features
    ``(n, CLIP_FEATURES)``: ``(n, 3)`` [query arousal, reply arousal, tone fit], by the rubric's
    own formula (``baseline.arousal_from_prosody``, ``score_pair`` with no known emotion: the
    target is ``MIRROR_FRACTION`` x the query's arousal). The prosody is the student's, so the
    rate slot holds what ``clip_features`` put there (nuclei for the teacher's transcript
    syllables); a missing F0 spread or rate is left out of the mean, as the teacher does.
    ``tests/unit/test_distilled.py`` checks it against ``arousal_from_prosody`` itself."""
    from judge_service.judge import baseline
    from judge_service.judge.analysers import PROSODY_FEATURES

    def arousal(x: torch.Tensor) -> torch.Tensor:
        column = {name: x[:, PROSODY_START + k] for k, name in enumerate(PROSODY_FEATURES)}
        cues = [
            ((column["f0_std_semitones"] - baseline.F0_STD_SEMITONES_NORM[0]) / baseline.F0_STD_SEMITONES_NORM[1],
             column["f0_missing"] < 0.5),
            ((column["energy_dbfs"] - baseline.ENERGY_DBFS_NORM[0]) / baseline.ENERGY_DBFS_NORM[1],
             torch.ones_like(column["energy_dbfs"], dtype=torch.bool)),
            ((column["speaking_rate_syllables_per_s"] - baseline.RATE_SYLLABLES_PER_S_NORM[0])
             / baseline.RATE_SYLLABLES_PER_S_NORM[1], column["rate_missing"] < 0.5),
        ]  # fmt: skip
        total = sum(torch.where(present, z, torch.zeros_like(z)) for z, present in cues)
        count = sum(present.to(x.dtype) for _, present in cues)
        return torch.clamp(total / count / 2.0, -1.0, 1.0)

    query_arousal, reply_arousal = arousal(query), arousal(response)
    tone_fit = torch.clamp(1.0 - (reply_arousal - baseline.MIRROR_FRACTION * query_arousal).abs(), 0.0, 1.0)
    return torch.stack([query_arousal, reply_arousal, tone_fit], dim=1)


@dataclass(frozen=True)
class DistilledConfig:
    teacher_name: str
    teacher_version: str
    hidden: int = 64
    architecture: str = "flat"
    clip_inputs: str = "all"
    clip_embedding: int = 16
    """``towers`` only: size of a clip's embedding."""
    speaking_rate: str = "none"
    """One of ``SPEAKING_RATES``: how ``clip_features`` fills the rate slot for this model."""
    pair_prior: str = "none"
    """One of ``PAIR_PRIORS``: extra inputs of the pair head (``flat``: of the MLP)."""
    members: int = 1
    """Students of this shape, each trained from its own seed and early-stopping split; the
    model's score is their mean (an ensemble averages away part of each one's fitting noise)."""
    format: str = DISTILLED_FORMAT

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture {self.architecture!r}: one of {', '.join(ARCHITECTURES)}")
        if self.clip_inputs not in CLIP_INPUTS:
            raise ValueError(f"clip_inputs {self.clip_inputs!r}: one of {', '.join(CLIP_INPUTS)}")
        if self.speaking_rate not in SPEAKING_RATES:
            raise ValueError(f"speaking_rate {self.speaking_rate!r}: one of {', '.join(SPEAKING_RATES)}")
        if self.pair_prior not in PAIR_PRIORS:
            raise ValueError(f"pair_prior {self.pair_prior!r}: one of {', '.join(PAIR_PRIORS)}")
        if self.members < 1:
            raise ValueError(f"members must be at least 1, got {self.members}")


class DistilledStudent(nn.Module):
    """One student: the standardised query and response columns, each ``(n, n_inputs)``, and the
    pair prior ``(n, n_prior)`` -> logits ``(n,)``; see the module docstring for the two
    architectures (the prior joins the pair head's inputs, or the flat MLP's)."""

    def __init__(self, config: DistilledConfig, n_inputs: int, n_prior: int) -> None:
        super().__init__()
        self.architecture = config.architecture
        h, e, n = config.hidden, config.clip_embedding, n_inputs
        if config.architecture == "flat":
            self.net = nn.Sequential(nn.Linear(2 * n + n_prior, h), nn.GELU(), nn.Linear(h, h), nn.GELU(), nn.Linear(h, 1))
        else:
            self.clip_tower = nn.Sequential(nn.Linear(n, h), nn.GELU(), nn.Linear(h, e))
            self.pair_head = nn.Sequential(nn.Linear(3 * e + n_prior, h), nn.GELU(), nn.Linear(h, 1))

    def forward(self, query: torch.Tensor, response: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        if self.architecture == "flat":
            return self.net(torch.cat([query, response, prior], dim=1))[:, 0]
        q, r = self.clip_tower(query), self.clip_tower(response)
        return self.pair_head(torch.cat([q, r, q * r, prior], dim=1))[:, 0]


class DistilledRewardModel(nn.Module):
    def __init__(self, config: DistilledConfig) -> None:
        super().__init__()
        self.config = config
        columns = list(CLIP_INPUTS[config.clip_inputs])
        self.register_buffer("clip_columns", torch.tensor(columns, dtype=torch.long), persistent=False)
        n_prior = 3 if config.pair_prior == "baseline-tone" else 0
        self.students = nn.ModuleList(DistilledStudent(config, len(columns), n_prior) for _ in range(config.members))
        self.syllable_counter = SyllableCounter(N_MELS) if config.speaking_rate == "learned" else None
        self.register_buffer("input_mean", torch.zeros(2 * CLIP_FEATURES))
        self.register_buffer("input_std", torch.ones(2 * CLIP_FEATURES))

    def clip_features(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """``clip_features`` of 16 kHz mono clips as this model reads them ``(len(clips), CLIP_FEATURES)``."""
        return clip_features(clips, self.config.speaking_rate, self.syllable_counter)

    def student_inputs(self, pair_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(n, 2 * CLIP_FEATURES)`` [query clip features, response clip features] -> what every
        student reads: the standardised query and response columns, each ``(n, len(clip_columns))``,
        and the pair prior ``(n, 3)`` (``(n, 0)`` without one)."""
        x = (pair_features - self.input_mean) / self.input_std
        if self.config.pair_prior == "baseline-tone":
            prior = baseline_tone_terms(pair_features[:, :CLIP_FEATURES], pair_features[:, CLIP_FEATURES:])
        else:
            prior = pair_features.new_zeros((pair_features.shape[0], 0))
        return x[:, self.clip_columns], x[:, CLIP_FEATURES + self.clip_columns], prior

    @staticmethod
    def _score(student: nn.Module, inputs: tuple) -> torch.Tensor:
        return 1.0 + 4.0 * torch.sigmoid(student(*inputs))

    def student_scores(self, k: int, pair_features: torch.Tensor) -> torch.Tensor:
        """Student ``k``'s scores ``(n,)`` in [1, 5] (training fits one student at a time)."""
        return self._score(self.students[k], self.student_inputs(pair_features))

    def forward(self, pair_features: torch.Tensor) -> torch.Tensor:
        """``(n, 2 * CLIP_FEATURES)`` -> scores ``(n,)`` in [1, 5]: the mean of the students' scores.
        The inputs (standardisation, prior) are computed once for all students."""
        inputs = self.student_inputs(pair_features)
        return torch.stack([self._score(student, inputs) for student in self.students]).mean(dim=0)

    def save(self, folder: Path, metrics: dict | None = None) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(folder / "model.safetensors"))
        (folder / "config.json").write_text(json.dumps(asdict(self.config), indent=2) + "\n")
        if metrics is not None:
            (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> "DistilledRewardModel":
        from safetensors.torch import load_file

        config = DistilledConfig(**json.loads((folder / "config.json").read_text()))
        if config.format not in READABLE_FORMATS:
            raise ValueError(f"{folder}: format {config.format!r}, this code reads {', '.join(map(repr, READABLE_FORMATS))}")
        model = cls(config)
        state = load_file(str(folder / "model.safetensors"))
        if config.format in READABLE_FORMATS[:3]:  # one student, its weights at the top level
            state = {k if k.startswith("input_") else f"students.0.{k}": v for k, v in state.items()}
        model.load_state_dict(state)
        model.eval()
        return model

    def version(self, folder: Path) -> str:
        import hashlib

        return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()[:16]
