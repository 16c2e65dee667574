"""Memory of an ERF at RepLKNet's 1024 px protocol on the CPU, with the automatic batch size.

For each model, in a fresh process (so that peak memory is the run's own): ``rfkit.erf`` of the final feature
map at 1024 × 1024 on ``--images`` sample photographs, random weights, ``batch_size`` left to rfkit (half of the
available memory by the graph's activation estimate: :func:`rfkit.pipeline.devices.auto_batch_size`). It prints
the batch chosen, the estimate per image, the peak resident memory of the process and the time. Run::

    python benchmarks/erf_memory.py [--models resnet50 convnext_tiny] [--images 2] [--size 1024]

The goal (issue 13): under 8 GB.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

import torch

CHILD = """
import json, resource, sys, time, warnings
import torch, rfkit
from rfkit.pipeline.devices import auto_batch_size, bytes_per_image
warnings.filterwarnings("ignore")
name, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t0 = time.perf_counter()
p = rfkit.prepare(name, weights="random", input_size=size)
bs = auto_batch_size(p.graph, torch.device("cpu"))
res = rfkit.erf(p, images="sample", num_images=n, device="cpu", metrics=False)
print(json.dumps({"batch": bs, "estimate": bytes_per_image(p.graph), "images": res.num_images,
                  "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "seconds": time.perf_counter() - t0, "layer": res.layers[0]}))
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["resnet50", "convnext_tiny"])
    p.add_argument("--images", type=int, default=2)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args(argv)

    from rfkit.io import atomic_write_text
    from rfkit.pipeline.devices import available_memory

    lines = [
        f"# ERF memory at {args.size} px on the CPU, automatic batch",
        "",
        f"{args.images} sample photographs, final feature map, random weights; {available_memory() / 1e9:.1f} GB "
        f"available when started; torch {torch.__version__}, {platform.machine()}. Produced by "
        "`benchmarks/erf_memory.py` (one fresh process per model).",
        "",
        "| model | layer | batch chosen | estimate / image (GB) | peak RSS (GB) | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for name in args.models:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, name, str(args.images), str(args.size)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        lines.append(
            f"| {name} | {r['layer']} | {r['batch']} | {r['estimate'] / 1e9:.2f} | {r['peak'] / 1e9:.2f} | "
            f"{r['seconds']:.1f} |"
        )
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "erf_memory.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
