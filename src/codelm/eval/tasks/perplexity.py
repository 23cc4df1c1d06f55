"""Held-out perplexity against a unigram baseline: has the model learnt more than token frequencies?

Problems are documents: a JSONL of ``{"text": ...}`` records (optional ``"id"`` or ``"task_id"``;
default: the line number), given with ``--data perplexity=FILE`` or as ``heldout.jsonl`` in
``--data-dir`` (what a recipe's split step writes). There is no public default: the documents must be
text the model did not train on, so only the user can name them.

Nothing is generated or executed. The backend scores each document (``Backend.score``: summed
negative log-likelihood of every token after the first, long documents in context-window-sized
windows), journaled per document, and perplexity is ``exp(sum NLL / predicted tokens)`` over all
documents. The baseline scores the same predicted tokens with add-one smoothed unigram
log-probabilities over the model's tokenizer vocabulary (``len(tokenizer)``), fitted on
``unigram_corpus``: a packed shard directory (``codelm data pack``; its tokenizer must be the
model's) or a JSONL of texts (tokenized by the model, the tokens after the first of each); by
default on the evaluated documents themselves, which flatters the baseline (the summary's
``unigram_fitted_on`` says which). The tiny recipe reports these numbers, with the baseline fitted
on its training shards; documents count whole (its former code cut them at 512 tokens).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codelm.errors import CodelmError
from codelm.jsonl import read_records

from ..generation import LOGLIKELIHOOD, Backend
from .base import Task

FITTED_ON_DOCUMENTS = "the evaluated documents"
_CHUNK = 1 << 22  # tokens per bincount when counting a corpus


@dataclass(frozen=True)
class Document:
    task_id: str
    text: str


def unigram_log_probs(token_ids: Iterable[np.ndarray], vocab_size: int) -> np.ndarray:
    """Add-one smoothed unigram log-probabilities (ids beyond the vocabulary are not counted)."""
    counts = np.ones(vocab_size, dtype=np.float64)
    pending: list[np.ndarray] = []
    size = 0
    for ids in token_ids:
        pending.append(np.asarray(ids, dtype=np.int64))
        size += len(pending[-1])
        if size >= _CHUNK:
            counts += np.bincount(np.concatenate(pending), minlength=vocab_size)[:vocab_size]
            pending, size = [], 0
    if pending:
        counts += np.bincount(np.concatenate(pending), minlength=vocab_size)[:vocab_size]
    return np.log(counts / counts.sum())


def _corpus_texts(path: Path) -> list[str]:
    texts = []
    for number, record in enumerate(read_records(path), start=1):
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise CodelmError(f"{path}: record {number} needs a string field text")
        texts.append(record["text"])
    return texts


class PerplexityTask(Task):
    name = "perplexity"
    title = "Held-out perplexity"
    file_names = ("heldout.jsonl",)
    kind = LOGLIKELIHOOD
    local = True

    def parse(self, records: list[dict], origin: str) -> list[Document]:
        documents = []
        for number, record in enumerate(records, start=1):
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise ValueError(f"record {number} needs a string field text")
            documents.append(Document(str(record.get("task_id", record.get("id", number))), record["text"]))
        duplicates = [i for i, count in Counter(d.task_id for d in documents).items() if count > 1]
        if duplicates:
            raise ValueError(f"document ids repeat, e.g. {duplicates[:3]}")
        return documents

    def scores(self, documents: list[Document], backend: Backend) -> list[tuple[float, int]]:
        """(summed NLL, predicted tokens) per document."""
        return backend.score([d.text for d in documents])

    def check_corpus(self, corpus: Path | None, backend: Backend) -> None:
        """Refuse a unigram corpus that cannot be used, before any work starts."""
        if corpus is None:
            return
        if not corpus.exists():
            raise CodelmError(f"{self.name}: unigram corpus {corpus} does not exist")
        if corpus.is_dir():
            self._shards(corpus, backend.tokenizer)

    def _shards(self, directory: Path, tokenizer: Any):
        from codelm.train.shards import ShardReader, read_index

        theirs = (read_index(directory).get("tokenizer") or {}).get("vocab_size")
        if theirs != len(tokenizer):
            raise CodelmError(
                f"{self.name}: {directory} was packed with a vocabulary of {theirs} tokens, the model's "
                f"tokenizer has {len(tokenizer)}: fit the unigram baseline on shards of this model"
            )
        reader = ShardReader([directory])
        reader.check_tokenizer(tokenizer)
        return reader

    def unigram(self, corpus: Path | None, documents: list[np.ndarray], backend: Backend) -> np.ndarray:
        """The baseline's log-probabilities, fitted on ``corpus`` (default: ``documents``' tokens)."""
        vocab = len(backend.tokenizer)
        if corpus is None:
            return unigram_log_probs(documents, vocab)
        if corpus.is_dir():
            reader = self._shards(corpus, backend.tokenizer)
            return unigram_log_probs((reader.document(i) for i in range(len(reader))), vocab)
        encoded = backend.encode(_corpus_texts(corpus))
        return unigram_log_probs((np.asarray(ids[1:]) for ids in encoded), vocab)

    def summarize(
        self,
        documents: list[Document],
        scores: Mapping[str, tuple[float, int]],
        backend: Backend,
        corpus: Path | None,
    ) -> dict[str, Any]:
        """The summary entry: perplexity, the baseline's, tokens, documents and the baseline's data."""
        predicted = [
            np.asarray(ids[1:], dtype=np.int64) for ids in backend.encode([d.text for d in documents])
        ]
        nll = sum(scores[d.task_id][0] for d in documents)
        tokens = sum(scores[d.task_id][1] for d in documents)
        if tokens == 0:
            raise CodelmError(f"{self.name}: no document is two or more tokens long: nothing to score")
        logp = self.unigram(corpus, predicted, backend)
        base = 0.0
        for ids in predicted:
            base -= float(logp[np.minimum(ids, len(logp) - 1)].sum())
        # per byte, the figure that does not depend on the tokenizer: the ratio to the unigram baseline
        # falls as the vocabulary shrinks (a unigram over 512 tokens knows less than one over 4096),
        # so models with different tokenizers compare by bits per byte (the documents' UTF-8 bytes;
        # the first token, never predicted, is counted too: a slight underestimate)
        size = sum(len(d.text.encode("utf-8", "surrogatepass")) for d in documents)
        return {
            "perplexity": math.exp(nll / tokens),
            "unigram_perplexity": math.exp(base / tokens),
            "bits_per_byte": nll / math.log(2) / size if size else None,
            "unigram_bits_per_byte": base / math.log(2) / size if size else None,
            "tokens": tokens,
            "documents": len(documents),
            "unigram_fitted_on": str(corpus) if corpus is not None else FITTED_ON_DOCUMENTS,
        }


TASK = PerplexityTask()
