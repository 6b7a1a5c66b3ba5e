"""The class vocabulary CLIP names masks with, and its prompt-ensembled text embeddings.

A vocabulary comes from a dataset's categories (keeping their ids, so named pseudo-labels can be
evaluated against that dataset) or from ``--classes`` (a file with one name per line, or
``"a,b,c"``; ids 1..N in the given order).

Each class embedding is the L2-normalised mean of the L2-normalised text embeddings of the class
name put into every prompt template (the CLIP paper's prompt ensembling). They are computed once per
(CLIP identity -- architecture, activation, tag, weights file content, input size, normalisation --,
templates, classes) and cached in memory and, when a cache folder is given, on disk.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from uvis.data import atomic
from uvis.data.ytvis import Category
from uvis.errors import UserError
from uvis.pseudo.clip_model import ClipModel

# The 80 ImageNet prompt templates of the CLIP paper (Radford et al. 2021, prompt-engineering notebook).
IMAGENET_TEMPLATES: tuple[str, ...] = (
    "a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.", "a photo of the hard to see {}.",
    "a low resolution photo of the {}.", "a rendering of a {}.", "graffiti of a {}.", "a bad photo of the {}.",
    "a cropped photo of the {}.", "a tattoo of a {}.", "the embroidered {}.", "a photo of a hard to see {}.",
    "a bright photo of a {}.", "a photo of a clean {}.", "a photo of a dirty {}.", "a dark photo of the {}.",
    "a drawing of a {}.", "a photo of my {}.", "the plastic {}.", "a photo of the cool {}.",
    "a close-up photo of a {}.", "a black and white photo of the {}.", "a painting of the {}.",
    "a painting of a {}.", "a pixelated photo of the {}.", "a sculpture of the {}.", "a bright photo of the {}.",
    "a cropped photo of a {}.", "a plastic {}.", "a photo of the dirty {}.", "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.", "a photo of the {}.", "a good photo of the {}.", "a rendering of the {}.",
    "a {} in a video game.", "a photo of one {}.", "a doodle of a {}.", "a close-up photo of the {}.",
    "a photo of a {}.", "the origami {}.", "the {} in a video game.", "a sketch of a {}.", "a doodle of the {}.",
    "a origami {}.", "a low resolution photo of a {}.", "the toy {}.", "a rendition of the {}.",
    "a photo of the clean {}.", "a photo of a large {}.", "a rendition of a {}.", "a photo of a nice {}.",
    "a photo of a weird {}.", "a blurry photo of a {}.", "a cartoon {}.", "art of a {}.", "a sketch of the {}.",
    "a embroidered {}.", "a pixelated photo of a {}.", "itap of the {}.", "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.", "a plushie {}.", "a photo of the nice {}.", "a photo of the small {}.",
    "a photo of the weird {}.", "the cartoon {}.", "art of the {}.", "a drawing of the {}.",
    "a photo of the large {}.", "a black and white photo of a {}.", "the plushie {}.", "a dark photo of a {}.",
    "itap of a {}.", "graffiti of the {}.", "a toy {}.", "itap of my {}.", "a photo of a cool {}.",
    "a photo of a small {}.", "a tattoo of the {}.",
)

# The 7-template subset the CLIP authors found nearly as good as all 80 (8x fewer text passes).
SHORT_TEMPLATES: tuple[str, ...] = (
    "itap of a {}.", "a bad photo of the {}.", "a origami {}.", "a photo of the large {}.",
    "a {} in a video game.", "art of the {}.", "a photo of the small {}.",
)

#: The starting vocabulary for plain videos (no dataset categories, no --classes): the one of configs/videos.toml.
STARTING_VOCABULARY: tuple[str, ...] = ("person", "dog", "cat", "car", "bicycle", "horse", "bird", "boat", "ball",
                                        "skateboard")

TEMPLATE_SETS = {"imagenet80": IMAGENET_TEMPLATES, "short7": SHORT_TEMPLATES, "single": ("a photo of a {}.",)}


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


def parse_classes(spec: str) -> Vocabulary:
    """``--classes``: an existing file (one name per line) or a comma-separated list."""
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
    if "," not in spec and (path.suffix or "/" in spec):
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


def _cache_key(clip: ClipModel, vocabulary: Vocabulary, templates: tuple[str, ...]) -> str:
    payload = json.dumps({"clip": clip.identity(), "templates": list(templates),
                          "classes": list(vocabulary.prompt_names())}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def class_embeddings(
    clip: ClipModel,
    vocabulary: Vocabulary,
    templates: tuple[str, ...] = IMAGENET_TEMPLATES,
    *,
    cache_dir: str | Path | None = None,
) -> torch.Tensor:
    """Vx D prompt-ensembled class embeddings (float32, unit rows), cached in memory and optionally on disk."""
    if not templates or any("{}" not in t for t in templates):
        raise UserError("every prompt template must contain '{}'", fix="write templates like 'a photo of a {}.'")
    key = _cache_key(clip, vocabulary, templates)
    cache = clip.text_cache
    if key in cache:
        return cache[key]
    disk = Path(cache_dir) / f"text-{key}.pt" if cache_dir is not None else None
    if disk is not None and disk.is_file():
        try:
            emb = torch.load(disk, map_location="cpu", weights_only=True)
            if emb.shape == (len(vocabulary), clip.embed_dim):
                cache[key] = emb
                return emb
        except Exception:  # a damaged cache file is recomputed below
            pass
    names = vocabulary.prompt_names()
    texts = [t.format(n) for n in names for t in templates]
    per_text = clip.encode_text(texts).view(len(names), len(templates), -1)
    emb = F.normalize(per_text.mean(dim=1), dim=-1)
    cache[key] = emb
    if disk is not None:
        atomic.write_with(disk, lambda tmp: torch.save(emb, tmp))
    return emb
