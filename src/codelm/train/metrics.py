"""Training metrics: loss, held-out loss, learning rate, tokens/s and MFU, to JSONL, TensorBoard and a PNG.

MFU (model FLOPs utilisation, PaLM appendix B) = achieved model FLOPs / peak FLOPs of the devices.
Training costs 6N FLOPs per token for the weights (forward 2N, backward 4N) plus the attention scores,
12 * layers * (heads * head_dim) * seq_len per token (PaLM's 6N + 12LHQT). N counts every weight that
takes part in a matmul: all parameters but an untied input embedding, which is a lookup.

The peak comes from `run.peak_tflops` when set ("config"), else from the dense vendor figures of
`PEAK_TFLOPS` for known GPUs ("table"), else it is measured once per run ("measured"): the best of a
few large matmuls on the training threads, fp32 always and bf16 too under `run.precision: bf16`. A CPU
is always measured: its nominal FMA peak says little about what its BLAS delivers to these threads (on
the shared 2-core AMD EPYC of docs/training.md, 0.02-0.14 fp32 and 0.05-0.18 bf16 TFLOP/s, with the
load of other users, against a nominal ~0.17 fp32), so MFU is against what the machine can do now.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from codelm.train.gpus import PEAK_TFLOPS

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass
class Peak:
    """The peak MFU is computed against, and where it came from."""

    device: str  # "cpu x2", "h100", or the CUDA device name
    tflops: float  # dense peak TFLOP/s of one device (measured: the best of fp32 and the run's precision)
    source: str  # config | table | measured
    measured: dict[str, float] = field(default_factory=dict)  # precision -> measured TFLOP/s

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.device, "peak_tflops": self.tflops, "peak_source": self.source}
        if self.measured:
            out["peak_tflops_measured"] = self.measured
        return out


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device).lower()
    return f"{device.type} x{torch.get_num_threads()}"


def table_peak_tflops(device: torch.device, precision: str) -> float | None:
    """The datasheet peak of a known GPU at `precision` (bf16 or fp32), else None."""
    name = device_name(device)
    key = next((k for k in PEAK_TFLOPS if device.type == "cuda" and k in name), None)
    return PEAK_TFLOPS[key][precision] if key else None


def measure_matmul_tflops(
    device: torch.device, precision: str, *, n: int | None = None, repeats: int = 3
) -> float:
    """Best TFLOP/s of `repeats` n x n matmuls at `precision` on `device`, after one warm-up.

    n = 1024 on a CPU (~10-50 ms each on 2 cores; large enough for the BLAS to reach its plateau,
    measured: 1536 and 2048 were no faster), 8192 on a GPU. The operands come from a private
    generator, so the run's RNG state (and exact resume) is untouched.
    """
    n = n or (8192 if device.type == "cuda" else 1024)
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=gen).to(device=device, dtype=DTYPES[precision]) for _ in range(2))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    best = float("inf")
    for i in range(repeats + 1):
        sync()
        t0 = time.perf_counter()
        torch.mm(a, b)
        sync()
        if i:  # the first call pays for kernel selection and page faults
            best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e12


def resolve_peak(device: torch.device, precision: str, configured: float | None = None) -> Peak:
    """The run's peak: `run.peak_tflops`, else the GPU table, else measured on this machine (the best
    of fp32 and the run's precision: MFU is against what the hardware can do, whatever the run chose)."""
    name = device_name(device)
    if configured:
        return Peak(name, configured, "config")
    table = table_peak_tflops(device, precision)
    if table is not None:
        return Peak(name, table, "table")
    measured = {p: measure_matmul_tflops(device, p) for p in dict.fromkeys(("fp32", precision))}
    # the best measured: without AVX512-BF16/AMX a CPU emulates bf16 matmuls (~150x below its fp32
    # rate on an AVX2-only EPYC), and a run's MFU against that would read 300%
    return Peak(name, max(measured.values()), "measured", measured)


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
                    tag = f"heldout/{k[8:]}" if k.startswith("heldout_") else f"train/{k}"
                    self.tb.add_scalar(tag, v, record["step"])
        self.progress(record)

    def progress(self, r: dict[str, Any]) -> None:
        held = f" held-out [magenta]{r['heldout_loss']:.4f}[/]" if "heldout_loss" in r else ""
        if "loss" not in r:  # the held-out loss before the first step
            self.console.print(f"[bold]step {r['step']}/{self.max_steps}[/]{held}")
            return
        extra = "".join(
            f" {k.removeprefix('reward_')} {r[k]:.3f}" for k in ("reward_accuracy", "reward_margin") if k in r
        )
        mfu = f" mfu {r['mfu'] * 100:.1f}%" if r.get("mfu") == r.get("mfu") else ""
        line = (
            f"[bold]step {r['step']}/{self.max_steps}[/] loss [cyan]{r['loss']:.4f}[/]{held}"
            f" lr {r['lr']:.2e} "
            f"{r['tokens_per_s']:,.0f} tok/s{mfu} gnorm {r.get('grad_norm', float('nan')):.2f}{extra}"
        )
        self.console.print(line, end="\r" if self.live and not held else "\n")

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]


def plot_curves(rows: list[dict[str, Any]]) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """The plot's panels: {metric: {"train": points, "held-out": points}}, the held-out curve
    (`heldout_<metric>`, e.g. DPO's reward accuracy too) drawn beside the training one."""
    panels = {}
    for key in ("loss", "lr", "tokens_per_s", "reward_accuracy", "reward_mean", "pass_rate"):
        curves = {
            label: [(r["step"], r[k]) for r in rows if r.get(k) is not None]
            for label, k in (("train", key), ("held-out", f"heldout_{key}"))
        }
        if curves := {label: pts for label, pts in curves.items() if pts}:
            panels[key] = curves
    return panels


def plot_metrics(metrics_file: str | Path, out_png: str | Path) -> Path | None:
    """Loss (train and held-out), learning rate and tokens/s against step, as a PNG (None: no matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(
            "codelm: matplotlib is not installed; no loss plot (pip install 'codelm[train]')", file=sys.stderr
        )
        return None
    panels = plot_curves(read_metrics(metrics_file))
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 2.2 * len(panels)), sharex=True)
    for ax, (key, curves) in zip([axes] if len(panels) == 1 else axes, panels.items(), strict=True):
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        for label, pts in curves.items():
            marker = "o" if label == "held-out" else None
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, ms=3, label=label)
        if len(curves) > 1:
            ax.legend()
    fig.supxlabel("step")
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return Path(out_png)
