"""Serving word vectors (word2vec, or any GloVe-format file): the app's ``embeddings`` panel.

The panel's model is given as ``vectors=<word2vec checkpoint or GloVe-format .txt>``
(:func:`dlforge.word_vectors.load_vectors`): a GloVe file is not a checkpoint, so the panel opens its
model itself (:meth:`WordVectorsModel.open_model`). ``GET /api/embeddings``: the served vectors
(``source``, ``words``, ``dim``) or null; ``POST /api/embeddings`` (``{"query": "king - man + woman",
"k"}``): the nearest words of one word, or an analogy's answers (3CosAdd).

Word vectors are a table, not a graph: a checkpoint is not exported (``python -m dlforge.embeddings
export`` writes its vectors in GloVe's text format) and ``predict`` points to ``dlforge.embeddings``.
"""

import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dlforge.errors import DlforgeError
from dlforge.models.word2vec import Word2Vec
from dlforge.registry import register_serving
from dlforge.serving.served import Runner, ServedModel, card_header
from dlforge.serving.web import AppContext, BadRequest, since
from dlforge.word_vectors import WordVectors, from_model, load_vectors

PANEL = "embeddings"


class VectorLookup:
    """The runner of word vectors: row ids int64 (N,) -> their vectors float32 (N, D)."""

    def __init__(self, vectors: WordVectors) -> None:
        self.vectors = vectors
        self.table = vectors.vectors.float().numpy()

    def __call__(self, ids: np.ndarray) -> list[np.ndarray]:
        return [self.table[np.asarray(ids, dtype=np.int64)]]


@register_serving(Word2Vec)
class WordVectorsModel(ServedModel):
    """Words and their vectors: neighbours and analogies by cosine."""

    task = "word_vectors"
    what = "word vectors"
    panels = (PANEL,)
    panel_options: ClassVar[dict[str, str]] = {PANEL: "vectors"}
    predict_hint = "explore them with python -m dlforge.embeddings neighbours <word> vectors=<checkpoint>"

    # --- a checkpoint ---------------------------------------------------------------------------
    @classmethod
    def describe(cls, model: Any) -> dict[str, Any]:
        return {
            **card_header(model, cls.task),
            "words": len(model.words),
            "dim": int(model.vectors().shape[1]),
        }

    @classmethod
    def runner(cls, model: Any) -> Runner:
        return VectorLookup(from_model(model))

    @classmethod
    def export_refusal(cls, model: Any) -> str | None:
        return (
            f"{model.kind} models are word vectors, a table rather than a graph, and are not exported; "
            "python -m dlforge.embeddings export vectors=<checkpoint> writes them in GloVe's text format"
        )

    # --- the panel's model ----------------------------------------------------------------------
    @classmethod
    def open_model(cls, path: str, cache_dir: str | None = None) -> ServedModel:
        """Vectors from a word2vec checkpoint or a GloVe-format text file."""
        return cls.of_vectors(load_vectors(path, cache_dir))

    @classmethod
    def of_vectors(cls, vectors: WordVectors) -> "WordVectorsModel":
        """Served ``vectors`` (loaded by :func:`dlforge.word_vectors.load_vectors`)."""
        card = {"kind": "word_vectors", "task": cls.task, "words": len(vectors), "dim": vectors.dim}
        backend = "pytorch" if Path(vectors.source).suffix == ".ckpt" else "text"
        return cls(card, VectorLookup(vectors), vectors.source, backend)

    # --- a loaded model -------------------------------------------------------------------------
    @property
    def vectors(self) -> WordVectors:
        assert isinstance(self.run, VectorLookup)
        return self.run.vectors

    def panel_info(self) -> dict[str, Any]:
        return {"words": self.card["words"], "dim": self.card["dim"]}

    @classmethod
    def add_routes(cls, app: Any, context: AppContext) -> None:
        from pydantic import BaseModel, Field

        class Explore(BaseModel):
            query: str = Field(max_length=500)
            k: int = Field(10, ge=1, le=100)

        def served() -> "WordVectorsModel | None":
            model = context.models.get(PANEL)
            assert model is None or isinstance(model, WordVectorsModel)
            return model

        @app.get("/api/embeddings")
        def embeddings_panel() -> dict[str, Any] | None:
            model = served()
            if model is None:
                return None
            return {"source": Path(model.source).name, "words": len(model.vectors), "dim": model.vectors.dim}

        @app.post("/api/embeddings")
        def explore(body: Explore) -> dict[str, Any]:
            start = time.perf_counter()
            model = served()
            if model is None:
                raise BadRequest(
                    "the embeddings panel has no vectors: start the app with vectors=<file>", 404
                )
            if not body.query.strip():
                raise BadRequest("type a word, or an analogy such as king - man + woman")
            try:
                answer = model.vectors.explore(body.query, body.k)
            except DlforgeError as err:
                raise BadRequest(str(err)) from None
            return {**answer, "ms": since(start)}
