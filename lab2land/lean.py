"""Imported first by lab2land's own processes (the command line, the run processes' fork
servers), never by a kernel: it trims what those processes import.

jsonschema (via nbformat) eagerly imports ``rfc3987_syntax``, an optional checker for "iri"
formats that compiles ~35 parsers at import: ~0.8 s of every process that imports nbformat
(jsonschema #1428). No notebook schema uses those formats; marking the module absent, before
anything imports nbformat, makes jsonschema skip it. Kernels keep it: a notebook's own
jsonschema checks behave as in any kernel.
"""

import sys

sys.modules.setdefault("rfc3987_syntax", None)
