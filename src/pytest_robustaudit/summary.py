"""The compact plain-text table printed at the end of a pytest run (one row per model and layer).

Fixed-width columns: model, layer, kurtosis_mean, rotated kurtosis, outlier_count, checks
passed/failed, verdict; specs that could not run get one ERROR row with the first line of their
message.  Free of pytest.
"""

from __future__ import annotations

import os
from typing import Any, Iterable

from .checks import format_number
from .errors import headline
from .results import AuditResult, tally

HEADERS = ("model", "layer", "kurtosis", "rotated", "outliers", "pass/fail", "verdict")
MAX_MODEL = 36
MAX_LAYER = 20
MAX_ERROR = 90


def _clip(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _metric(result: AuditResult, layer: str, name: str) -> str:
    value = result.layers[layer].metrics.get(name)
    return format_number(value.value) if value is not None else "-"


def rows(results: Iterable[AuditResult], errors: dict[Any, str] | None = None) -> list[tuple[str, ...]]:
    """The table's rows (strings), without header."""
    out: list[tuple[str, ...]] = []
    for result in results:
        for i, layer in enumerate(result.layers):
            checks = [c for c in result.checks if c.layer == layer]
            counts = tally(checks)
            passed, failed, skipped = counts["pass"], counts["fail"], counts["skip"]
            verdict = "FAIL" if failed else ("PASS" if passed else ("SKIP" if skipped else "-"))
            counted = f"{passed}/{failed}" + (f" ({skipped} skip)" if skipped else "")
            out.append((_clip(result.name, MAX_MODEL) if i == 0 else "", _clip(layer, MAX_LAYER),
                        _metric(result, layer, "kurtosis_mean"), _metric(result, layer, "rotated_kurtosis_mean"),
                        _metric(result, layer, "outlier_count"), counted if checks else "-", verdict))
    for path, message in (errors or {}).items():
        out.append((_clip(os.path.basename(os.fspath(path)), MAX_MODEL), "-", "-", "-", "-", "-",
                    "ERROR: " + _clip(headline(message), MAX_ERROR)))
    return out


def terminal_table(results: Iterable[AuditResult], errors: dict[Any, str] | None = None) -> list[str]:
    """The summary as lines of text (no trailing spaces); empty when there is nothing to show.

    ``checks`` reads passed/failed (plus skipped when any); numbers have 4 significant digits.
    """
    body = rows(results, errors)
    if not body:
        return []
    numeric = {2, 3, 4}
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(HEADERS)]

    def line(cells: tuple[str, ...]) -> str:
        parts = [c.rjust(widths[i]) if i in numeric else c.ljust(widths[i]) for i, c in enumerate(cells)]
        return "  ".join(parts).rstrip()

    header = line(HEADERS)
    return [header, "-" * len(header), *(line(r) for r in body)]
