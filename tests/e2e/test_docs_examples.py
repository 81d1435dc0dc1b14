"""Execute every example of docs/extending.md, as a reader would run it.

Each ``<!-- example: NAME -->`` section becomes one test: the files of the earlier sections and of
this one are written into a fresh project with a ``photos/`` folder, each ``$ pytest ...`` command
is run, and the ``<!-- expect: ... -->`` outcome, the ``<!-- output: ... -->`` lines and the
``<!-- file PATH: TEXT -->`` contents (TEXT found in the file PATH the command wrote) are asserted.
"""

from __future__ import annotations

import re
import shlex
import shutil
from dataclasses import dataclass, field

import pytest

from support import PHOTOS, REPO

DOC = REPO / "docs" / "extending.md"
#: ImageNet-1k classes (tench, English springer, cassette player) the examples' `labelled/` folders are named by
LABELLED_WNIDS = ("n01440764", "n02102040", "n02979186")
FENCE = re.compile(r"```(\w+)\n(.*?)```", re.S)


@dataclass
class Step:
    files: dict[str, str] = field(default_factory=dict)
    command: list[str] = field(default_factory=list)
    expect: dict[str, int] = field(default_factory=dict)
    output: list[str] = field(default_factory=list)
    contains: list[tuple[str, str]] = field(default_factory=list)


def parse(text: str) -> list[tuple[str, list[Step]]]:
    examples = []
    for chunk in re.split(r"<!-- example: ", text)[1:]:
        name, body = chunk.split(" -->", 1)
        steps = [Step()]
        position = 0
        tokens = [(m.start(), "fence", m) for m in FENCE.finditer(body)]
        tokens += [(m.start(), "expect", m) for m in re.finditer(r"<!-- expect: (.*?) -->", body)]
        tokens += [(m.start(), "output", m) for m in re.finditer(r"<!-- output: (.*?) -->", body)]
        tokens += [(m.start(), "file", m) for m in re.finditer(r"<!-- file (\S+): (.*?) -->", body)]
        for position, kind, match in sorted(tokens, key=lambda t: t[0]):
            step = steps[-1]
            if kind == "fence":
                lang, code = match.group(1), match.group(2)
                first, _, rest = code.partition("\n")
                if first.startswith("# file: "):
                    if step.command:
                        steps.append(step := Step())
                    step.files[first[len("# file: "):].strip()] = rest
                elif lang == "console":
                    if step.command:
                        steps.append(step := Step())
                    step.command = shlex.split(code.strip().lstrip("$ "))[1:]
            elif kind == "expect":
                step.expect = {k: int(v) for k, v in (p.split("=") for p in match.group(1).split())}
            elif kind == "file":
                step.contains.append((match.group(1), match.group(2)))
            else:
                step.output.append(match.group(1))
        examples.append((name.strip(), steps))
    return examples


EXAMPLES = parse(DOC.read_text())


def test_the_page_has_examples():
    assert [name for name, _ in EXAMPLES][:2] == ["setup", "fixture"]
    assert all(step.command and step.expect for _, steps in EXAMPLES for step in steps)


@pytest.mark.parametrize("index", range(len(EXAMPLES)), ids=[name for name, _ in EXAMPLES])
def test_example(pytester, index):
    shutil.copytree(PHOTOS, pytester.path / "photos", ignore=shutil.ignore_patterns("*.md"))
    for i, photo in enumerate(sorted(PHOTOS.glob("*.jpg"))):     # labelled/: the photos in wnid class folders
        folder = pytester.path / "labelled" / LABELLED_WNIDS[i % len(LABELLED_WNIDS)]
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, folder / photo.name)
    earlier = {path: text for _, steps in EXAMPLES[:index] for step in steps for path, text in step.files.items()}
    for path, text in earlier.items():
        (pytester.path / path).parent.mkdir(parents=True, exist_ok=True)
        (pytester.path / path).write_text(text)
    for step in EXAMPLES[index][1]:
        for path, text in step.files.items():
            (pytester.path / path).parent.mkdir(parents=True, exist_ok=True)
            (pytester.path / path).write_text(text)
        result = pytester.runpytest_subprocess(*step.command, "-p", "no:cacheprovider")
        result.assert_outcomes(**step.expect)
        if step.output:
            result.stdout.fnmatch_lines(step.output)
        for path, text in step.contains:
            assert text in (pytester.path / path).read_text(encoding="utf-8"), (path, text)
