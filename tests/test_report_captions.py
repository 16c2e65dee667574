"""What report.md and the figures say about a layer: the transformed-input note of the model's data config
in the run description (escaped), and captions that stay true when a layer has no analytic RF."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import rfkit
from rfkit.report.figures.overlay import overlay_figure

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


class Branchy(nn.Module):
    """torch.fx cannot follow it (a branch on the data) and make_fx cannot record it on meta tensors."""

    def forward(self, x):
        if float(x.detach().abs().sum()) >= 0:
            return x * 2.0, x
        return x, x


class OpaqueNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.branchy = Branchy()

    def forward(self, x):
        a, b = self.branchy(self.stem(x))
        return a + b


class NotedNet(nn.Module):
    """A model whose data config says what its input is (as detectors' and YOLO's do)."""

    pretrained_cfg = {
        "input_size": (3, 16, 16),
        "mean": (0.0, 0.0, 0.0),
        "std": (1.0, 1.0, 1.0),
        "input_note": "resized | to <b>800</b> *px* by [the] transform",
    }

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]


def test_report_md_shows_the_input_note_escaped(tmp_path):
    rep = rfkit.analyze(NotedNet(), layers=["conv"], images="noise", num_images=1, device="cpu", out=tmp_path)
    lines = (rep.folder / "report.md").read_text().splitlines()
    row = next(line for line in lines if line.startswith("| input |"))
    assert row == r"| input | resized \| to &lt;b&gt;800&lt;/b&gt; \*px\* by \[the\] transform |"
    assert lines.index(row) == next(i for i, x in enumerate(lines) if x.startswith("| input size |")) + 1


def test_a_layer_without_an_analytic_rf_has_captions_that_say_so(tmp_path):
    net = OpaqueNet().eval()
    with torch.no_grad():
        net.stem.bias.fill_(10.0)
    rep = rfkit.analyze(net, layers=["stem", "branchy[0]"], images="noise", num_images=1, device="cpu", out=tmp_path)
    res = rep.result
    assert set(res.rf_missing) == {"branchy[0]"}
    report = (rep.folder / "report.md").read_text()
    alt = {line.split("](")[0] for line in report.splitlines() if line.startswith("![ERF of ")}
    assert "![ERF of stem with its analytic RF" in alt
    opaque = next(a for a in alt if "branchy" in a)
    assert "analytic RF" in opaque and "with its analytic RF" not in opaque
    assert "no analytic RF to draw: its RF is unknown after" in opaque and "Branchy at node branchy" in opaque

    fig = overlay_figure(res, "branchy[0]")
    texts = "\n".join(_texts(fig))
    assert "RF unknown" in texts and "no analytic RF to draw: its RF is unknown after" in texts
    assert "with its analytic RF" not in texts and "unsupported op before it" not in texts
    assert not [p for ax in fig.axes for p in ax.patches if p.get_gid() == "rf-box"]
    known = overlay_figure(res, "stem")
    assert [p for ax in known.axes for p in ax.patches if p.get_gid() == "rf-box"]
