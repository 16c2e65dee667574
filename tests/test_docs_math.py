"""The documentation's formulas render offline: TeX becomes MathML when the site is built (docs/hooks/mathml.py),
no page loads a script or a style from the network."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _hook():
    pytest.importorskip("latex2mathml")
    spec = importlib.util.spec_from_file_location("mathml_hook", ROOT / "docs" / "hooks" / "mathml.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_arithmatex_output_becomes_mathml():
    hook = _hook()
    page = (
        '<p>with <span class="arithmatex">\\(k_\\text{eff} &lt; 3\\)</span> and</p>\n'
        '<div class="arithmatex">\\[\nr\' = r + (k - 1)\\,S\n\\]</div>'
    )
    out = hook.to_mathml(page)
    assert "arithmatex" not in out and out.count("<math") == 2
    assert 'display="inline"' in out and 'display="block"' in out
    assert "<mtext>eff</mtext>" in out and "&#x0003C;" in out  # the HTML-escaped < reached the TeX as <
    assert out.startswith("<p>with <math") and out.rstrip().endswith("</math>")


def test_the_site_loads_nothing_from_the_network():
    import yaml

    config = yaml.safe_load(
        "\n".join(line for line in (ROOT / "mkdocs.yml").read_text().splitlines() if "!!python" not in line)
    )
    assets = [*(config.get("extra_javascript") or []), *(config.get("extra_css") or [])]
    assert not [a for a in assets if "://" in str(a)], assets
    assert "docs/hooks/mathml.py" in config.get("hooks", [])
