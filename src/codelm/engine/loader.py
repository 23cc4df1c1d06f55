"""Loading a checkpoint for inference: device, dtype, threads, safetensors-only by default.

The default dtype ("auto") is bf16 on a GPU that has it, and on a CPU with native bf16 (AVX512-BF16,
AMX) for checkpoints large enough that decode is bound by reading weights; fp32 elsewhere. bf16 on
such a CPU also gets its linears prepacked for oneDNN, and any bf16 model on a CPU an fp32 KV cache;
an fp32 model of 16M+ parameters on a CPU gets linears that split each product over the threads
(codelm.engine.cpu).

Pickled weights (`pytorch_model.bin`) can execute code when unpickled, so they are refused unless the
user opts in with `allow_pickle=True` (`--allow-pickle`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from codelm.engine import llama_step
from codelm.engine.cpu import (
    AUTO_BF16_MIN_PARAMS,
    attend_over_fp32_cache,
    can_pack,
    can_split,
    fuse_projections,
    native_bf16,
    pack_linears,
    split_linears,
)
from codelm.errors import CheckpointError, CodelmError
from codelm.models.detect import detect_family
from codelm.models.registry import Family, get_family

_PICKLED = ("*.bin", "*.pt", "*.pth", "*.ckpt")


@dataclass
class Loaded:
    model: torch.nn.Module
    tokenizer: object
    family: Family
    path: Path


_DEVICES = "cpu, cuda, cuda:N or mps"


def resolve_device(device: str | None = None) -> torch.device:
    """The requested device, checked to exist here; else CUDA when present, else CPU.

    torch would answer a typo with a list of 20 backend names and a CPU-only build with an
    AssertionError deep inside `.to()`; users get one line that says what to do instead."""
    if not device:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise CodelmError(f"unknown device {device!r} (use {_DEVICES})") from None
    if dev.type == "cuda":
        if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
            raise CodelmError(
                f"--device {device}: this torch ({torch.__version__}) is built without CUDA; "
                "install a CUDA build of torch or use --device cpu"
            )
        count = torch.cuda.device_count()
        if count == 0:
            raise CodelmError(f"--device {device}: no CUDA GPU is visible; use --device cpu")
        if dev.index is not None and dev.index >= count:
            raise CodelmError(
                f"--device {device}: only {count} CUDA GPU(s) visible (cuda:0..cuda:{count - 1})"
            )
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise CodelmError(f"--device {device}: Apple MPS is not available here; use --device cpu")
    elif dev.type != "cpu":
        raise CodelmError(f"unsupported device {device!r} (use {_DEVICES})")
    return dev


_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def resolve_dtype(
    dtype: str | torch.dtype | None, device: torch.device, params: int | None = None
) -> torch.dtype:
    """The named dtype; for None or "auto": bf16 (fp16 without it) on a GPU, bf16 on a CPU with
    native bf16 when the model has at least `AUTO_BF16_MIN_PARAMS` parameters, else float32
    (a CPU without native bf16 runs bf16 matmuls slower than fp32)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype and dtype != "auto":
        try:
            return _DTYPES[dtype]
        except KeyError:
            raise CheckpointError(f"unknown dtype {dtype!r} (auto, {', '.join(_DTYPES)})") from None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and params is not None and params >= AUTO_BF16_MIN_PARAMS and native_bf16():
        return torch.bfloat16
    return torch.float32


def checkpoint_params(path: Path) -> int | None:
    """Parameter count from the safetensors headers (no weights read); None without safetensors."""
    from safetensors import safe_open

    files = sorted(path.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            for key in f.keys():
                shape = f.get_slice(key).get_shape()
                total += int(torch.Size(shape).numel())
    return total


def looks_like_hub_id(name: str) -> bool:
    """'org/name' with no local meaning: not a path that exists, not starting with . / ~."""
    return (
        name.count("/") == 1
        and not name.startswith((".", "/", "~"))
        and not os.path.exists(name)
        and all(part for part in name.split("/"))
    )


def locate_checkpoint(name: str, allow_pickle: bool = False) -> Path:
    """A local directory holding the checkpoint, downloading from the Hub for hub ids."""
    if looks_like_hub_id(name):
        from huggingface_hub import snapshot_download

        patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
        if allow_pickle:
            patterns += list(_PICKLED)
        try:
            return Path(snapshot_download(name, allow_patterns=patterns))
        except Exception as exc:  # hub errors are many classes; all mean "could not fetch"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"could not load {name!r} from the Hugging Face Hub: {first}") from exc
    path = Path(name).expanduser()
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {name}: the directory does not exist")
    if not path.is_dir() or not (path / "config.json").is_file():
        raise CheckpointError(f"{name} is not a checkpoint directory (no config.json)")
    return path


def _check_weights(path: Path, allow_pickle: bool) -> None:
    if any(path.glob("*.safetensors")):
        return
    pickled = [p.name for pat in _PICKLED for p in path.glob(pat)]
    if not pickled:
        raise CheckpointError(f"{path} has no model weights (*.safetensors)")
    if not allow_pickle:
        raise CheckpointError(
            f"{path} only has pickled weights ({', '.join(sorted(pickled))}), which can run arbitrary code "
            "when loaded; convert them to safetensors or pass --allow-pickle if you trust the source"
        )


def load_checkpoint(
    name: str,
    *,
    family: str | None = None,
    device: str | None = None,
    dtype: str | torch.dtype | None = None,
    allow_pickle: bool = False,
    threads: int | None = None,
    pack: bool = True,
) -> Loaded:
    """Model (eval mode), tokenizer and family of a local directory or hub id. `pack=False` keeps
    plain `nn.Linear`s where bf16 on a native-bf16 CPU would prepack them, or an fp32 model of 16M+
    parameters would split their products over the threads (codelm.engine.cpu)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    dev = resolve_device(device)  # before any download: a wrong device is the cheapest error
    if threads:
        torch.set_num_threads(threads)
    path = locate_checkpoint(name, allow_pickle)
    fam = get_family(family) if family else detect_family(path)
    _check_weights(path, allow_pickle)
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        params = checkpoint_params(path) if dtype in (None, "auto") and dev.type == "cpu" else None
        model = AutoModelForCausalLM.from_pretrained(
            str(path),
            dtype=resolve_dtype(dtype, dev, params),
            use_safetensors=None if allow_pickle else True,
        )
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"could not load the checkpoint at {path}: {exc}") from exc
    model.to(dev)
    model.eval()  # Seed-Coder's config ships dropout 0.1; never sample with it on
    if pack and can_pack(model):
        fuse_projections(model)
        pack_linears(model)
    elif pack and can_split(model):  # not fused: the stacked row-split products measured no faster
        split_linears(model)
    attend_over_fp32_cache(model)  # bf16 on a CPU: an fp32 KV cache, read in place (engine.cpu)
    if pack and dev.type == "cpu" and llama_step.supports(model):
        model.codelm_step = llama_step.LlamaStep(model)  # decode.forward's one-token step
    return Loaded(model=model, tokenizer=tokenizer, family=fam, path=path)
