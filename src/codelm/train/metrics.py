"""Training metrics: loss, learning rate, tokens/s and MFU, to JSONL, TensorBoard and a PNG plot.

MFU (model FLOPs utilisation, PaLM appendix B) = achieved model FLOPs / peak FLOPs of the devices.
Training costs 6N FLOPs per token for the weights (forward 2N, backward 4N) plus the attention scores,
12 * layers * (heads * head_dim) * seq_len per token (PaLM's 6N + 12LHQT). N counts every weight that
takes part in a matmul: all parameters but an untied input embedding, which is a lookup. Peaks are dense
(no sparsity) vendor figures; the CPU entry is a nominal per-core figure (AVX2/AVX-512 FMA at ~3 GHz),
so CPU MFU is only a rough sanity number. Set `run.peak_tflops` to override.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

# Dense peak TFLOP/s per device by precision (NVIDIA datasheets: H100 SXM5, H200 SXM, A100 SXM4).
# fp32 training on these GPUs runs matmuls in TF32 when allowed; the fp32 figure is TF32 dense.
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "h200": {"bf16": 989.4, "fp32": 494.7},
    "h100": {"bf16": 989.4, "fp32": 494.7},
    "a100": {"bf16": 312.0, "fp32": 156.0},
    "cpu": {"bf16": 0.1, "fp32": 0.1},  # per core, nominal
}


def device_peak_tflops(device: torch.device, precision: str) -> tuple[str, float]:
    """(device key, peak TFLOP/s of one device) for `precision` (bf16 or fp32)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device).lower()
        for key in ("h200", "h100", "a100"):
            if key in name:
                return key, PEAK_TFLOPS[key][precision]
        return name, float("nan")
    threads = torch.get_num_threads()
    return f"cpu x{threads}", PEAK_TFLOPS["cpu"][precision] * threads


def flop_parameters(model: torch.nn.Module) -> int:
    """Parameters that do matmul work: all, minus an untied input embedding."""
    total = sum(p.numel() for p in model.parameters())
    emb = model.get_input_embeddings().weight
    out = model.get_output_embeddings()
    tied = out is not None and out.weight is emb  # tied weights are one Parameter object
    return total if tied else total - emb.numel()


def flops_per_token(model: torch.nn.Module, seq_len: int) -> float:
    """6N + 12 * layers * attention width * seq_len (training, forward + backward)."""
    c = model.config
    layers = getattr(c, "num_hidden_layers", None) or c.n_layer
    heads = getattr(c, "num_attention_heads", None) or c.n_head
    hidden = getattr(c, "hidden_size", None) or c.n_embd
    head_dim = getattr(c, "head_dim", None) or hidden // heads
    return 6 * flop_parameters(model) + 12 * layers * heads * head_dim * seq_len


class MetricsWriter:
    """metrics.jsonl (+ TensorBoard) on the main process; a one-line rich progress display."""

    def __init__(self, out_dir: Path, *, max_steps: int, tensorboard: bool, enabled: bool) -> None:
        self.path = out_dir / "metrics.jsonl"
        self.enabled, self.max_steps = enabled, max_steps
        self.tb = None
        self.t0 = time.perf_counter()
        if not enabled:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        if tensorboard and importlib.util.find_spec("tensorboard") is not None:  # optional extra
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out_dir / "tensorboard"))
        self.live = sys.stderr.isatty() and not os.environ.get("CI")
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False, soft_wrap=True)

    def truncate_after(self, step: int) -> None:
        """On resume: drop records past the checkpoint's step (the killed run logged them)."""
        if not self.enabled or not self.path.is_file():
            return
        keep = [ln for ln in self.path.read_text().splitlines() if ln and json.loads(ln)["step"] <= step]
        self.path.write_text("".join(ln + "\n" for ln in keep))

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, int | float) and k != "step":
                    self.tb.add_scalar(f"train/{k}", v, record["step"])
        self.progress(record)

    def progress(self, r: dict[str, Any]) -> None:
        extra = "".join(
            f" {k.removeprefix('reward_')} {r[k]:.3f}" for k in ("reward_accuracy", "reward_margin") if k in r
        )
        mfu = f" mfu {r['mfu'] * 100:.1f}%" if r.get("mfu") == r.get("mfu") else ""
        line = (
            f"[bold]step {r['step']}/{self.max_steps}[/] loss [cyan]{r['loss']:.4f}[/] lr {r['lr']:.2e} "
            f"{r['tokens_per_s']:,.0f} tok/s{mfu} gnorm {r.get('grad_norm', float('nan')):.2f}{extra}"
        )
        self.console.print(line, end="\r" if self.live else "\n")

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]


def plot_metrics(metrics_file: str | Path, out_png: str | Path) -> Path | None:
    """loss, learning rate and tokens/s against step, as a PNG; None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(
            "codelm: matplotlib is not installed; no loss plot (pip install 'codelm[train]')", file=sys.stderr
        )
        return None
    rows = read_metrics(metrics_file)
    keys = [k for k in ("loss", "lr", "tokens_per_s", "reward_accuracy") if any(k in r for r in rows)]
    fig, axes = plt.subplots(len(keys), 1, figsize=(7, 2.2 * len(keys)), sharex=True)
    for ax, key in zip([axes] if len(keys) == 1 else axes, keys, strict=True):
        pts = [(r["step"], r[key]) for r in rows if key in r]
        ax.plot([p[0] for p in pts], [p[1] for p in pts])
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    fig.supxlabel("step")
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return Path(out_png)
