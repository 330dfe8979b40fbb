"""PolyTone data synthesis: every scenario text rendered in every style of its dimension, with
many voices, so that the words carry no clue and an analyser must listen.

- ``voices``: speaker profiles (Piper or espeak-ng base voice + WORLD voice transform) and the
  three disjoint voice sets (train, held-out, benchmark);
- ``styles``: speaking styles as prosody transforms (emotion, sarcasm, reply tones);
- ``render``: :class:`Renderer`, text + voice + style + seed -> 16 kHz float32 samples;
- ``dataset``: the dataset builder and its command line
  (``python -m judge_service.judge.polytone.dataset --out DIR``).

Nothing heavy happens at import; the Piper model loads on the first Piper render.
"""
