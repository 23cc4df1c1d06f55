"""Held-out preference pairs: does the model prefer the chosen reply, and by how much?

Problems are DPO data (``codelm train``'s format, e.g. configs/train/data/dpo-sample.jsonl): JSONL
records ``{prompt, chosen, rejected}``, each a string or chat messages (``"chat": false``: plain
texts, as in training), with an optional ``task_id`` (or ``id``; default: the line number), given
with ``--data preference=FILE`` or as ``preference.jsonl`` in ``--data-dir``. There is no public
default: the pairs must be held out.

Nothing is generated or executed. The backend scores each reply after its prompt exactly as the DPO
stage renders and scores it in training (``Backend.score_replies``: the chat template with the loss
mask on the reply, summed log-probabilities), journaled per reply (``ID/chosen``, ``ID/rejected``
in ``scores.jsonl``), so ``--resume`` rescores nothing. The summary:

* ``accuracy``: the share of pairs with ``logp(chosen) > logp(rejected)`` (a tie is not preferred);
* ``margin``: the mean of ``logp(chosen) - logp(rejected)``, in nats;
* ``pairs``, and the mean ``logp_chosen`` and ``logp_rejected``;
* with ``EvalOptions.reference_model`` (DPO's reference, usually the checkpoint DPO started from,
  scored the same way on the same device): ``reward_margin``, the mean DPO implicit reward margin
  ``beta * ((pi_c - ref_c) - (pi_r - ref_r))`` (Rafailov et al. 2023, eq. 7, ``beta`` =
  ``dpo_beta``, default 0.1 as in configs/train/dpo.yaml), ``reward_accuracy`` (share of pairs
  with a positive one, DPO's training metric), ``beta`` and ``reference_model``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from ...errors import CodelmError
from ...models.formats import renders_chat
from ..generation import LOGLIKELIHOOD, Backend
from ..store import reference_journal
from .base import Task

REPLIES = ("chosen", "rejected")


@dataclass(frozen=True)
class Pair:
    task_id: str
    prompt: Any  # a string or chat messages, as in the DPO data
    chosen: Any
    rejected: Any
    chat: bool = True  # False: plain texts, rendered without the chat format (as DPO renders them)


def _text_or_messages(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, list) and bool(value) and all(isinstance(m, dict) for m in value)
    )


class PreferenceTask(Task):
    name = "preference"
    title = "Held-out preference pairs"
    file_names = ("preference.jsonl",)
    kind = LOGLIKELIHOOD
    local = True
    uses_reference = True

    def parse(self, records: list[dict], origin: str) -> list[Pair]:
        pairs = []
        for number, record in enumerate(records, start=1):
            if not isinstance(record, dict) or not all(
                _text_or_messages(record.get(k)) for k in ("prompt", *REPLIES)
            ):
                raise ValueError(f"record {number} needs prompt, chosen and rejected (strings or messages)")
            task_id = str(record.get("task_id", record.get("id", number)))
            try:
                chat = renders_chat(record)
            except CodelmError as exc:
                raise ValueError(f"record {number}: {exc}") from exc
            pairs.append(Pair(task_id, record["prompt"], record["chosen"], record["rejected"], chat))
        duplicates = [i for i, count in Counter(p.task_id for p in pairs).items() if count > 1]
        if duplicates:
            raise ValueError(f"pair ids repeat, e.g. {duplicates[:3]}")
        return pairs

    def check_corpus(self, corpus: Any, backend: Backend) -> None:
        """Nothing to check: the unigram corpus is perplexity's."""

    def score_keys(self, problem: Pair) -> tuple[str, ...]:
        return tuple(f"{problem.task_id}/{reply}" for reply in REPLIES)

    def scores(self, pairs: list[Pair], backend: Backend) -> list[tuple[float, int]]:
        """(negative log-probability, tokens) of each pair's chosen, then rejected, reply."""
        replies = [(p.prompt, getattr(p, reply), p.chat) for p in pairs for reply in REPLIES]
        return [(-logp, tokens) for logp, tokens in backend.score_replies(replies)]

    def score_summary(self, pairs: list[Pair], store: Any, backend: Backend, options: Any) -> dict[str, Any]:
        policy = self._logps(pairs, store.scores, self.name)
        chosen = [c for c, _ in policy]
        rejected = [r for _, r in policy]
        margins = [c - r for c, r in policy]
        entry: dict[str, Any] = {
            "accuracy": sum(m > 0 for m in margins) / len(pairs),
            "margin": sum(margins) / len(pairs),
            "pairs": len(pairs),
            "logp_chosen": sum(chosen) / len(pairs),
            "logp_rejected": sum(rejected) / len(pairs),
        }
        if options.reference_model is not None:
            journal = reference_journal(self.name, options.reference_model)
            reference = self._logps(pairs, store.scores, journal)
            rewards = [
                options.dpo_beta * ((pc - rc) - (pr - rr))
                for (pc, pr), (rc, rr) in zip(policy, reference, strict=True)
            ]
            entry |= {
                "reward_margin": sum(rewards) / len(pairs),
                "reward_accuracy": sum(r > 0 for r in rewards) / len(pairs),
                "beta": options.dpo_beta,
                "reference_model": str(options.reference_model),
            }
        return entry

    def _logps(self, pairs: list[Pair], scores: Any, journal: str) -> list[tuple[float, float]]:
        """(logp chosen, logp rejected) per pair from the journal ``journal``."""
        return [
            (-scores[journal, f"{p.task_id}/chosen"][0], -scores[journal, f"{p.task_id}/rejected"][0])
            for p in pairs
        ]


TASK = PreferenceTask()
