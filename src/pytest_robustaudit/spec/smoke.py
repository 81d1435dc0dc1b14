"""``--audit-limit N``: a smoke run audits every spec as if its ``data.limit`` were the smaller of N and its own.

The subset is the one ``data.limit`` takes (``random.Random(data.seed).sample`` of the sorted files), so a
smoke run is the same images each time.  The limit applies to what is images of the probe or like it:
each shifted folder (``shifts[].limit`` likewise), and so each corruption (corrupted probe images).  It
does not apply to a concept bank: a concept needs its images for the probe's cross-validation folds, and
the bank is fixed by the spec (``concepts.images_per_concept``).  Imported activations
(``source: activations``) are read whole.  The spec keeps N (``smoke_limit``) so every output marks the
run (``audit/notices.py``).
"""

from __future__ import annotations

import dataclasses

from .schema import AuditSpec


def with_limit(spec: AuditSpec, limit: int) -> AuditSpec:
    """``spec`` as a smoke run of at most ``limit`` images per set (see the module docstring)."""
    def smaller(own: int | None) -> int:
        return limit if own is None else min(own, limit)

    shifts = tuple(dataclasses.replace(s, limit=smaller(s.limit)) if s.kind == "folder" else s for s in spec.shifts)
    return dataclasses.replace(spec, data=dataclasses.replace(spec.data, limit=smaller(spec.data.limit)),
                               shifts=shifts, smoke_limit=limit)
