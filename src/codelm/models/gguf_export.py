"""Export a Llama-architecture checkpoint to GGUF, the file llama.cpp runs (f32, f16 or q8_0).

    codelm export gguf runs/tiny/sft --out tiny.gguf --type f16

Written with the `gguf` package (llama.cpp's own writer library, the one its convert_hf_to_gguf.py
uses): llama.cpp's tensor names come from `gguf.get_tensor_name_map`, and q/k projections are
permuted from Hugging Face's rotate-half rotary layout to llama.cpp's interleaved one, exactly as
convert_hf_to_gguf.py's `LlamaModel.permute` does. Only Llama-architecture families are exported
(codelm's own `llama` models and Seed-Coder); others are refused with the reason.

Besides llama.cpp's tokenizer metadata (byte-level BPE vocabulary and merges, special tokens typed as
control tokens, FIM and end-of-turn ids, chat template) the file carries the checkpoint's own
tokenizer, config and family under `codelm.*` keys: codelm's llama.cpp backend
(`codelm.engine.llamacpp`) tokenizes, renders FIM/chat and applies stop rules itself, with exactly
the tokenizer the model was trained with, and asks llama.cpp only for logits.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from codelm.errors import CheckpointError, CodelmError

TYPES = ("f32", "f16", "q8_0")
# families whose checkpoints are LlamaForCausalLM (model_type llama)
EXPORTABLE = ("llama", "seedcoder")
META = "codelm."  # prefix of the keys codelm's backend reads back


def _gguf():
    try:
        import gguf
    except ImportError:
        raise CodelmError("exporting GGUF needs the gguf package: pip install 'codelm[llamacpp]'") from None
    return gguf


def permute(weight: np.ndarray, n_head: int) -> np.ndarray:
    """HF rotate-half q/k rows -> llama.cpp's interleaved pairs (convert_hf_to_gguf.py's permute)."""
    return (
        weight.reshape(n_head, 2, weight.shape[0] // n_head // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def _weights(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of the checkpoint's safetensors files, as float32 numpy arrays."""
    from safetensors import safe_open

    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{path} has no model weights (*.safetensors)")
    out = {}
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            for name in f.keys():
                out[name] = f.get_tensor(name).float().numpy()
    return out


def _rope_theta(config: dict) -> float:
    params = config.get("rope_parameters") or {}
    scaling = config.get("rope_scaling") or {}
    kind = params.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
    if kind != "default":
        raise CodelmError(f"rope scaling {kind!r} is not exported yet (only plain RoPE)")
    return float(params.get("rope_theta") or config.get("rope_theta") or 10000.0)


def _add_hparams(writer, config: dict) -> None:
    n_head = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // n_head
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(config.get("num_key_value_heads") or n_head)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(_rope_theta(config))
    writer.add_layer_norm_rms_eps(config.get("rms_norm_eps", 1e-6))
    writer.add_vocab_size(config["vocab_size"])
    if head_dim != config["hidden_size"] // n_head:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)


def _add_tokenizer(writer, path: Path, vocab_size: int) -> None:
    """llama.cpp's vocabulary: byte-level BPE tokens, special tokens as control tokens, merges."""
    gguf = _gguf()
    tj = json.loads((path / "tokenizer.json").read_text(encoding="utf-8"))
    model = tj.get("model") or {}
    if model.get("type") != "BPE" or (tj.get("decoder") or {}).get("type") != "ByteLevel":
        raise CodelmError(f"{path}: only byte-level BPE tokenizers are exported (this one is not)")
    by_id = {i: t for t, i in model["vocab"].items()}
    kinds = {}
    for added in tj.get("added_tokens", []):
        by_id[added["id"]] = added["content"]
        kinds[added["id"]] = gguf.TokenType.CONTROL if added["special"] else gguf.TokenType.USER_DEFINED
    if max(by_id) >= vocab_size:
        raise CodelmError(f"{path}: the tokenizer has ids past the model's vocab_size {vocab_size}")
    tokens, types = [], []
    for i in range(vocab_size):  # ids the model has but the tokenizer never produces: unused
        tokens.append(by_id.get(i, f"[PAD{i}]"))
        types.append(kinds.get(i, gguf.TokenType.NORMAL if i in by_id else gguf.TokenType.UNUSED))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(path, load_merges=True, n_vocab=vocab_size)
    special.add_to_gguf(writer, quiet=True)  # merges, bos/eos/pad ids, add_bos, chat template


def _add_family_tokens(writer, family, path: Path) -> None:
    """FIM and end-of-turn ids, so that llama.cpp itself (llama-server /infill) knows them too."""
    from transformers import AutoTokenizer

    keys = _gguf().Keys.Tokenizer
    tok = AutoTokenizer.from_pretrained(str(path))
    vocab = tok.get_vocab()
    if family.fim is not None:
        fim = family.fim
        for key, token in (
            (keys.FIM_PRE_ID, fim.prefix),
            (keys.FIM_SUF_ID, fim.suffix),
            (keys.FIM_MID_ID, fim.middle),
        ):
            if token in vocab:
                writer.add_uint32(key, vocab[token])
    if family.file_separator and family.file_separator in vocab:
        writer.add_uint32(keys.FIM_SEP_ID, vocab[family.file_separator])
    if family.chat is not None:
        ends = [t for t in family.chat.stop_tokens if t in vocab and t != family.tokenizer.eos]
        if ends:
            writer.add_eot_token_id(vocab[ends[0]])


def _tensor(gguf, name: str, data: np.ndarray, kind: str):
    """(data, raw_dtype): norms and biases stay f32 (as llama.cpp's converter keeps them)."""
    if data.ndim < 2 or kind == "f32":
        return data.astype(np.float32), None
    if kind == "q8_0" and data.shape[-1] % 32 == 0:
        q = gguf.GGMLQuantizationType.Q8_0
        return gguf.quants.quantize(data.astype(np.float32), q), q
    return data.astype(np.float16), None  # q8_0 needs rows in blocks of 32; f16 otherwise


def export_gguf(
    checkpoint: str | Path, out: str | Path, kind: str = "f16", family: str | None = None
) -> Path:
    """Write `checkpoint` (a local HF directory) as GGUF to `out`; returns `out`."""
    from codelm.engine.loader import locate_checkpoint
    from codelm.models.detect import detect_family
    from codelm.models.registry import get_family

    if kind not in TYPES:
        raise CodelmError(f"unknown GGUF type {kind!r} (choices: {', '.join(TYPES)})")
    gguf = _gguf()
    path = locate_checkpoint(str(checkpoint))
    fam = get_family(family) if family else detect_family(path)
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    if fam.name not in EXPORTABLE or config.get("model_type") != "llama":
        raise CodelmError(
            f"GGUF export covers Llama-architecture families ({', '.join(EXPORTABLE)}); "
            f"{path} is {fam.name} ({config.get('model_type')})"
        )
    if not (path / "tokenizer.json").is_file():
        raise CheckpointError(f"{path} has no tokenizer.json")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    weights = _weights(path)
    n_blocks = config["num_hidden_layers"]
    n_head = config["num_attention_heads"]
    n_kv = config.get("num_key_value_heads") or n_head
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_blocks)

    tmp = out.with_name(out.name + ".part")  # a failed export leaves no half-written model behind
    writer = gguf.GGUFWriter(str(tmp), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    try:
        writer.add_name(path.name)
        writer.add_file_type(
            {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16}.get(
                kind, gguf.LlamaFileType.MOSTLY_Q8_0
            )
        )
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        _add_hparams(writer, config)
        _add_tokenizer(writer, path, config["vocab_size"])
        _add_family_tokens(writer, fam, path)
        writer.add_string(META + "family", fam.name)
        for key, file in (
            ("config", "config.json"),
            ("tokenizer_json", "tokenizer.json"),
            ("tokenizer_config", "tokenizer_config.json"),
            ("generation_config", "generation_config.json"),
        ):
            if (path / file).is_file():
                writer.add_string(META + key, (path / file).read_text(encoding="utf-8"))
        for name, data in weights.items():
            if name.endswith("rotary_emb.inv_freq"):
                continue
            if name == "lm_head.weight" and config.get("tie_word_embeddings"):
                continue  # llama.cpp reuses token_embd when output.weight is absent
            new = names.get_name(name, try_suffixes=(".weight", ".bias"))
            if new is None:
                raise CodelmError(f"{path}: no llama.cpp name for tensor {name!r}")
            if ".self_attn.q_proj." in name:
                data = permute(data, n_head)
            elif ".self_attn.k_proj." in name:
                data = permute(data, n_kv)
            data, raw = _tensor(gguf, new, data, kind)
            writer.add_tensor(new, data, raw_dtype=raw)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(out)
    return out
