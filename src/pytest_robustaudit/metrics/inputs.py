"""What a metric may read on one layer, each part computed only when a metric asks for it.

Why an object and not arguments: the outlier metrics read a small float64 summary, the accuracy and
direction metrics read the stored rows, the probe labels and the classification head, and several
metrics share expensive intermediate results (a layer's top-k counts, the head's SVD, the pruning
curve).  :class:`LayerInputs` hands each its part lazily and keeps a per-layer cache
(:meth:`LayerInputs.cached`) so that such a result is computed once per layer, whichever metric and
whichever output asks first.  Free of torch and pytest (numpy only).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .types import NotApplicable


class LayerInputs:
    """One layer's inputs: ``stats`` (always), and when an audit provides them, the stored rows
    (``rows()``: float32 ``[n, d]`` chunks in image order), the probe labels of those rows (``labels``:
    strings or None) and the head (``head_source()``: a :class:`~..models.heads.Head`, raising
    :class:`NotApplicable` with the reason when there is none)."""

    def __init__(self, stats: Any, layer: str = "", rows: Callable[[], Iterator[np.ndarray]] | None = None,
                 labels: Sequence[str | None] | None = None, head_source: Callable[[], Any] | None = None,
                 where: str = "", shifts: Callable[["LayerInputs"], Any] | None = None, concepts: Any = None):
        self.stats = stats
        self.layer = layer or getattr(stats, "layer", "")
        self._rows = rows
        self.labels = None if labels is None else list(labels)
        self._head_source = head_source
        self._shifts = shifts
        self.where = where
        #: the concept bank's rows on this layer (:class:`~..concept_source.ConceptInputs`), None without a bank
        self.concepts = concepts
        #: the spec asked for its head explicitly: labels it does not know are an error, not "not applicable"
        self.strict = bool(getattr(head_source, "strict", False))
        self._cache: dict[str, Any] = {}
        self._memory: list[np.ndarray] | None = None

    # -- parts -----------------------------------------------------------------------------------
    def rows(self) -> Iterator[np.ndarray]:
        """The layer's stored rows in chunks (rows with NaN/Inf included; see :meth:`finite_mask`)."""
        if self._memory is not None:
            return iter(self._memory)
        if self._rows is None:
            raise NotApplicable(f"the stored rows of layer '{self.layer}' are not at hand")
        return self._rows()

    def head(self) -> Any:
        """The classification head (cached), or :class:`NotApplicable` with the reason."""
        def build():
            if self._head_source is None:
                raise NotApplicable("no classification head (the audit provides none)")
            return self._head_source()
        return self.cached_applicable("head", build)

    def fitting_head(self) -> Any:
        """The head, when this layer's width fits it (else :class:`NotApplicable` naming both sides)."""
        head = self.head()
        if int(self.stats.dim) != head.width:
            raise NotApplicable(f"layer '{self.layer}' has width {self.stats.dim} but {head.description} reads "
                                f"width {head.width} (the head reads the layer it was trained on, normally "
                                "`representation`)")
        return head

    def head_svd(self) -> dict[str, np.ndarray]:
        """The thin SVD of the head that fits this layer (cached; from the store when the audit keeps one)."""
        def build():
            head = self.fitting_head()
            stored = getattr(self._head_source, "svd", None)
            if stored is not None:
                return stored(head)
            from .directions import head_svd

            return head_svd(head)
        return self.cached("head_svd", build)

    def shift_results(self) -> Any:
        """This layer's scores on the spec's shifted sets (a :class:`~..shifts.ShiftResults`, cached), or
        :class:`NotApplicable` with the reason (no ``shifts``, no head, not the head's layer)."""
        def build():
            if self._shifts is None:
                raise NotApplicable("no shifted sets (the audit provides none)")
            return self._shifts(self)
        return self.cached_applicable("shifts", build)

    def targets(self) -> np.ndarray:
        """Each row's class index of the head (int64, -1 unlabelled); an error naming both sides when
        the data's labels are not classes of the head."""
        def build():
            from ..models.heads import label_indices

            if self.labels is None:
                raise NotApplicable("the probe labels are not at hand")
            return label_indices(self.head(), self.labels, self.where)
        return self.cached("targets", build)

    def finite_mask(self) -> np.ndarray:
        """True for rows without NaN/Inf (the others are excluded from every head metric and counted)."""
        def build():
            return np.concatenate([np.isfinite(chunk).all(axis=1) for chunk in self.rows()] or
                                  [np.zeros(0, dtype=bool)])
        return self.cached("finite", build)

    def finite_rows(self) -> Iterator[np.ndarray]:
        """The stored rows in chunks without the rows that hold NaN/Inf (in order; what head metrics read)."""
        finite = self.finite_mask()
        offset = 0
        for chunk in self.rows():
            n = chunk.shape[0]
            yield chunk[finite[offset:offset + n]]
            offset += n

    def cached(self, name: str, build: Callable[[], Any]) -> Any:
        """``build()`` once per layer under ``name`` (an exception is not cached: asked again, it is raised again)."""
        if name not in self._cache:
            self._cache[name] = build()
        return self._cache[name]

    def cached_applicable(self, name: str, build: Callable[[], Any]) -> Any:
        """:meth:`cached`, keeping a :class:`NotApplicable` answer too: a part that is not there (no head,
        no shifts) is asked for by many metrics, and looking for it (building a head) costs each time."""
        def kept():
            try:
                return build(), ""
            except NotApplicable as why:
                return None, str(why)
        found, why = self.cached(name, kept)
        if found is None:
            raise NotApplicable(why)
        return found

    def keep_rows_in_memory(self) -> None:
        """Read the rows now and keep them (before a private temporary store is removed)."""
        if self._memory is None and self._rows is not None:
            self._memory = [np.array(chunk) for chunk in self._rows()]
