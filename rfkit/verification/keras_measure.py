"""A Keras model made measurable, the Keras way (:mod:`rfkit.verification.measure` for the scheme): a clone
of its layer graph computing in float64, max pooling as average pooling with the same window, clamping
activations as the identity, softmax as a softplus normalisation, and every weight positive (kernels
``(0.5 + u) / fan_in``, biases ``0.01 (0.5 + u)``, norm scales 1, shifts 0, statistics neutral), so that the
input pixels with a non-zero gradient of a unit are exactly those it sees. The original is not touched.
"""

from __future__ import annotations

import math

import numpy as np

from rfkit.errors import TraceError
from rfkit.models.keras_build import import_keras
from rfkit.models.keras_module import KerasModule

#: Activations whose flat parts have a zero gradient (measured as the identity).
CLAMPING = frozenset({"relu", "relu6", "hard_sigmoid", "hard_silu", "hard_swish", "hard_tanh", "elu", "selu"})
#: Statistics and shifts: neutral values.
NEUTRAL = {"moving_mean": 0.0, "mean": 0.0, "beta": 0.0, "moving_variance": 1.0, "variance": 1.0, "gamma": 1.0}


def keras_measurable(module: KerasModule, seed: int = 0) -> tuple[KerasModule, list[str]]:
    """The measurable float64 twin of a Keras model and the list of swaps made.

    Raises
    ------
    TraceError
        Keras cannot clone the model (a layer without a config).
    """
    keras = import_keras()
    notes: list[str] = []

    def clone(layer):
        cls, cfg = type(layer), dict(layer.get_config())
        cfg["dtype"] = "float64"
        name = cls.__name__
        if name.startswith(("MaxPooling", "GlobalMaxPooling")):
            cls = getattr(keras.layers, name.replace("Max", "Average"))
            notes.append(f"{layer.name}: {name} measured as average pooling")
        elif name == "ReLU" or (name == "Activation" and cfg.get("activation") in CLAMPING):
            cls, cfg = keras.layers.Activation, {"activation": "linear", "name": cfg["name"], "dtype": "float64"}
            notes.append(f"{layer.name}: {name} measured as the identity")
        elif name == "Activation" and cfg.get("activation") in ("softmax", "log_softmax"):
            cls, cfg = keras.layers.Activation, {"activation": "softplus", "name": cfg["name"], "dtype": "float64"}
            notes.append(f"{layer.name}: softmax measured as softplus")
        elif cfg.get("activation") in CLAMPING:  # a convolution or dense layer with a clamping activation
            notes.append(f"{layer.name}: its {cfg['activation']} activation measured as the identity")
            cfg["activation"] = "linear"
        return cls.from_config(cfg)

    try:
        with keras.device("cpu"):
            twin = keras.models.clone_model(module.keras_model, clone_function=clone)
    except Exception as e:  # noqa: BLE001 - custom layers without a config, subclassed models...
        raise TraceError(f"Keras cannot clone {module.label} to measure it: {type(e).__name__}: {e}") from e
    rng = np.random.default_rng(seed)
    for v in twin.weights:
        leaf = v.path.rsplit("/", 1)[-1]
        shape = tuple(v.shape)
        if leaf in NEUTRAL:
            value = np.full(shape, NEUTRAL[leaf])
        elif "kernel" in leaf and len(shape) >= 2:
            fan_in = math.prod(shape[:-1]) if leaf != "depthwise_kernel" else math.prod(shape[:-2])
            value = (0.5 + rng.random(shape)) / fan_in
        elif leaf == "bias":
            value = 0.01 * (0.5 + rng.random(shape))
        else:  # layer scales, PReLU slopes...: positive
            value = np.ones(shape)
        v.assign(value.astype("float64"))
    wrapped = KerasModule(twin, label=module.label, channel_order=module.channel_order)
    return wrapped.double().eval(), notes
