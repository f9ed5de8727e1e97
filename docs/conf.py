"""Sphinx configuration: the API reference (api.rst) rendered from the docstrings.

Built in CI with warnings as errors (``sphinx-build -W``); the Markdown guides beside it are
read on GitHub and executed by tests/test_docs.py, not rendered here.
"""

project = "smtpproto"
extensions = ["sphinx.ext.autodoc"]
root_doc = "api"
source_suffix = {".rst": "restructuredtext"}
exclude_patterns = ["_build"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
# Docstrings write `name` for a parameter or a value, not a cross-reference.
default_role = "literal"
