"""The one vocabulary type: class names and the category ids they get in the output file.

A vocabulary comes from a dataset's categories (keeping their ids, so named pseudo-labels can be
evaluated against that dataset) or from ``--classes`` (a file with one name per line, or
``"a,b,c"``; ids 1..N in the given order). It iterates as ``(category id, name)`` pairs, the order of the
class-probability columns of every predictor. ``restrict`` picks known classes of a closed vocabulary
(a trained model without a CLIP head). The CLIP text embeddings of a vocabulary live in ``uvis.pseudo.vocabulary``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from uvis.data.ytvis import Category
from uvis.errors import UserError

#: The starting vocabulary for plain videos (no dataset categories, no --classes): the one of configs/videos.toml.
STARTING_VOCABULARY: tuple[str, ...] = ("person", "dog", "cat", "car", "bicycle", "horse", "bird", "boat", "ball",
                                        "skateboard")


@dataclass(frozen=True)
class Vocabulary:
    """Class names and the category ids they get in the output file."""

    names: tuple[str, ...]
    ids: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.ids):
            raise ValueError("names and ids differ in length")

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[tuple[int, str]]:
        """``(category id, name)`` per class, in column order."""
        return iter(zip(self.ids, self.names, strict=True))

    def __getitem__(self, index: int) -> tuple[int, str]:
        return self.ids[index], self.names[index]

    @staticmethod
    def from_pairs(pairs: Sequence[tuple[int, str]]) -> Vocabulary:
        """From ``(category id, name)`` pairs (a run's ``vocabulary.json``), ids kept."""
        return Vocabulary(tuple(str(n) for _, n in pairs), tuple(int(i) for i, _ in pairs))

    def restrict(self, names: Sequence[str], *, fix: str | None = None) -> tuple[Vocabulary, list[int]]:
        """The sub-vocabulary for ``names`` (ids and spelling kept) and the columns it keeps; unknown names are a
        UserError (``fix``: what to do instead)."""
        by_name = {n.lower(): i for i, n in enumerate(self.names)}
        missing = [n for n in names if n.lower() not in by_name]
        if missing:
            known = ", ".join(self.names[:20])
            raise UserError(
                f"class name(s) {', '.join(missing)} not in the model's vocabulary "
                f"({known}{', ...' if len(self) > 20 else ''})",
                fix=fix or OPEN_VOCABULARY_FIX,
            )
        cols = [by_name[n.lower()] for n in names]
        return Vocabulary(tuple(self.names[c] for c in cols), tuple(self.ids[c] for c in cols)), cols

    @staticmethod
    def from_names(names: list[str], *, source: str | Path | None = None) -> Vocabulary:
        """Ids 1..N in order; empty or duplicate names are a UserError."""
        cleaned = [n.strip() for n in names]
        for i, n in enumerate(cleaned):
            if not n:
                raise UserError(f"class {i + 1} has an empty name", path=source,
                                fix="remove empty entries (blank lines or doubled commas)")
        seen: dict[str, int] = {}
        for i, n in enumerate(cleaned):
            key = n.lower()
            if key in seen:
                raise UserError(f"class '{n}' is listed twice (entries {seen[key] + 1} and {i + 1})", path=source,
                                fix="list every class once")
            seen[key] = i
        if not cleaned:
            raise UserError("no class names given", path=source, fix="give at least one class name")
        return Vocabulary(tuple(cleaned), tuple(range(1, len(cleaned) + 1)))

    @staticmethod
    def from_names_checked(names: list[object], *, source: str | Path | None = None) -> Vocabulary:
        """``from_names`` for names read from a file, where an entry may be anything: non-text is an error too."""
        for i, n in enumerate(names):
            if not isinstance(n, str):
                raise UserError(f"class {i + 1} is {n!r}, not a name", path=source, fix='write the names as text, e.g. ["dog", "cat"]')
        return Vocabulary.from_names([str(n) for n in names], source=source)

    @staticmethod
    def from_categories(categories: list[Category]) -> Vocabulary:
        """A dataset's categories, keeping their ids (so the output can be evaluated on that dataset)."""
        if not categories:
            raise UserError("the dataset has no categories", fix="pass the class names as classes=\"a,b,c\"", param="classes")
        voc = Vocabulary.from_names([c.name for c in categories])
        return Vocabulary(voc.names, tuple(int(c.id) for c in categories))

    def categories(self) -> list[Category]:
        return [Category(id=i, name=n) for i, n in zip(self.ids, self.names, strict=True)]

    def prompt_names(self) -> list[str]:
        """Names as they go into prompts: dataset names like ``earless_seal`` read as ``earless seal``."""
        return [n.replace("_", " ") for n in self.names]


def parse_classes(spec: str, *, file: bool = False) -> Vocabulary:
    """``--classes``: an existing file (one name per line) or a comma-separated list (``file``: only a file)."""
    path = Path(spec)
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8-sig")  # a leading byte-order mark (Windows editors) is dropped
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"cannot read class list ({type(e).__name__})", path=path,
                            fix="pass a UTF-8 text file with one class name per line") from None
        lines = text.splitlines()
        while lines and not lines[-1].strip():  # a trailing newline is not an empty class
            lines.pop()
        return Vocabulary.from_names(lines, source=path)
    if file or ("," not in spec and (path.suffix or "/" in spec)):
        raise UserError("class list file not found", path=path,
                        fix="pass an existing file or a comma-separated list such as \"person,dog,car\"")
    return Vocabulary.from_names(spec.split(","), source="--classes")


def choose_vocabulary(
    classes: str | Sequence[str] | None,
    *candidates: Sequence[Category],
    source: str | Path | None = None,
    fix: str = "pass the class names as classes=\"a,b,c\" or classes=FILE",
) -> Vocabulary:
    """The vocabulary to name with: ``classes`` when given (a ``--classes`` spec or a list of names), else the
    first non-empty of ``candidates`` (e.g. the dataset's categories, then the file's own), else a UserError."""
    if isinstance(classes, str):
        return parse_classes(classes)
    if classes is not None:  # an empty list is a mistake, not "use the dataset's"
        return Vocabulary.from_names(list(classes))
    for categories in candidates:
        if categories:
            return Vocabulary.from_categories(list(categories))
    raise UserError("no vocabulary: the input has no categories", path=source, fix=fix)


OPEN_VOCABULARY_FIX = ("pick classes the model knows; free-form class names need an open-vocabulary predictor "
                       "(CLIP embeddings, as in model=none)")


def class_names(classes: str | Path | Sequence[str]) -> list[str]:
    """Class names from a ``--classes`` spec (a file or ``"a,b,c"``, see ``parse_classes``), a file path or a list
    of names (stripped; empty or repeated names are a UserError)."""
    if isinstance(classes, Path):
        return list(parse_classes(str(classes), file=True).names)
    if isinstance(classes, str):
        return list(parse_classes(classes).names)
    return list(Vocabulary.from_names([str(n) for n in classes]).names)


def clean_names(names: Sequence[str]) -> list[str]:
    """Class names to report, stripped, blank ones dropped; none left is a UserError."""
    cleaned = [str(n).strip() for n in names if str(n).strip()]
    if not cleaned:
        raise UserError("empty class list", fix="pass class names, e.g. classes=dog,skateboard", param="classes")
    return cleaned
