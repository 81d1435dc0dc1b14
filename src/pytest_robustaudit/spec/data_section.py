"""Validation of the ``data`` section: keys, then the data stage's own discovery.

Discovery runs at collection (no file is opened), so an empty folder or unlabelled files fail
before any model is loaded; its :class:`~..errors.DataError` names the key at fault as a field.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..data.discover import LABEL_MODES
from ..errors import DataError
from .schema import DataSpec
from .validator import SEED_LIMIT, Validator

DATA_KEYS = ("path", "labels", "limit", "seed", "batch_size", "workers")


class DataSection(Validator):
    def data(self, value: Any) -> DataSpec | None:
        path = ("data",)
        if isinstance(value, str):
            value = {"path": value}
        section = self.mapping(value, path, DATA_KEYS, required=("path",))
        if section is None or "path" not in section:
            return None
        folder = self.existing_path(section["path"], path + ("path",), want_dir=True)
        labels = self.choice(section.get("labels", "auto"), path + ("labels",), LABEL_MODES)
        limit = self.integer(section["limit"], path + ("limit",), 1) if section.get("limit") is not None else None
        seed = self.integer(section.get("seed", 0), path + ("seed",), 0, SEED_LIMIT)
        batch = self.integer(section.get("batch_size", 32), path + ("batch_size",), 1, 65536)
        raw_workers = section.get("workers", 0)
        if raw_workers == "auto":
            workers = "auto"
        elif isinstance(raw_workers, str):
            self.problem(path + ("workers",), f"expected an integer >= 0 or 'auto', got {raw_workers!r}",
                         "write a number of decoding threads, or auto (one per spare core)")
            workers = 0
        else:
            workers = self.integer(raw_workers, path + ("workers",), 0, 256)
        if folder is None:
            return None
        spec = DataSpec(path=folder, labels=labels or "auto", limit=limit, seed=seed or 0, batch_size=batch or 32,
                        workers=workers or 0, where=self.where(path))
        try:  # an empty folder or unlabelled files fail now, not after the model has loaded
            from ..data.discover import discover

            discover(dataclasses.replace(spec, where=None))
        except DataError as error:
            self.problem(tuple(error.key.split(".")), error.message, error.fix or "point data.path at a folder of images")
            return None
        return spec
