"""Which ONNX → PyTorch converter rfkit measures through: ``benchmarks/results/onnx_converters.md``.

torchvision's resnet18 (random weights, seed 0, 64×64) exported by torch's default exporter (dynamo, at its
default opset and at 18), its legacy one (opsets 11, 17 and its default, with and without
``keep_initializers_as_inputs``), and a small Keras 3 CNN (torch backend, ``model.export(format="onnx")``:
channels-last input). Each export is converted by onnx2torch and by onnx2pytorch, as they are and after rfkit's
exact rewrites (:func:`rfkit.models.onnx_convert.fit_for_onnx2torch`, and opset 17 where onnx2torch lacks a newer
op version), and the module is run on one image and on two at once against onnxruntime. Run::

    python benchmarks/onnx_converters.py
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "torch")
RESULTS = Path(__file__).parent / "results"


def exports(folder: Path) -> dict[str, Path]:
    import torch
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    x = torch.randn(1, 3, 64, 64)
    out = {}
    with contextlib.redirect_stdout(io.StringIO()):
        for opset in (None, 18):
            path = folder / f"dynamo_{opset or 'default'}.onnx"
            torch.onnx.export(model, (x,), str(path), **({"opset_version": opset} if opset else {}))
            out[f"dynamo, opset {opset or 'default'}"] = path
        for opset in (11, 17, None):
            for keep in (False, True):
                path = folder / f"legacy_{opset}_{keep}.onnx"
                kw = {"opset_version": opset} if opset else {}
                torch.onnx.export(model, (x,), str(path), dynamo=False, keep_initializers_as_inputs=keep, **kw)
                name = f"legacy, opset {opset or 'default'}" + (", keep_initializers_as_inputs" if keep else "")
                out[name] = path
    try:
        import keras

        inp = keras.Input((32, 32, 3))
        y = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
        y = keras.layers.MaxPooling2D(2)(y)
        y = keras.layers.Conv2D(16, 3)(y)
        y = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(y))
        km = keras.Model(inp, y)
        km(np.zeros((1, 32, 32, 3), np.float32))
        with contextlib.redirect_stderr(io.StringIO()):
            km.export(str(folder / "keras.onnx"), format="onnx")
        out["keras 3 (torch backend), channels-last"] = folder / "keras.onnx"
    except Exception as e:  # noqa: BLE001 - keras missing or its export failing: reported, not fatal
        print(f"keras export failed: {type(e).__name__}: {e}")
    return out


def run(converter: str, path: Path, fitted: bool) -> str:
    import onnx
    import onnxruntime as ort
    import torch

    from rfkit.models.onnx_convert import _convert_at_17, channels_first_input, fit_for_onnx2torch
    from rfkit.models.onnx_file import image_input

    proto = onnx.load(str(path))
    inp = image_input(proto)
    shape = inp.concrete()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    feed = np.ascontiguousarray(np.moveaxis(x, 1, -1)) if inp.channels_last else x
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    ref = session.run(None, {inp.name: feed})
    model = proto
    if fitted:
        from rfkit.models.onnx_file import inferred_shapes

        model, _ = fit_for_onnx2torch(proto, inferred_shapes(proto, shape).shapes)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            logging.disable(logging.WARNING)
            if converter == "onnx2torch":
                from onnx2torch import convert

                try:
                    module = convert(model)
                except NotImplementedError as e:
                    if not fitted:
                        raise
                    module, _ = _convert_at_17(model, e, path.name)
                if fitted and inp.channels_last:
                    channels_first_input(module)
            else:
                from onnx2pytorch import ConvertModel

                module = ConvertModel(model, experimental=fitted)
            module.eval()
    except Exception as e:  # noqa: BLE001 - the failure is the measurement
        return f"conversion fails: {_short(e)}"
    finally:
        logging.disable(logging.NOTSET)
    one = x if (converter == "onnx2torch" and fitted) else feed  # rfkit's module takes channels-first images
    try:
        with torch.no_grad():
            y = module(torch.from_numpy(one)).numpy()
    except Exception as e:  # noqa: BLE001
        return f"runs not: {_short(e)}"
    err = float(np.abs(y - ref[0]).max() / np.abs(ref[0]).max())
    if err > 1e-4:
        return f"wrong output ({err:.0e})"
    try:
        with torch.no_grad():
            two = module(torch.from_numpy(np.concatenate([one, one * 0.5]))).numpy()
        batch = (
            "2 images ok" if two.shape[0] == 2 * y.shape[0] and np.allclose(two[:1], y, atol=1e-5) else "2 images wrong"
        )
    except Exception as e:  # noqa: BLE001
        batch = f"2 images fail ({_short(e)})"
    return f"ok ({err:.0e}); {batch}"


def _short(e: BaseException) -> str:
    from rfkit.models.onnx_convert import _NO_CONVERTER, _missing

    if _NO_CONVERTER.search(str(e)):
        return f"no converter for {_missing(e)}"
    return f"{type(e).__name__}: {str(e).strip().splitlines()[0][:60]}"


def cpu_seconds(path: Path) -> str:
    """CPU seconds per forward + backward of 8 images through each converter's module (after the rewrites)."""
    import time

    import onnx
    import torch
    from onnx2pytorch import ConvertModel

    from rfkit.models.onnx_convert import fit_for_onnx2torch, to_torch
    from rfkit.models.onnx_file import image_input, inferred_shapes

    proto = onnx.load(str(path))
    shape = image_input(proto).concrete()
    fitted, _ = fit_for_onnx2torch(proto, inferred_shapes(proto, shape).shapes)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        modules = {"onnx2torch": to_torch(path).module, "onnx2pytorch": ConvertModel(fitted, experimental=True).eval()}
    x = torch.randn(8, *shape[1:], requires_grad=True)
    out = []
    for name, module in modules.items():
        for p in module.parameters():
            p.requires_grad_(False)
        module(x).sum().backward()  # warm-up
        start = time.process_time()
        for _ in range(5):
            module(x).sum().backward()
        out.append(f"{name} {(time.process_time() - start) / 5:.2f} s")
    return ", ".join(out)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        found = exports(Path(tmp))
        speed = cpu_seconds(found["legacy, opset default"])
        rows = ["| export | onnx2torch | onnx2pytorch | onnx2torch after rfkit's rewrites | onnx2pytorch, same input |",
                "|---|---|---|---|---|"]  # fmt: skip
        for name, path in found.items():
            cells = [run("onnx2torch", path, False), run("onnx2pytorch", path, False)]
            cells += [run("onnx2torch", path, True), run("onnx2pytorch", path, True)]
            rows.append(f"| {name} | " + " | ".join(cells) + " |")
    from importlib.metadata import version

    versions = ", ".join(f"{p} {version(p)}" for p in ("torch", "onnx", "onnx2torch", "onnx2pytorch", "onnxruntime"))
    text = (
        "# ONNX → PyTorch converters on torch's and Keras' exports\n\n"
        + versions
        + "\n\n"
        + "\n".join(rows)
        + f"\n\nCPU time per forward + backward of 8 images (resnet18, 64×64, legacy export; shared machine): {speed}\n"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "onnx_converters.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
