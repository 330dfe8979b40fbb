"""Hostile-input checks of the judge service: API fuzzing (schemathesis), a decoder fuzzer.

Run from the repository root as modules, e.g. ``.venv/bin/python -m scripts.hostile.fuzz_audio_decoder``.
"""
