"""Notices: what every output says of an audit beside its numbers, where a number may not mean what a reader
of the spec would assume.

* **random weights**: a timm or open_clip model with neither ``pretrained`` nor ``checkpoint`` is a
  random initialisation, and gives plausible numbers; ``pretrained: false`` written out says that is
  intended and silences it.  A notice, not a Python warning: ``-W error`` runs and random-init test
  factories must keep working.
* **a smoke run**: ``--audit-limit N`` audited at most N images per set.
* **a dropped check**: a check's default layer that its metric cannot be computed on (a head metric on a
  layer the head does not read), found only at run time (a factory's model, imported activations).

They are kept in the result's provenance (``provenance.notices``, a list of sentences: the JSON record
keeps them) and shown by the terminal summary, the Markdown summary and the HTML report.  Free of
pytest and torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from ..results import AuditResult
    from ..spec.schema import AuditSpec, ModelSpec

#: sources whose models are random without ``pretrained`` or ``checkpoint``
RANDOM_INIT_SOURCES = ("timm", "open_clip")
#: open_clip names whose weights come with the name (``hf-hub:``, ``local-dir:``)
_NAMED_WEIGHTS = ("hf-hub:", "local-dir:")


def random_weights(model: "ModelSpec") -> bool:
    """True when ``model`` is a random initialisation nobody asked for (``pretrained: false`` asks)."""
    return (model.source in RANDOM_INIT_SOURCES and model.pretrained is None and model.checkpoint is None
            and not str(model.name or "").startswith(_NAMED_WEIGHTS))


def random_weights_notice(model: "ModelSpec") -> str:
    return (f"random weights: {model.describe()} has neither `pretrained` nor `checkpoint`, so this audit measures "
            "a random initialisation (seed 0), not a trained model; write `pretrained: false` if that is intended")


def smoke_notice(limit: int) -> str:
    return (f"smoke run (--audit-limit {limit}): at most {limit} probe images (and as many per shifted folder and "
            "per corruption), so the numbers are not comparable with a full run")


def spec_notices(spec: "AuditSpec") -> list[str]:
    """The notices a spec implies before anything runs (shown by ``validate`` too)."""
    out = []
    if random_weights(spec.model):
        out.append(random_weights_notice(spec.model))
    if getattr(spec, "smoke_limit", None) is not None:
        out.append(smoke_notice(spec.smoke_limit))
    return out


def annotate(result: "AuditResult", spec: "AuditSpec") -> None:
    """Keep in ``result`` what the spec implies (:func:`spec_notices`) and, for a smoke run, its limit
    (``provenance.audit_limit``, for tools that read the record)."""
    add_notices(result, spec_notices(spec))
    if getattr(spec, "smoke_limit", None) is not None:
        result.provenance["audit_limit"] = int(spec.smoke_limit)


def add_notices(result: "AuditResult", notices: Iterable[str]) -> None:
    """Keep ``notices`` in ``result.provenance["notices"]`` (each once, in order)."""
    kept = [str(n) for n in result.provenance.get("notices", [])]
    result.provenance["notices"] = list(dict.fromkeys([*kept, *notices]))


def notices_of(result: Any) -> list[str]:
    """The notices of an audit result (none in records written before they existed)."""
    found = (getattr(result, "provenance", None) or {}).get("notices") or []
    return [str(n) for n in found] if isinstance(found, list) else []
