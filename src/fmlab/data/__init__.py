"""Small text data shipped with fmlab, and readers for the user's own files.

``sentences`` — 200 English sentences written for fmlab (no download): 5 topics
(animals, food, weather, sport, technology) × 20 sentences in the present tense and
the same 20 rewritten in the past tense. Labels ``topic`` and ``tense``. Because each
past sentence is a near-minimal pair of a present one, a probe for ``tense`` cannot
succeed by reading the content words, and a probe for ``topic`` cannot by the verb
forms.

A user file is ``.txt`` (one text per line) or ``.jsonl`` (objects with a ``text``
field; every other string field becomes a label).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fmlab.errors import UserInputError
from fmlab.jsonl import read_objects

HERE = Path(__file__).parent
BUILTIN = {"sentences": HERE / "sentences.jsonl"}


@dataclass(frozen=True)
class TextData:
    name: str
    texts: tuple[str, ...]
    labels: dict[str, tuple[str, ...]]  # label name -> one value per text

    def label_ids(self, label: str) -> tuple[list[int], list[str]]:
        """Integer class ids of ``label`` (classes sorted) and the class names."""
        if label not in self.labels:
            known = ", ".join(self.labels) or "(none)"
            raise UserInputError(f"data {self.name!r} has no label {label!r}; it has: {known}")
        classes = sorted(set(self.labels[label]))
        index = {c: i for i, c in enumerate(classes)}
        return [index[v] for v in self.labels[label]], classes


def load_texts(name_or_path: str) -> TextData:
    """A builtin data set by name, or a ``.txt`` / ``.jsonl`` file."""
    path = BUILTIN.get(name_or_path) or Path(name_or_path).expanduser()
    if not path.is_file():
        raise UserInputError(
            f"data {name_or_path!r} is neither a builtin ({', '.join(BUILTIN)}) nor a file"
        )
    if path.suffix == ".jsonl":
        return _read_jsonl(name_or_path, path)
    if path.suffix == ".txt":
        texts = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
        return _checked(TextData(name_or_path, texts, {}))
    raise UserInputError(f"data file {path} must be .txt (one text per line) or .jsonl")


def _read_jsonl(name: str, path: Path) -> TextData:
    rows = []
    for where, row in read_objects(path, "data file", 'an object with a "text" string'):
        if not isinstance(row.get("text"), str):
            raise UserInputError(f'{where}: each line needs a "text" string field')
        rows.append(row)
    keys = [k for k in rows[0] if k != "text" and isinstance(rows[0][k], str)] if rows else []
    labels = {k: tuple(str(r.get(k, "")) for r in rows) for k in keys}
    return _checked(TextData(name, tuple(r["text"] for r in rows), labels))


def _checked(data: TextData) -> TextData:
    if len(data.texts) < 4:
        raise UserInputError(f"data {data.name!r} has {len(data.texts)} texts; need at least 4")
    return data
