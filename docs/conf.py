"""Sphinx configuration: MyST Markdown pages, autodoc API reference, furo theme."""

from __future__ import annotations

from importlib.metadata import version as _version

project = "flyautoscaler"
author = "flyautoscaler developers"
copyright = "flyautoscaler developers"
release = _version("flyautoscaler")
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# MyST: ::: fences and definition lists; anchors on headings down to ###.
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# Docstrings are Google style (Args:/Returns:/Raises:/Attributes:).
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# "Attributes:" as :ivar: fields, so they do not clash with autodoc's own
# description of the same attributes.
napoleon_use_ivar = True
napoleon_use_rtype = False

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_default_options = {"show-inheritance": True}

# No network at build time: no intersphinx. Unresolved references stay plain text.
nitpicky = False

html_theme = "furo"
html_title = f"flyautoscaler {release}"
python_use_unqualified_type_names = True
