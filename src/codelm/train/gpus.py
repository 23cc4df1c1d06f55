"""What codelm knows about each GPU: peak TFLOP/s per precision and memory, in one light table.

The peaks serve MFU and the dry-run plan, the memory says when a plan does not fit. No torch is
imported, so a recipe can check its `hardware.gpu` when it loads.

Sources: NVIDIA datasheets (H100 SXM5, H200 SXM, A100 SXM4 80 GB). fp32 training on these GPUs runs
matmuls in TF32 when allowed; the fp32 figure is TF32 dense.
"""

from __future__ import annotations

PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "h200": {"bf16": 989.4, "fp32": 494.7},
    "h100": {"bf16": 989.4, "fp32": 494.7},
    "a100": {"bf16": 312.0, "fp32": 156.0},
}
MEMORY_GIB: dict[str, float] = {"h200": 141.0, "h100": 80.0, "a100": 80.0}
