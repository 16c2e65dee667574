"""The project docs, a report site and an atlas site, opened in a real browser (headless Chromium, driven over
the Chrome DevTools protocol on a pipe: tests/chromium.py): every image loads, formulas are MathML, no console
errors, nothing but scrollable table wrappers and code blocks is wider than a 1280 px window; on the atlas site
every link resolves and the list's filter box and sortable columns work under real typing and clicks.

Chromium is not on CI or users' machines: the tests skip when ``chromium`` is not on PATH
(``apt-get install chromium`` to run them).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from chromium import CHROMIUM, WIDTH, Browser, serve

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not on PATH (apt-get install chromium)")

#: What a page looks like in the browser, measured by the page itself once loaded.
PROBE = """(() => {
  const vw = document.documentElement.clientWidth;
  const scrolls = (el) => {
    for (let e = el.parentElement; e && e !== document.body; e = e.parentElement) {
      const o = getComputedStyle(e).overflowX;
      if (o === 'auto' || o === 'scroll') return true;
    }
    return false;
  };
  const wide = [];
  for (const el of document.querySelectorAll('table, img, svg, pre, p, h1, h2, h3, li, math')) {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && r.right > vw + 1 && !scrolls(el)) wide.push(el.tagName + ': ' + el.textContent.slice(0, 40));
  }
  return {
    broken: [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute('src')),
    images: document.images.length,
    math: document.querySelectorAll('math').length,
    tex: [...document.querySelectorAll('.arithmatex')].length,
    links: [...document.links].map(a => a.href),
    pageWidth: document.documentElement.scrollWidth,
    viewport: vw,
    wide: wide,
  };
})()"""


@pytest.fixture(scope="module")
def browser():
    b = Browser()
    yield b
    b.close()


def mkdocs_build(config: Path, out: Path) -> None:
    pytest.importorskip("material")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(config), "-d", str(out)]
    done = subprocess.run(cmd, cwd=config.parent, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr


def pages(site: Path) -> list[str]:
    return sorted(str(p.relative_to(site)) for p in site.rglob("*.html") if p.name != "404.html")


def unresolved(site: Path, base: str, links: list[str]) -> list[str]:
    """The links to ``base`` (the site served) among ``links`` whose file is not in ``site``, or whose
    ``#anchor`` is no element's id in that file."""
    bad = []
    for link in links:
        if not link.startswith(base):
            continue  # another site (the theme's credit, a paper): not this site's to resolve
        parts = urlsplit(link)
        target = site / unquote(parts.path[len(urlsplit(base).path) :])
        if target.is_dir() or not target.suffix:
            target = target / "index.html"
        if not target.is_file():
            bad.append(link)
        elif parts.fragment and not re.search(
            rf"""\bid=["']?{re.escape(unquote(parts.fragment))}["'\s>]""", target.read_text(errors="replace")
        ):
            bad.append(link)
    return bad


def check_site(browser: Browser, site: Path) -> dict:
    """Open every page of ``site``; the problems found, by page."""
    base, server = serve(site)
    problems, seen = {}, {}
    try:
        for page in pages(site):
            probe = browser.open(base + page, PROBE)
            seen[page] = probe
            found = []
            if probe["broken"]:
                found.append(f"images not loaded: {probe['broken']}")
            if probe["tex"]:
                found.append(f"{probe['tex']} formula(s) left as TeX, not MathML")
            if probe["errors"]:
                found.append(f"console errors: {probe['errors']}")
            if probe["pageWidth"] > probe["viewport"] or probe["wide"]:
                found.append(f"wider than {WIDTH} px: {probe['pageWidth']} px; {probe['wide'][:3]}")
            broken_links = unresolved(site, base, probe["links"])
            if broken_links:
                found.append(f"links that do not resolve: {broken_links[:5]}")
            if found:
                problems[page] = found
    finally:
        server.shutdown()
    return problems, seen


def test_project_docs_in_a_browser(browser, tmp_path):
    site = tmp_path / "docs-site"
    mkdocs_build(ROOT / "mkdocs.yml", site)
    problems, seen = check_site(browser, site)
    assert not problems, json.dumps(problems, indent=1)
    assert sum(p["images"] for p in seen.values()) > 0  # the checks saw images at all
    assert seen["concepts/index.html"]["math"] > 0  # the formulas of the concepts page are MathML


def test_report_site_in_a_browser(browser, tmp_path, monkeypatch):
    from rfkit_cli.app import main

    shutil.copy(ROOT / "tests" / "golden" / "tiny_net.py", tmp_path / "tiny_net.py")
    monkeypatch.chdir(tmp_path)
    args = ["-l", "0", "2", "--images", "noise", "-n", "2", "--input-size", "16", "--device", "cpu", "-q"]
    analyze = ["analyze", "tiny_net.py:build", "--trust", *args, "--out", "out"]
    for command in (analyze, ["report", "out", "--site", "s"]):
        with pytest.raises(SystemExit) as exc:
            main(command)
        assert exc.value.code in (0, None)
    mkdocs_build(tmp_path / "s" / "mkdocs.yml", tmp_path / "s" / "site")
    problems, seen = check_site(browser, tmp_path / "s" / "site")
    assert not problems, json.dumps(problems, indent=1)
    model_page = next(p for p in seen if p.startswith("models/"))
    assert seen[model_page]["images"] > 0  # the model's figures are on its page, and loaded


def test_the_checks_find_what_they_look_for(browser, tmp_path):
    """A page with a missing image, a formula left as TeX, a console error, a table wider than the window (not
    in a scrolling wrapper), a link to no file and one to no anchor is reported on each count; the same table in
    a scrolling wrapper and links to a page and to an anchor that exist are not."""
    wide = "<table><tr>" + "<td>column&nbsp;of&nbsp;text</td>" * 40 + "</tr></table>"
    icon = "<head><link rel='icon' href='data:,'></head>"  # no request for /favicon.ico (a 404 is an error)
    (tmp_path / "bad.html").write_text(
        f"<html>{icon}<body><img src='missing.png'><span class='arithmatex'>\\(x\\)</span>"
        f"<script>console.error('boom')</script>{wide}"
        "<a href='nowhere.html'>a</a><a href='good.html#nope'>b</a><a href='https://example.org/x'>c</a></body></html>"
    )
    (tmp_path / "good.html").write_text(
        f"<html>{icon}<body><div style='overflow-x: auto'>{wide}</div><math><mi>x</mi></math>"
        "<h2 id='here'>h</h2><a href='bad.html'>a</a><a href='good.html#here'>b</a><a href='#here'>c</a></body></html>"
    )
    problems, seen = check_site(browser, tmp_path)
    bad = " ".join(problems["bad.html"])
    assert "missing.png" in bad and "left as TeX" in bad and "boom" in bad and "wider than" in bad
    assert "nowhere.html'" in bad and "good.html#nope'" in bad and "example.org" not in bad
    assert "good.html" not in problems and seen["good.html"]["math"] == 1


#: Reads the atlas list (the home page's table) as shown: the header, and the cells of the rows not hidden.
SHOWN_ROWS = """(() => {
  const t = document.querySelector('article table');
  const rows = [...t.tBodies[0].rows].filter(r => getComputedStyle(r).display !== 'none');
  return {count: document.querySelector('.rfkit-atlas .atlas-count').textContent,
          header: [...t.tHead.rows[0].cells].map(c => c.textContent.trim()),
          rows: rows.map(r => [...r.cells].map(c => c.textContent.trim()))};
})()"""


def _number(text: str) -> float:
    """A cell of the list as the number it shows: ``global`` is infinite, ``11×7`` is 11 (the height)."""
    return math.inf if text == "global" else float(text.split("×")[0])


def test_atlas_site_in_a_browser(browser, tmp_path):
    """The atlas site of five tiny timm models, test_resnet with a trained ERF (a weight file given): every page
    loads without console errors or broken images (the trained ERF's stage grid too), every link resolves, and on
    the list typed words, ``rf>=N`` and ``erf_trained>=1`` keep the rows the table says they should, a click on
    a column sorts it (numbers as numbers, ``global`` last), a second click reverses it."""
    import timm
    import torch

    from rfkit.atlas import ErfTrained, build_atlas, load
    from rfkit.atlas.site import build_atlas_site

    torch.save(timm.create_model("test_resnet").state_dict(), tmp_path / "test_resnet.pth")
    how = ErfTrained(num_images=2, weights=(("test_resnet", str(tmp_path / "test_resnet.pth")),), hub=False)
    build_atlas(tmp_path / "A", models="test_[rc]*", sizes=[], erf_trained=how, recycle=None)
    df = load(tmp_path / "A")
    finals = df[df["is_final"] & (df["input_from"] == "default")].set_index("model")
    assert sorted(finals.index) == ["test_coatnet", "test_convnext", "test_convnext2", "test_convnext3", "test_resnet"]
    build_atlas_site(tmp_path / "A", tmp_path / "S")
    mkdocs_build(tmp_path / "S" / "mkdocs.yml", tmp_path / "S" / "site")
    site = tmp_path / "S" / "site"
    problems, seen = check_site(browser, site)
    assert not problems, json.dumps(problems, indent=1)
    model_pages = [p for p in seen if p.startswith("models/")]
    family_pages = [p for p in seen if p.startswith("families/") and p != "families/index.html"]
    assert len(model_pages) == 5 and len(family_pages) == finals["family"].nunique() == 3  # maxxvit, convnext, resnet
    assert all(seen[p]["images"] >= 1 for p in model_pages + family_pages)  # the RF growth figures, loaded
    assert sorted(seen[p]["images"] for p in model_pages) == [1, 1, 1, 1, 2]  # and test_resnet's trained ERF grid
    assert "missing/index.html" in seen  # the four models without weights: listed apart
    home_links = {link.split("#")[0] for link in seen["index.html"]["links"]}
    assert all(any(link.endswith(p.removesuffix("index.html")) for link in home_links) for p in model_pages)

    base, server = serve(site)
    try:
        browser.open(base + "index.html")
        shown = browser.evaluate(SHOWN_ROWS)
        assert shown["header"][:5] == ["model", "source", "family", "input", "rf"]
        assert sorted(r[0] for r in shown["rows"]) == sorted(finals.index)
        rf = shown["header"].index("rf")
        for row in shown["rows"]:  # the list shows the table's rf: the smaller axis, 'global' where infinite
            assert _number(row[rf]) == finals.loc[row[0], "rf"], row

        assert shown["count"] == "5 rows"
        browser.type_into("input.atlas-filter", "convnext")
        shown = browser.evaluate(SHOWN_ROWS)
        assert sorted(r[0] for r in shown["rows"]) == sorted(finals.index[finals["family"] == "convnext"])
        assert shown["count"] == "3 of 5 rows"
        threshold = sorted(finals["rf"])[2]  # the third smallest RF: some rows above it, some below
        browser.type_into("input.atlas-filter", f"rf>={threshold:g}")
        assert sorted(r[0] for r in browser.evaluate(SHOWN_ROWS)["rows"]) == sorted(
            finals.index[finals["rf"] >= threshold]
        )
        browser.type_into("input.atlas-filter", f"resnet rf>={threshold:g}")
        kept = finals[(finals["family"] == "resnet") & (finals["rf"] >= threshold)]
        assert sorted(r[0] for r in browser.evaluate(SHOWN_ROWS)["rows"]) == sorted(kept.index)
        browser.type_into("input.atlas-filter", "erf_trained>=1")
        assert [r[0] for r in browser.evaluate(SHOWN_ROWS)["rows"]] == ["test_resnet"]
        browser.type_into("input.atlas-filter", " ")
        assert len(browser.evaluate(SHOWN_ROWS)["rows"]) == 5

        browser.click(f"article table thead th:nth-child({rf + 1})")
        values = [_number(r[rf]) for r in browser.evaluate(SHOWN_ROWS)["rows"]]
        assert values == sorted(finals["rf"]) and math.isinf(values[-1])  # test_coatnet's attention: global
        browser.click(f"article table thead th:nth-child({rf + 1})")
        assert [_number(r[rf]) for r in browser.evaluate(SHOWN_ROWS)["rows"]] == sorted(finals["rf"], reverse=True)
        browser.click("article table thead th:nth-child(1)")
        assert [r[0] for r in browser.evaluate(SHOWN_ROWS)["rows"]] == sorted(finals.index)
        assert browser.errors() == []
    finally:
        server.shutdown()
