"""ERF speed: rfkit against OpenERF and against a bare forward + input-gradient loop, in one run, on the
same images.

For each model (resnet50, vit_small_patch16_224) and each layer set (the final feature map; four stage
outputs), it times

- ``bare``: the floor — a hand-written loop over the same batches: frozen eval model, forward (to the
  deepest layer), the RepLKNet centre score, one ``autograd.grad`` per layer, map summed on the device;
- ``rfkit``: ``rfkit.erf`` (method ``replknet`` and ``openerf``) on the same tensor, everything included
  (tracing the RF graph, unit selection, metrics off);
- ``rfkit (dir)``: the same reading the images from a folder (decoding and preprocessing included); with
  ``metrics`` the metrics of every map too (``bootstrap=0``), with ``defaults`` as a user runs it: metrics and
  their 95% intervals (200 bootstrap resamples over the independent images) and the convergence curves;
- ``openerf``: ``openerf.erf.compute_erf`` on that folder (batch size 1 by design; one run per layer);
- on a GPU (``--device cuda``), ``rfkit`` with channels-last and with bf16 autocast too, each map's correlation
  with the fp32 map printed below the table (goal > 0.999).

Random weights (this machine is offline); speed does not depend on the values. Run::

    python benchmarks/erf_speed.py [--images 8 64] [--threads 2] [--repeats 3] [--device cpu] [--torchrun]

``--images`` takes several counts (fixed costs weigh most on few images); ``--only layer1`` keeps the layer
sets holding that layer.

Ratios are what to quote: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import torch

LAYERS = {
    "resnet50": (["layer4"], ["layer1"], ["layer1", "layer2", "layer3", "layer4"]),
    "vit_small_patch16_224": (["norm"], ["blocks.2", "blocks.5", "blocks.8", "blocks.11"]),
}


def bare_loop(model, batches, layers, device):
    """Forward + input gradient per layer, nothing else: the floor for any ERF tool."""
    import rfkit
    from rfkit.graph.units import grid_shape, select_unit
    from rfkit.pipeline.capture import HookCapture, frozen

    g = rfkit.trace(model, input_size=tuple(batches[0].shape[2:]))
    layouts = {k: g.record(k).layout for k in layers}
    units = {k: tuple(n // 2 for n in grid_shape(layouts[k], 2)) for k in layers}
    capture = HookCapture(model, {k: k for k in layers})
    t0 = time.perf_counter()
    with frozen(model, device):
        total = {k: torch.zeros(batches[0].shape[2:], device=device) for k in layers}
        for b in batches:
            x = b.to(device).requires_grad_(True)
            outs = capture(x)
            scores = [torch.relu(select_unit(outs[k], layouts[k], units[k])).sum() for k in layers]
            for i, (k, s) in enumerate(zip(layers, scores)):
                (grad,) = torch.autograd.grad(s, x, retain_graph=i < len(layers) - 1)
                total[k] += torch.relu(grad).sum((0, 1))
        maps = {k: v.cpu().numpy() for k, v in total.items()}
    return time.perf_counter() - t0, maps


MEASURE = ("metrics", "crop", "bootstrap", "until_stable")  # the fields of rfkit.ERFOptions; the rest: Runtime's


def time_rfkit(model, images, layers, n, batch, device, method, **options):
    import rfkit

    t0 = time.perf_counter()
    res = rfkit.erf(
        model,
        layers=layers,
        images=rfkit.Images(images, n),
        weights="as-given",
        method=method,
        options=rfkit.ERFOptions(**{"metrics": False, **{k: v for k, v in options.items() if k in MEASURE}}),
        runtime=rfkit.Runtime(device, batch, **{k: v for k, v in options.items() if k not in MEASURE}),
    )
    return time.perf_counter() - t0, res


def fixed_costs(model, repeats: int) -> float:
    """Seconds :func:`rfkit.prepare` takes on a built model (best of ``repeats``): what every run pays before
    its first image."""
    import rfkit

    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        rfkit.prepare(model, weights="as-given")
        best = min(best, time.perf_counter() - t0)
    return best


def time_openerf(model, folder, layers, n, device):
    from openerf.erf import compute_erf

    t0 = time.perf_counter()
    maps = {}
    for layer in layers:
        target = "forward_features" if layer in ("norm", "layer4") and len(layers) == 1 else layer
        maps[layer] = compute_erf(
            model, image_dir=folder, max_images=n, target_layer=target, device=device, show_progress=False
        ).erf_map
    return time.perf_counter() - t0, maps


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, nargs="+", default=[32], help="image counts, each timed on its own")
    p.add_argument("--only", help="time only the layer sets holding this layer (e.g. layer1)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="rounds over all tools; the best time of each counts")
    p.add_argument("--device", default="cpu")
    p.add_argument("--models", nargs="*", default=list(LAYERS))
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    p.add_argument("--torchrun", action="store_true", help="also time `rfkit erf` under torchrun: 2 x 1 thread vs 1")
    p.add_argument(
        "--torchrun-images", type=int, nargs="+", help="image counts of the torchrun rows (default: largest --images)"
    )
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)

    import timm

    from rfkit.io import atomic_write_text
    from rfkit.models.data_config import data_config_for
    from rfkit.pipeline.images import image_batches

    device = torch.device(args.device)
    rows, fixed, agree = [], {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, count in ((m, c) for m in args.models for c in args.images):
            torch.manual_seed(0)
            model = timm.create_model(name, pretrained=False).eval()
            cfg = data_config_for(model)
            folder = Path(tmp) / f"{name}-{count}"
            folder.mkdir()
            _write_sample_folder(folder, count)
            batches = list(image_batches(folder, cfg, count, args.batch))
            tensor = torch.cat(batches)
            if count == args.images[0]:
                fixed[name] = fixed_costs(model, args.repeats)
            for layers in LAYERS[name]:
                if args.only and args.only not in layers:
                    continue
                bare_loop(model, batches[:1], layers, device)  # warm-up
                n, bs = count, args.batch
                tools = {
                    "bare loop": partial(bare_loop, model, batches, layers, device),
                    "rfkit replknet": partial(time_rfkit, model, tensor, layers, n, bs, device, "replknet"),
                    "rfkit openerf": partial(time_rfkit, model, tensor, layers, n, bs, device, "openerf"),
                    "rfkit replknet (folder)": partial(time_rfkit, model, folder, layers, n, bs, device, "replknet"),
                    "rfkit replknet (folder), metrics": partial(
                        time_rfkit, model, folder, layers, n, bs, device, "replknet", metrics=True, bootstrap=0
                    ),
                    "rfkit replknet (folder), defaults": partial(
                        time_rfkit, model, folder, layers, n, bs, device, "replknet", metrics=True
                    ),
                    "openerf (folder, batch 1)": partial(time_openerf, model, folder, layers, n, device),
                }
                if device.type == "cuda":  # the GPU options, checked against the fp32 maps below
                    for label, option in (("channels-last", "channels_last"), ("bf16 autocast", "autocast")):
                        tools[f"rfkit replknet ({label})"] = partial(
                            time_rfkit, model, tensor, layers, n, bs, device, "replknet", **{option: True}
                        )
                best, outputs = {}, {}
                for _ in range(args.repeats):  # rounds over every tool: a noisy spell hits them all alike
                    for label, run in tools.items():
                        t, out = run()
                        best[label] = min(best.get(label, math.inf), t)
                        outputs[label] = out
                bare_maps, ours = outputs["bare loop"], outputs["rfkit replknet"]
                for k in layers:  # same numbers as the floor, or the comparison means nothing
                    np.testing.assert_allclose(
                        ours.maps[k] * count, bare_maps[k], rtol=1e-3, atol=1e-6 * bare_maps[k].max()
                    )
                for label in [t for t in tools if t.endswith(("(channels-last)", "(bf16 autocast)"))]:
                    agree[(name, ",".join(layers), count, label)] = min(
                        np.corrcoef(outputs[label].maps[k].ravel(), ours.maps[k].ravel())[0, 1] for k in layers
                    )
                open_maps, res_open = outputs["openerf (folder, batch 1)"], outputs["rfkit openerf"]
                corr = min(np.corrcoef(res_open.maps[k].ravel(), open_maps[k].ravel())[0, 1] for k in layers)
                t_bare, t_open, t_ours = best["bare loop"], best["openerf (folder, batch 1)"], best["rfkit openerf"]
                for label, t in best.items():
                    rows.append(
                        (
                            name,
                            ",".join(layers) if len(layers) == 1 else f"{len(layers)} stages",
                            count,
                            label,
                            t / count * 1000,
                            t / t_bare,
                            t_open / t if label.startswith("rfkit") else math.nan,
                            corr if label == "rfkit openerf" else math.nan,
                        )
                    )
                print(
                    f"{name} {count} images, {len(layers)} layer(s): bare {t_bare:.2f}s, rfkit openerf {t_ours:.2f}s, "
                    f"openerf {t_open:.2f}s, corr {corr:.4f}",
                    flush=True,
                )

    final = {"resnet50": "layer4", "vit_small_patch16_224": "norm"}
    one = {(r[0], r[2], r[3]): r[4] for r in rows if r[1] == final.get(r[0])}
    lines = (
        []
        if not rows
        else [
            "# ERF speed: rfkit vs OpenERF vs a bare forward + input-gradient loop",
            "",
            f"{' and '.join(map(str, args.images))} images at each model's input size (sample photographs written as "
            f"PNG), batch {args.batch} (OpenERF: 1), best of "
            f"{args.repeats} interleaved rounds, device "
            f"{args.device}, {args.threads} torch threads, random weights. torch {torch.__version__}, "
            f"{platform.processor() or platform.machine()}. Produced by `benchmarks/erf_speed.py`.",
            "",
            "Every time includes the tool's fixed costs (tracing, crop check); the model is built once, outside.",
            "",
            "| model | layers | images | tool | ms / image | × bare loop | OpenERF time / this | corr. with OpenERF |",
            "|---|---|---|---|---|---|---|---|",
        ]
    )
    for model, n, count, label, ms, vs_bare, speedup, corr in rows:
        lines.append(
            f"| {model} | {n} | {count} | {label} | {ms:.1f} | {vs_bare:.2f} | "
            f"{'' if math.isnan(speedup) else f'{speedup:.2f}×'} | "
            f"{'' if math.isnan(corr) else f'{corr:.4f}'} |"
        )
    lines += ["", "Cost of 4 layers over 1 layer (same tool):", ""] if rows else []
    for model, count in ((m, c) for m in args.models for c in args.images):
        for label in ("bare loop", "rfkit replknet", "rfkit openerf", "openerf (folder, batch 1)"):
            four = next((r[4] for r in rows if r[:4] == (model, "4 stages", count, label)), None)
            if four is not None and (model, count, label) in one:
                lines.append(f"- {model}, {count} images, {label}: {four / one[(model, count, label)]:.2f}×")
    lines += (
        []
        if not fixed
        else [
            "",
            "Fixed costs of a run on a built model (`rfkit.prepare`: weights check, zero-init trap scan, fx trace and "
            f"RF propagation at the model's input size), best of {args.repeats}:",
            "",
            *(f"- {model}: {t * 1000:.0f} ms" for model, t in fixed.items()),
        ]
    )
    if agree:
        lines += ["", "GPU options: correlation of their maps with the fp32 maps (goal > 0.999):", ""]
        lines += [f"- {m}, {k}, {c} images, {label}: {r:.5f}" for (m, k, c, label), r in agree.items()]
    if args.torchrun and not rows:
        lines += [
            "# ERF speed under torchrun",
            "",
            f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores. "
            "Produced by `benchmarks/erf_speed.py --models --torchrun`.",
        ]
    for count in (args.torchrun_images or [max(args.images)]) if args.torchrun else []:
        lines += ["", *torchrun_rows(count, args.batch)]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / ("erf_speed.md" if args.models else "erf_torchrun.md"), text)
    return 0


def torchrun_rows(n: int, batch: int, repeats: int = 2) -> list[str]:
    """`rfkit erf resnet50 -l layer4` as a user runs it (process start, model build and trace included), in 1
    process with 1 thread and under torchrun with 2 processes of 1 thread each: the ratio of the walls."""
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        _write_sample_folder(folder, n)
        args = ["-m", "rfkit_cli.app", "erf", "resnet50", "-l", "layer4", "--images", str(folder), "-n", str(n)]
        args += ["--batch-size", str(batch), "--threads", "1", "--weights", "random-safe", "--device", "cpu", "-q"]
        walls = {}
        for _ in range(repeats):
            for procs in (1, 2):
                cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs)]
                t0 = time.perf_counter()
                subprocess.run(
                    [*cmd, *args], check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
                )
                walls[procs] = min(walls.get(procs, math.inf), time.perf_counter() - t0)
    return [
        f"torchrun, resnet50 `layer4`, {n} images from a folder, whole command (start-up, build, trace included), "
        f"best of {repeats}:",
        "",
        "| processes × threads | wall (s) | speed-up over 1 × 1 |",
        "|---|---|---|",
        f"| 1 × 1 | {walls[1]:.1f} | 1.00× |",
        f"| 2 × 1 | {walls[2]:.1f} | {walls[1] / walls[2]:.2f}× |",
        "",
        f"Split as serial + parallel (t1 = S + P, t2 = S + P / 2): S = {2 * walls[2] - walls[1]:.1f} s that every "
        f"process pays whole (torchrun's launcher, imports, model build, trace, metrics), P = "
        f"{2 * (walls[1] - walls[2]):.1f} s of measuring, which 2 processes halve.",
    ]


def _write_sample_folder(folder: Path, n: int) -> None:
    """The sample photographs, written once as PNG so that every tool reads the same files."""
    from rfkit.pipeline.images import sample_view

    for i in range(n):
        sample_view(i).save(folder / f"{i:03d}.png")


if __name__ == "__main__":
    sys.exit(main())
