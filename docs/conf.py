"""Sphinx configuration of the ResNet-BK documentation.

Built in CI with warnings as errors::

    sphinx-build -W --keep-going -b html    docs docs/_build/html
    sphinx-build -W --keep-going -b doctest docs docs/_build/doctest

(``make docs`` runs both.) Pages are MyST markdown; every code example in the tutorials is a
``{doctest}`` / ``{testcode}`` block executed by the doctest builder, and the ``>>>`` examples
in the docstrings shown by the API reference are executed by ``tests/test_docs.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS / "_ext"))

# No GPU on CI: Triton (if imported by an API page) runs in interpreter mode.
os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import bkmath  # noqa: E402

project = "ResNet-BK"
author = "ResNet-BK contributors"
copyright = "2026, ResNet-BK contributors"  # noqa: A001
release = bkmath.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "bkapi",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "README.md"]
templates_path: list[str] = []

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# numpy-style docstrings
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True  # "Attributes" sections as fields: no duplicate dataclass attributes
napoleon_preprocess_types = False
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_member_order = "bysource"
autodoc_default_options = {"show-inheritance": True}  # members listed explicitly
autodoc_mock_imports: list[str] = []

# Doctest: every ``{doctest}`` / ``{testcode}`` block of the pages is executed here. The
# ``>>>`` examples of the docstrings shown by the API reference need their module's namespace:
# tests/test_docs.py runs them with ``doctest.testmod`` on every documented module instead.
doctest_test_doctest_blocks = ""
doctest_global_setup = """
import numpy as np
np.set_printoptions(precision=6, suppress=True)
"""
doctest_default_flags = (
    __import__("doctest").ELLIPSIS
    | __import__("doctest").NORMALIZE_WHITESPACE
    | __import__("doctest").DONT_ACCEPT_TRUE_FOR_1
)

html_theme = "furo"
html_title = f"ResNet-BK {release}"
html_static_path: list[str] = []
html_show_sourcelink = True

# Type names written in docstrings that are not documented objects of this project.
nitpicky = False
