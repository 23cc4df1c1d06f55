"""SFT and DPO data: chat-formatted examples, loss on the assistant's tokens only.

A conversation is rendered with the checkpoint's own chat template when it has one (as the engine
does, so training and serving format alike), else the family's. Which tokens are the assistant's is
found by rendering the conversation up to each assistant turn with and without the generation prompt:
the characters in between are the reply, including the turn's end marker (`<|im_end|>`,
`<end_of_turn>`, Seed-Coder's EOS), which is what teaches the model to stop. Tokens are mapped to
characters through the tokenizer's offsets.

Input files are JSONL. SFT: `{"messages": [{"role": ..., "content": ...}, ...]}`, or for base formats
without chat (CodeGen1) `{"prompt": ..., "completion": ...}` (loss on the completion and EOS).
DPO: `{"prompt": str | messages, "chosen": str | messages, "rejected": str | messages}`, plus
`"chat": false` for a pair of plain texts (a base model's completion or infill, rendered as is, e.g.
the recipes' self-play infilling pairs) where the model has a chat format.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from codelm.errors import CodelmError
from codelm.jsonl import read_records
from codelm.models.formats import render_chat_template, renders_chat
from codelm.models.registry import Family
from codelm.train.packing import IGNORE, Row, make_row
from codelm.train.sources import epoch_order


def read_data_file(path: str | Path) -> list[Any]:
    """A stage's data file, as `codelm.jsonl` reads it; missing or empty is an error (a stage with
    nothing to train on)."""
    if not Path(path).is_file():
        raise CodelmError(f"data file {path} does not exist")
    records = read_records(path)
    if not records:
        raise CodelmError(f"{path} holds no records")
    return records


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class ChatEncoder:
    """Token ids and labels of conversations, with loss on assistant turns from `train_from` on."""

    def __init__(self, tokenizer: Any, family: Family) -> None:
        self.tok, self.family = tokenizer, family
        self.template = getattr(tokenizer, "chat_template", None) or (
            family.chat.template if family.chat else None
        )
        spec = family.tokenizer
        self.bos_id = tokenizer.convert_tokens_to_ids(spec.bos) if spec.add_bos else None
        self.eos_id = tokenizer.convert_tokens_to_ids(spec.eos)

    def _render(self, messages: list[dict[str, Any]], gen: bool) -> str:
        return render_chat_template(
            self.template,
            messages,
            bos_token=self.tok.bos_token or "",
            eos_token=self.tok.eos_token or "",
            add_generation_prompt=gen,
        )

    def _with_spans(self, text: str, spans: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
        enc = self.tok(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        ids = np.asarray(enc["input_ids"], dtype=np.int64)
        starts = np.asarray([s for s, _ in enc["offset_mapping"]], dtype=np.int64)
        target = np.zeros(len(ids), dtype=bool)
        for a, b in spans:  # a token belongs to the reply when it starts inside it
            target |= (starts >= a) & (starts < b)
        labels = np.where(target, ids, IGNORE)
        if self.bos_id is not None and not text.startswith(self.family.tokenizer.bos):
            ids, labels = np.concatenate([[self.bos_id], ids]), np.concatenate([[IGNORE], labels])
        return ids, labels

    def conversation(
        self, messages: list[dict[str, Any]], train_from: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.template is None:
            raise CodelmError(
                f"model family {self.family.name} has no chat template: use prompt/completion records"
            )
        full = self._render(messages, gen=False)
        spans = []
        for i, m in enumerate(messages):
            if m.get("role") != "assistant" or i < train_from:
                continue
            before = self._render(messages[:i], gen=True)
            upto = self._render(messages[: i + 1], gen=False)
            if not (upto.startswith(before) and full.startswith(upto)):
                raise CodelmError("the chat template does not render conversations prefix by prefix")
            spans.append((len(before), len(upto)))
        if not spans:
            raise CodelmError("a training conversation needs an assistant message to learn from")
        return self._with_spans(full, spans)

    def reply(self, prompt: Any, reply: Any, chat: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """One DPO side: `reply` (a string or assistant messages) after `prompt` (a string or
        messages), labels on the reply only; plain text when the model has no chat format or `chat`
        is False. The evaluation's `preference` task scores replies through this too, so both render
        alike."""
        if self.template is None or not chat:
            if not isinstance(prompt, str) or not isinstance(reply, str):
                raise CodelmError("without a chat template prompt and replies must be strings")
            return self.completion(prompt, reply)
        messages = _messages(prompt, "user")
        return self.conversation(messages + _messages(reply, "assistant"), len(messages))

    def completion(self, prompt: str, completion: str) -> tuple[np.ndarray, np.ndarray]:
        """Plain text (no chat format): loss on the completion and the EOS after it. The prompt and
        the completion are tokenized apart, as generation sees them (the prompt alone, then new
        tokens): together, a token may straddle the seam ("\n" + "    " is one token in code
        tokenizers), and the completion's first token would be one the model never starts from."""
        prompt_ids, _ = self._with_spans(prompt, [])
        reply = self.tok(completion, add_special_tokens=False, verbose=False)["input_ids"]
        ids = np.concatenate([prompt_ids, np.asarray(reply, dtype=np.int64), [self.eos_id]])
        labels = np.concatenate([np.full(len(prompt_ids), IGNORE), ids[len(prompt_ids) :]])
        return ids, labels


def _messages(value: Any, role: str) -> list[dict[str, Any]]:
    return [{"role": role, "content": value}] if isinstance(value, str) else list(value)


class _ListSource:
    """Shared epoch/position bookkeeping over a fixed list of encoded examples."""

    rows_per_unit = 1

    def __init__(self, n: int, seed: int, shuffle: bool) -> None:
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.epoch, self.pos = 0, 0
        self._order = (0, epoch_order(n, seed, 0, shuffle))

    def _peek(self) -> int:
        if self._order[0] != self.epoch:
            self._order = (self.epoch, epoch_order(self.n, self.seed, self.epoch, self.shuffle))
        return int(self._order[1][self.pos])

    def _advance(self) -> None:
        self.pos += 1
        if self.pos == self.n:
            self.epoch, self.pos = self.epoch + 1, 0

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])


class SFTSource(_ListSource):
    """Conversations packed whole into rows of at most `seq_len` tokens (one per row unpacked)."""

    def __init__(
        self, path: str, encoder: ChatEncoder, seq_len: int, *, packing: bool, seed: int, shuffle: bool = True
    ) -> None:
        self.path, self.seq_len, self.packing = path, seq_len, packing
        self.examples, self.truncated = [], 0
        for rec in read_data_file(path):
            if "messages" in rec:
                ids, labels = encoder.conversation(list(rec["messages"]))
            elif "prompt" in rec and "completion" in rec:
                ids, labels = encoder.completion(rec["prompt"], rec["completion"])
            else:
                raise CodelmError(f"{path}: an SFT record needs 'messages' or 'prompt' and 'completion'")
            if len(ids) > seq_len:
                ids, labels, self.truncated = ids[:seq_len], labels[:seq_len], self.truncated + 1
            if (labels[1:] != IGNORE).any():
                self.examples.append((ids, labels))
        if not self.examples:
            raise CodelmError(f"{path}: no example keeps a target token within seq_len {seq_len}")
        super().__init__(len(self.examples), seed, shuffle)

    def next_units(self, n: int) -> list[Row]:
        rows = []
        for _ in range(n):
            parts = [self.examples[self._peek()]]
            self._advance()
            while (
                self.packing
                and sum(len(p) for p, _ in parts) + len(self.examples[self._peek()][0]) <= self.seq_len
            ):
                parts.append(self.examples[self._peek()])
                self._advance()
            rows.append(make_row(parts))
        return rows

    def lineage(self) -> dict[str, Any]:
        return {
            "kind": "sft",
            "path": str(self.path),
            "sha256": file_sha256(self.path),
            "examples": len(self.examples),
            "truncated": self.truncated,
            "position": self.state_dict(),
        }


class DPOSource(_ListSource):
    """Preference pairs as two rows each: prompt + chosen, prompt + rejected (loss mask on replies)."""

    rows_per_unit = 2

    def __init__(
        self, path: str, encoder: ChatEncoder, seq_len: int, *, seed: int, shuffle: bool = True
    ) -> None:
        self.path, self.pairs, self.truncated = path, [], 0
        for rec in read_data_file(path):
            if not all(k in rec for k in ("prompt", "chosen", "rejected")):
                raise CodelmError(f"{path}: a DPO record needs 'prompt', 'chosen' and 'rejected'")
            pair = []
            for key in ("chosen", "rejected"):
                try:
                    ids, labels = encoder.reply(rec["prompt"], rec[key], renders_chat(rec))
                except CodelmError as exc:
                    raise CodelmError(f"{path}: {exc}") from exc
                if len(ids) > seq_len:
                    ids, labels, self.truncated = ids[:seq_len], labels[:seq_len], self.truncated + 1
                pair.append(make_row([(ids, labels)]))
            self.pairs.append(pair)
        self.refs: np.ndarray | None = None  # [n, 2] precomputed reference log-probs, when used
        super().__init__(len(self.pairs), seed, shuffle)

    def next_units(self, n: int) -> list[Row]:
        rows = []
        for _ in range(n):
            i = self._peek()
            self._advance()
            for j, row in enumerate(self.pairs[i]):
                ref = None if self.refs is None else float(self.refs[i, j])
                rows.append(Row(row.ids, row.labels, row.segments, ref))
        return rows

    def lineage(self) -> dict[str, Any]:
        return {
            "kind": "dpo",
            "path": str(self.path),
            "sha256": file_sha256(self.path),
            "pairs": len(self.pairs),
            "truncated": self.truncated,
            "position": self.state_dict(),
        }
