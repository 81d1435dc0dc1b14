"""Read a YAML spec into plain Python values while remembering the line of every key.

``yaml.safe_load`` forgets where values came from and silently keeps the last of two duplicate
keys.  Validation errors must point at a line, so we compose the node tree ourselves (safe
composer: no tag ever constructs an object), convert scalars with the safe constructor, reject any
non-standard tag, reject duplicate keys, and substitute ``${VAR}`` / ``${VAR:-default}`` in strings.

The result is a :class:`Doc`: the data plus ``lines[path] -> line`` where ``path`` is a tuple of
keys/indices, e.g. ``("checks", "kurtosis_mean", "min")``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..errors import Problem

_STANDARD_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
    "tag:yaml.org,2002:timestamp",
}
_ENV = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")

@dataclass
class Doc:
    """Plain data from one YAML file, with the line (1-based) of every key and item."""

    file: Path
    data: Any
    lines: dict[tuple, int] = field(default_factory=dict)

    def line(self, path: tuple) -> int | None:
        """Line of ``path``, or of its nearest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)


def dotted(path: tuple) -> str:
    """``("checks", "kurtosis_mean", 0, "min")`` → ``checks.kurtosis_mean[0].min``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_doc(file: Path, env: Mapping[str, str] | None = None, text: str | None = None) -> tuple[Doc, list[Problem]]:
    """Parse ``file`` (or ``text``, named ``file`` in messages); return the document and every problem."""
    env = os.environ if env is None else env
    problems: list[Problem] = []
    if text is None:
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            return Doc(file, None), [Problem(file, None, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})",
                                             "save the spec as UTF-8 YAML")]
        except OSError as exc:
            return Doc(file, None), [Problem(file, None, "", f"cannot read the file: {exc.strerror or exc}",
                                             "check that the file exists and is readable")]
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        return Doc(file, None), [Problem(file, line, "", f"malformed YAML: {what}",
                                         "fix the YAML syntax at that line (indentation, quotes, colons)")]
    except yaml.YAMLError as exc:
        return Doc(file, None), [Problem(file, None, "", f"malformed YAML: {exc}", "fix the YAML syntax")]
    doc = Doc(file, None)
    if node is None:
        return doc, [Problem(file, 1, "", "the file is empty", "write an audit spec (see docs/spec.md)")]
    doc.data = _convert(node, (), doc, problems, env)
    return doc, problems


def _convert(node: yaml.Node, path: tuple, doc: Doc, problems: list[Problem], env: Mapping[str, str]) -> Any:
    line = node.start_mark.line + 1
    doc.lines.setdefault(path, line)
    if node.tag not in _STANDARD_TAGS:
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        problems.append(Problem(doc.file, line, dotted(path), f"YAML tag '{tag}' is not allowed",
                                "remove the tag: specs hold plain data, tags that construct objects are refused"))
        return None
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                problems.append(Problem(doc.file, key_node.start_mark.line + 1, dotted(path),
                                        "YAML merge keys ('<<') are not supported", "write the keys out"))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(Problem(doc.file, key_node.start_mark.line + 1, dotted(path),
                                        "a mapping key must be a plain name", "use a string key"))
                continue
            key = _scalar(key_node)
            key = key if isinstance(key, str) else str(key)
            if key in out:
                first = doc.lines.get(path + (key,))
                problems.append(Problem(doc.file, key_node.start_mark.line + 1, dotted(path + (key,)),
                                        f"duplicate key '{key}' (first at line {first})",
                                        "keep one of them; YAML would silently use the last"))
                continue
            doc.lines[path + (key,)] = key_node.start_mark.line + 1
            out[key] = _convert(value_node, path + (key,), doc, problems, env)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, path + (i,), doc, problems, env) for i, item in enumerate(node.value)]
    value = _scalar(node)
    if isinstance(value, str) and "$" in value:
        value = _interpolate(value, path, line, doc.file, problems, env)
    return value


def _scalar(node: yaml.ScalarNode) -> Any:
    return _SAFE.construct_object(node)


class _Constructor(yaml.SafeLoader):
    """Only used for its scalar construction (int/float/bool/null/str/timestamp)."""

    def __init__(self) -> None:  # noqa: D401 - no stream needed
        yaml.constructor.SafeConstructor.__init__(self)


_SAFE = _Constructor()


def _interpolate(value: str, path: tuple, line: int, file: Path, problems: list[Problem],
                 env: Mapping[str, str]) -> str:
    def repl(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        problems.append(Problem(file, line, dotted(path), f"environment variable '{name}' is not set",
                                f"export {name}=... before running pytest, or write ${{{name}:-default}}"))
        return match.group(0)

    return _ENV.sub(repl, value)
