"""A model built on meta without its initialisation has the parameters and buffers of one built on the CPU."""

from __future__ import annotations

import pytest
import timm
import torch

from rfkit.models.meta_init import skipped_init
from rfkit.models.spec import build_model


def _layout(model) -> dict:
    tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    return {k: (tuple(t.shape), t.dtype, t.requires_grad) for k, t in tensors.items()}


@pytest.mark.parametrize("name", ["test_vit", "test_efficientnet", "test_convnext", "test_byobnet"])
def test_a_model_built_without_init_has_the_cpu_models_tensors(name):
    torch.manual_seed(0)
    cpu = timm.create_model(name)
    meta = build_model(name)
    assert all(t.is_meta for t in (*meta.parameters(), *meta.buffers()))
    assert _layout(meta) == _layout(cpu)


def test_init_ops_run_on_other_devices_within_the_mode():
    x = torch.zeros(3)
    with skipped_init():
        torch.nn.init.ones_(x)
        y = torch.empty(2, device="meta").uniform_()
    assert x.tolist() == [1.0, 1.0, 1.0] and y.is_meta
