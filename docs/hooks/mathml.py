"""mkdocs hook: the docs' TeX (``pymdownx.arithmatex`` in generic mode: ``$...$`` and ``$$...$$``) becomes MathML
when the site is built, so formulas show without JavaScript and without a CDN, offline too: browsers draw
MathML themselves. Needs ``latex2mathml`` (the ``docs`` extra)."""

from __future__ import annotations

import html
import re

from latex2mathml.converter import convert

MATHML = ' xmlns="http://www.w3.org/1998/Math/MathML"'
BLOCK = re.compile(r'<div class="arithmatex">\s*\\\[(.*?)\\\]\s*</div>', re.S)
INLINE = re.compile(r'<span class="arithmatex">\\\((.*?)\\\)</span>', re.S)


def to_mathml(page_html: str) -> str:
    """``page_html`` with every arithmatex block and inline formula replaced by MathML.

    >>> to_mathml('<p>a <span class="arithmatex">\\\\(x^2\\\\)</span></p>').replace(MATHML, "")
    '<p>a <math display="inline"><mrow><msup><mi>x</mi><mn>2</mn></msup></mrow></math></p>'
    """
    page_html = BLOCK.sub(lambda m: convert(html.unescape(m.group(1)).strip(), display="block"), page_html)
    return INLINE.sub(lambda m: convert(html.unescape(m.group(1)).strip(), display="inline"), page_html)


def on_page_content(html_text, page, config, files):  # noqa: ARG001 - mkdocs' hook signature
    return to_mathml(html_text)
