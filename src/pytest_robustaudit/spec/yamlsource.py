"""Read a YAML spec into plain Python values while remembering the line of every key.

``yaml.safe_load`` forgets where values came from and silently keeps the last of two duplicate
keys.  Validation errors must point at a line, so we compose the node tree ourselves (safe
composer: no tag ever constructs an object), convert scalars with the safe constructor, reject any
non-standard tag, reject duplicate keys, and substitute ``${VAR}`` / ``${VAR:-default}`` in strings.

The result is a :class:`Doc`: the data plus ``lines[path] -> line`` where ``path`` is a tuple of
keys/indices, e.g. ``("checks", "kurtosis_mean", "min")``.

Hostile documents end with a located problem, never a hang or a traceback: composing keeps YAML
aliases as shared nodes, and the blow-up of an alias bomb ("billion laughs") happens when those
nodes are converted to Python values, so the conversion counts every node it produces (an alias
counts the whole size of its target, each time it is used) and stops at :data:`MAX_NODES`;
nesting deeper than :data:`MAX_DEPTH` and a RecursionError from the YAML parser are problems too.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..errors import Problem, file_kind

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
#: the most values one spec may expand to (an alias counts its target's size each time); real specs
#: hold a few hundred
MAX_NODES = 10_000
#: the deepest nesting of mappings and lists a spec may use (real specs nest 4 or 5 levels)
MAX_DEPTH = 50
#: the largest spec file read (real specs are a few hundred bytes)
MAX_BYTES = 1_000_000
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
        unfit = _unfit_file(file)
        if unfit:
            return Doc(file, None), [unfit]
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            return Doc(file, None), [Problem(file, None, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})",
                                             "save the spec as UTF-8 YAML")]
        except OSError as exc:
            return Doc(file, None), [Problem(file, None, "", f"cannot read the file: {exc.strerror or exc}",
                                             "check that the file exists and is readable")]
    deep = _flow_depth_problem(file, text)
    if deep:   # PyYAML's scanner slows down with each open bracket (seconds at a few thousand)
        return Doc(file, None), [deep]
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        return Doc(file, None), [Problem(file, None, "", "the YAML nests too deeply to be parsed",
                                         f"a spec nests at most {MAX_DEPTH} levels of mappings and lists")]
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
    try:
        doc.data = _convert(node, (), doc, problems, env, _Budget())
    except _TooLarge as exc:
        return Doc(file, None), [exc.problem]
    except RecursionError:
        return Doc(file, None), [Problem(file, None, "", "the YAML nests too deeply to be converted",
                                         f"a spec nests at most {MAX_DEPTH} levels of mappings and lists")]
    return doc, problems


def _flow_depth_problem(file: Path, text: str) -> Problem | None:
    """A problem if flow brackets (``[``, ``{``) nest deeper than :data:`MAX_DEPTH`, found in one
    pass before parsing (quotes and comments are skipped; a bracket inside a plain scalar counts,
    which only matters for a scalar holding more than fifty of them)."""
    depth, line, quote, i, n = 0, 1, "", 0, len(text)
    while i < n:
        char = text[i]
        if char == "\n":
            line += 1
        if quote:
            if char == "\\" and quote == '"':
                i += 1
            elif char == quote:
                quote = ""
        elif char in "'\"" and (i == 0 or text[i - 1] in " \t\n[{,:"):
            quote = char
        elif char == "#" and (i == 0 or text[i - 1] in " \t\n"):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return Problem(file, line, "", f"the spec nests more than {MAX_DEPTH} levels of [ ] or {{ }}",
                               "flatten it: audit specs nest a few levels (see docs/spec.md)")
        elif char in "]}":
            depth = max(0, depth - 1)
        i += 1
    return None


def _unfit_file(file: Path) -> Problem | None:
    """A problem if ``file`` is not a regular file of a spec's size; never opens it (a FIFO would block)."""
    import stat

    try:
        info = os.stat(file)
    except OSError as exc:
        if os.path.islink(file):
            return Problem(file, None, "", f"the symbolic link leads nowhere ({exc.strerror or exc}: a loop, or its "
                                           f"target is missing)", "point the link at a spec file, or remove it")
        return Problem(file, None, "", f"cannot read the file: {exc.strerror or exc}",
                       "check that the file exists and is readable")
    if not stat.S_ISREG(info.st_mode):
        return Problem(file, None, "", f"is {file_kind(file)}, not a spec file", "give the path of a YAML file")
    if info.st_size > MAX_BYTES:
        return Problem(file, None, "", f"the file holds {info.st_size} bytes; a spec is at most {MAX_BYTES}",
                       "is this really an audit spec? Specs are a few hundred bytes of YAML")
    return None


class _Budget:
    """How many values the conversion has produced so far (aliases included, each time used)."""

    def __init__(self) -> None:
        self.nodes = 0


class _TooLarge(Exception):
    """The document expands past a limit: conversion stops at once with this one problem."""

    def __init__(self, problem: Problem):
        super().__init__(str(problem))
        self.problem = problem


def _convert(node: yaml.Node, path: tuple, doc: Doc, problems: list[Problem], env: Mapping[str, str],
             budget: _Budget) -> Any:
    line = node.start_mark.line + 1
    budget.nodes += 1
    if budget.nodes > MAX_NODES:
        raise _TooLarge(Problem(doc.file, line, dotted(path),
                                f"the spec expands to more than {MAX_NODES} values (YAML aliases '*name' count the "
                                f"whole value they repeat, each time they are used)",
                                "write the values out instead of nesting aliases; a spec this large is not an audit "
                                "spec"))
    if len(path) > MAX_DEPTH:
        raise _TooLarge(Problem(doc.file, line, dotted(path[:5]) + "...",
                                f"the spec nests more than {MAX_DEPTH} levels of mappings and lists",
                                "flatten it: audit specs nest a few levels (see docs/spec.md)"))
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
            try:
                key = _scalar(key_node)
            except (ValueError, OverflowError, yaml.YAMLError):
                key = key_node.value
            key = key if isinstance(key, str) else str(key)
            if key in out:
                first = doc.lines.get(path + (key,))
                problems.append(Problem(doc.file, key_node.start_mark.line + 1, dotted(path + (key,)),
                                        f"duplicate key '{key}' (first at line {first})",
                                        "keep one of them; YAML would silently use the last"))
                continue
            doc.lines[path + (key,)] = key_node.start_mark.line + 1
            out[key] = _convert(value_node, path + (key,), doc, problems, env, budget)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, path + (i,), doc, problems, env, budget) for i, item in enumerate(node.value)]
    try:
        value = _scalar(node)
    except (ValueError, OverflowError, yaml.YAMLError) as exc:   # e.g. a timestamp with month 13
        problems.append(Problem(doc.file, line, dotted(path), f"the value {node.value!r} cannot be read: {exc}",
                                "quote it to make it a string, or correct it"))
        return None
    if isinstance(value, str) and "$" in value:
        value = _interpolate(value, path, line, doc.file, problems, env)
    return value


def _scalar(node: yaml.ScalarNode) -> Any:
    try:
        return _SAFE.construct_object(node)
    finally:
        _SAFE.constructed_objects.clear()   # the constructor caches by node: keep nothing of old documents


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
