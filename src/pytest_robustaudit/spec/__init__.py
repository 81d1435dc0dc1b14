"""Audit specs: YAML → validated, frozen dataclasses (or every problem, located).

* :mod:`.yamlsource`: safe YAML with line numbers, ``${ENV}`` substitution, duplicate keys refused.
* :mod:`.schema`: the frozen dataclasses every later stage reads.
* :mod:`.load`: :func:`load_spec`, the top level; one module per section (``model_section``,
  ``data_section``, ``checks_section``) on the shared :mod:`.validator`; :func:`load_audit_file`
  also reads a run-level relation check (:mod:`.relation_section`).
"""

from __future__ import annotations

from .load import load_audit_file, load_spec

__all__ = ["load_audit_file", "load_spec"]
