"""Batched sentence embeddings against the one-text-per-pass reference."""

import numpy as np
import pytest

from judge_service.judge.text_embedding import TextEmbedder, default_text_model_path

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def embedder():
    return TextEmbedder(default_text_model_path())


def test_batched_equals_reference_within_float_noise(embedder):
    texts = ["I just found out that I did not get the job.", "", "Oh.",
             "That is wonderful news, congratulations on the promotion you worked so hard for!",
             "My parcel is late again, for the third time.", "   "]
    batched = embedder.encode(texts)
    reference = embedder.encode_reference(texts)
    assert batched.shape == (6, 384) and batched.dtype == np.float32
    np.testing.assert_allclose(batched, reference, atol=2e-6)
    assert not batched[1].any() and not batched[5].any(), "empty text embeds to zeros"
    np.testing.assert_allclose(np.linalg.norm(batched[[0, 2, 3, 4]], axis=1), 1.0, atol=1e-5)


def test_topical_similarity_is_meaningful(embedder):
    a, b, c = embedder.encode(["My parcel is late again.", "Let me check where your package is.", "I love painting."])
    assert float(a @ b) > float(a @ c) + 0.2
