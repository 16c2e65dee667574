"""An SVG drawing reduced to what a drawing needs, so that one from a report folder someone else wrote can go
into a site: shapes, paths, text, groups and gradients with their geometry and presentation attributes (a
strict allow-list), nothing that runs or loads anything.

Left out: every element not on the list with everything inside it (``<script>``, ``<foreignObject>``,
``<style>``, ``<use>``, animation, ``<iframe>``), every attribute not on the list (event handlers such as
``onload=``, ``style=``), links (an ``<a>`` keeps its drawing, not its target), ``url(...)`` values other than
references to the drawing's own gradients (``url(#g1)``), and images other than the PNG data
(``data:image/png;base64,...``) that GraphViz and matplotlib embed. A document declaring entities (XML bombs)
is refused; the result is written anew, without a DOCTYPE or processing instructions.

>>> svg = ('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script>'
...        '<g id="n1"><ellipse cx="5" cy="5" rx="4" ry="3" fill="url(#g)"/></g></svg>')
>>> print(clean_svg(svg))
<svg xmlns="http://www.w3.org/2000/svg"><g id="n1"><ellipse cx="5" cy="5" rx="4" ry="3" fill="url(#g)" /></g></svg>
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

SVG = "http://www.w3.org/2000/svg"
XLINK = "http://www.w3.org/1999/xlink"

ELEMENTS = frozenset(
    "svg g title desc defs path polygon polyline line rect circle ellipse text tspan linearGradient "
    "radialGradient stop clipPath image".split()
)
"""The SVG elements kept (GraphViz's and matplotlib's drawings use no others)."""
UNWRAPPED = frozenset({"a"})
"""Elements replaced by their content: a link keeps its drawing, not its target."""
ATTRIBUTES = frozenset(
    "id class width height viewBox version preserveAspectRatio transform x y x1 y1 x2 y2 cx cy r rx ry fx fy "
    "d points fill fill-opacity fill-rule stroke stroke-width stroke-opacity stroke-dasharray stroke-dashoffset "
    "stroke-linecap stroke-linejoin stroke-miterlimit opacity font-family font-size font-weight font-style "
    "font-stretch font-variant text-anchor text-decoration dominant-baseline baseline-shift letter-spacing "
    "clip-path clip-rule offset stop-color stop-opacity gradientUnits gradientTransform spreadMethod "
    "clipPathUnits textLength lengthAdjust visibility display".split()
)
"""The attributes kept (geometry and presentation); event handlers, ``style`` and links are not among them."""
_LOCAL_URL = re.compile(r"url\(#[A-Za-z0-9_.:-]+\)")
_PNG_DATA = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=\s]*")
_HREFS = (f"{{{XLINK}}}href", "href")


class SVGError(ValueError):
    """The text is not an SVG drawing rfkit can clean (not XML, declares entities, not ``<svg>``)."""


def _local(tag) -> str | None:
    """The SVG element name of ``tag`` (``{http://www.w3.org/2000/svg}g`` -> ``g``); None for another
    namespace, a comment or a processing instruction."""
    if not isinstance(tag, str):
        return None
    ns, _, name = tag[1:].partition("}") if tag.startswith("{") else (SVG, "", tag)
    return name if ns == SVG else None


def _clean_attributes(el: ET.Element, name: str) -> None:
    for key in list(el.attrib):
        value = el.attrib[key]
        keep = key in ATTRIBUTES and ("url(" not in value.lower() or _LOCAL_URL.fullmatch(value.strip()))
        if name == "image" and key in _HREFS:
            keep = bool(_PNG_DATA.fullmatch(value.strip()))
        if not keep:
            del el.attrib[key]


def _clean_children(parent: ET.Element) -> None:
    """Keep the allowed children of ``parent`` (cleaned), unwrap links, drop everything else."""
    kept: list[ET.Element] = []
    for child in list(parent):
        name = _local(child.tag)
        if name in UNWRAPPED:
            _clean_children(child)
            kept += list(child)
        elif name in ELEMENTS:
            _clean_attributes(child, name)
            _clean_children(child)
            kept.append(child)
        # anything else (script, foreignObject, style, comments, other namespaces) goes with its content
    for child in list(parent):
        parent.remove(child)
    parent.extend(kept)
    for child in kept:
        child.tail = None if child.tail is None or child.tail.isspace() else child.tail
    if name_of(parent) not in ("text", "tspan", "title", "desc"):
        parent.text = None


def name_of(el: ET.Element) -> str | None:
    """The SVG element name of ``el``."""
    return _local(el.tag)


def clean_svg(text: str) -> str:
    """``text`` (an SVG document) reduced to the allow-list (see the module docstring).

    Raises
    ------
    SVGError
        Not XML, a document declaring entities, or a root that is not ``<svg>``.
    """
    if re.search(r"<!ENTITY", text, re.IGNORECASE):
        raise SVGError("it declares XML entities")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise SVGError(f"not XML ({e})") from None
    if name_of(root) != "svg":
        raise SVGError("its root is not <svg>")
    _clean_attributes(root, "svg")
    _clean_children(root)
    ET.register_namespace("", SVG)
    ET.register_namespace("xlink", XLINK)
    return ET.tostring(root, encoding="unicode")
