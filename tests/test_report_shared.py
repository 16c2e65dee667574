"""Shared pieces of rfkit.report: DOT rendering from a source, the one formatting module, the one ERF summary
row, the shared file helpers and the public figure style API; each checked against hand-written values."""

from __future__ import annotations

import pytest

from rfkit.errors import GraphvizNotFoundError, RenderError
from rfkit.report import dot as dot_module

# ------------------------------------------------------------------------------------------------- DOT


def test_render_dot_writes_a_given_source_once(tmp_path, monkeypatch):
    import torch.nn as nn

    import rfkit

    g = rfkit.trace(nn.Sequential(nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3)), input_size=8)
    calls = []
    real = dot_module.to_dot
    monkeypatch.setattr(dot_module, "to_dot", lambda *a, **k: calls.append(1) or real(*a, **k))
    source = "digraph rfkit {\n  a -> b;\n}\n"
    assert dot_module.render_dot(source, tmp_path / "g.gv").read_text() == source
    assert calls == []  # rendering a source never draws the graph again
    monkeypatch.setattr(dot_module.shutil, "which", lambda name: None)
    with pytest.raises(GraphvizNotFoundError, match="apt-get install graphviz"):
        dot_module.render_dot(source, tmp_path / "g.svg")
    assert (tmp_path / "g.dot").read_text() == source and not (tmp_path / "g.svg").exists()
    with pytest.raises(RenderError, match="'jpg' is not one of"):
        dot_module.render_dot(source, tmp_path / "g.jpg")
    with pytest.raises(RenderError, match="'jpg' is not one of"):  # refused before the graph is drawn
        dot_module.render(g, tmp_path / "g.jpg")
    assert calls == [] and not (tmp_path / "g.jpg").exists()
