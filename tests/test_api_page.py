"""The library reference (book/api.md, Sphinx autodoc), as the session's built book has it
(conftest's ``built_book``: warnings are errors, never built into book/): it documents
every module of stroke_lib and every public function and class with its anchor and
docstring."""

from __future__ import annotations

import html
import importlib
import inspect
import pkgutil
import re

import pytest

import stroke_lib

pytestmark = pytest.mark.notebook

#: Only the opening page and the reference, so the build takes seconds.

#: What docutils' smart quotes make of plain ASCII punctuation, mapped back.
SMART = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                       "\u2013": "--", "\u2014": "---", "\u2026": "..."})


def module_names() -> list[str]:
    """stroke_lib and every module under it."""
    return ["stroke_lib"] + sorted(m.name for m in pkgutil.walk_packages(stroke_lib.__path__, "stroke_lib."))


def public_objects() -> dict[str, object]:
    """Dotted name -> object, for every public function and class defined (not imported)
    in a module of stroke_lib."""
    out = {}
    for name in module_names():
        module = importlib.import_module(name)
        for attr, obj in vars(module).items():
            if attr.startswith("_") or getattr(obj, "__module__", None) != name:
                continue
            if inspect.isclass(obj) or inspect.isfunction(inspect.unwrap(obj)):
                out[f"{name}.{attr}"] = obj
    return out


def own_docstring(obj: object) -> str:
    """The object's own docstring: never a base class's, nor the signature that dataclass
    and NamedTuple write when a class has none."""
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
    doc = inspect.cleandoc(doc or "")
    if inspect.isclass(obj) and doc.startswith(f"{obj.__name__}("):
        return ""
    return doc


def text(fragment: str) -> str:
    """Visible text of an HTML fragment, whitespace collapsed, smart quotes undone."""
    plain = html.unescape(re.sub(r"<[^>]+>", "", fragment)).translate(SMART)
    return re.sub(r"\s+", " ", plain).strip()


def plain_rst(line: str) -> str:
    """A docstring line as it reads once rendered: no roles, literals or emphasis marks."""
    line = re.sub(r":[\w:]+:`~?([^`]*)`", r"\1", line)
    line = line.replace("``", "").replace("`", "").replace("**", "")
    line = re.sub(r"(?<![\w*])\*(\S[^*]*?)\*(?![\w*])", r"\1", line)
    return re.sub(r"\s+", " ", line.translate(SMART)).strip()


@pytest.fixture(scope="module")
def api_html(built_book) -> str:
    """The reference page of the book the session built (every chapter and the HTML, with
    warnings as errors: conftest's ``built_book``)."""
    _, index, _ = built_book
    return (index.parent / "api.html").read_text()


def test_every_public_object_has_a_docstring():
    missing = [name for name, obj in public_objects().items() if not own_docstring(obj)]
    assert not missing, missing


def test_every_module_is_on_the_page(api_html):
    missing = [m for m in module_names() if f'id="module-{m}"' not in api_html]
    assert not missing, missing


def test_every_public_object_is_documented_with_its_docstring(api_html):
    objects = public_objects()
    assert len(objects) > 250
    anchor = re.compile(r'id="(?:module-)?stroke_lib[.\w]*"')
    absent, undocumented = [], []
    for name, obj in objects.items():
        start = api_html.find(f'id="{name}"')
        if start < 0:
            absent.append(name)
            continue
        after = anchor.search(api_html, start + len(name) + 5)
        section = text(api_html[start:after.start() if after else len(api_html)])
        first = plain_rst(own_docstring(obj).splitlines()[0]) if own_docstring(obj) else "<none>"
        if first not in section:
            undocumented.append((name, first))
    assert not absent, absent
    assert not undocumented, undocumented[:20]


def test_the_page_documents_the_example_patient_name_without_its_value(api_html):
    """The data chapter's example name never reaches the built book, the reference included."""
    from stroke_lib.data.faults import EXAMPLE_PATIENT_NAME

    assert 'id="stroke_lib.data.faults.EXAMPLE_PATIENT_NAME"' in api_html
    assert not any(part in api_html for part in EXAMPLE_PATIENT_NAME.split("^"))
