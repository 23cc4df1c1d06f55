"""GGUF export without llama.cpp: the file's tensors, types and metadata, and clear refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

gguf = pytest.importorskip(
    "gguf", reason="the gguf package is not installed (pip install 'codelm[llamacpp]')"
)

from codelm.errors import CodelmError  # noqa: E402
from codelm.models.gguf_export import export_gguf, permute  # noqa: E402


@pytest.fixture(scope="module")
def exported(tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("gguf")
    ckpt = tiny_checkpoint("llama")
    return ckpt, {k: export_gguf(ckpt, out / f"tiny-{k}.gguf", k) for k in ("f32", "f16", "q8_0")}


def _field(reader, key):
    f = reader.fields[key]
    return f.contents() if hasattr(f, "contents") else bytes(f.parts[f.data[0]]).decode()


def test_tensors_and_types(exported):
    ckpt, files = exported
    config = json.loads((ckpt / "config.json").read_text())
    want = {"F32": "F32", "F16": "F16", "Q8_0": "Q8_0"}
    for kind, path in files.items():
        reader = gguf.GGUFReader(str(path))
        types = {t.name: t.tensor_type.name for t in reader.tensors}
        assert len(types) == 2 + 9 * config["num_hidden_layers"] + 1  # embd, out norm, 9/block, output
        assert types["blk.0.attn_norm.weight"] == "F32"  # norms stay f32 at every type
        assert types["blk.1.ffn_down.weight"] == want[kind.upper()]
        assert _field(reader, "codelm.family") == "llama"
        assert _field(reader, "general.architecture") == "llama"


def test_vocabulary_marks_fim_and_special_tokens(exported, tiny_checkpoint):
    from transformers import AutoTokenizer

    ckpt, files = exported
    tok = AutoTokenizer.from_pretrained(str(ckpt))
    reader = gguf.GGUFReader(str(files["f16"]))
    fim = int(reader.fields["tokenizer.ggml.fim_pre_token_id"].parts[-1][0])
    assert fim == tok.convert_tokens_to_ids("<fim_prefix>")
    types = reader.fields["tokenizer.ggml.token_type"]
    assert int(types.parts[types.data[fim]][0]) == int(gguf.TokenType.CONTROL)
    assert json.loads(_field(reader, "codelm.tokenizer_json")) == json.loads(
        (ckpt / "tokenizer.json").read_text()
    )


def test_f32_weights_round_trip_through_the_permutation(exported):
    from safetensors.numpy import load_file

    ckpt, files = exported
    weights = load_file(str(next(ckpt.glob("*.safetensors"))))
    reader = gguf.GGUFReader(str(files["f32"]))
    tensors = {t.name: np.asarray(t.data) for t in reader.tensors}
    config = json.loads((ckpt / "config.json").read_text())
    q = weights["model.layers.0.self_attn.q_proj.weight"]
    assert np.array_equal(tensors["blk.0.attn_q.weight"], permute(q, config["num_attention_heads"]))
    assert not np.array_equal(tensors["blk.0.attn_q.weight"], q)  # the permutation is not a no-op
    assert np.array_equal(tensors["token_embd.weight"], weights["model.embed_tokens.weight"])


def test_other_families_and_types_are_refused(tiny_checkpoint, tmp_path):
    with pytest.raises(CodelmError, match="Llama-architecture"):
        export_gguf(tiny_checkpoint("codegen1"), tmp_path / "x.gguf", "f16")
    with pytest.raises(CodelmError, match="unknown GGUF type"):
        export_gguf(tiny_checkpoint("llama"), tmp_path / "x.gguf", "q4_k")
    assert not list(tmp_path.iterdir())  # nothing half-written is left behind


def test_cli_export(tiny_checkpoint, tmp_path, capsys):
    from codelm.cli import main

    out = tmp_path / "m.gguf"
    assert (
        main(["export", "gguf", str(tiny_checkpoint("seedcoder")), "--out", str(out), "--type", "q8_0"]) == 0
    )
    assert out.is_file() and capsys.readouterr().out.strip() == str(out)
    assert main(["export", "gguf", str(tmp_path / "missing"), "--out", str(out)]) == 1
    assert "does not exist" in capsys.readouterr().err
