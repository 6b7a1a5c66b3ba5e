import pytest
import torch
from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES

from tiny_clip import load_tiny_clip, save_tiny_clip
from uvis.data.vocabulary import Vocabulary, parse_classes
from uvis.data.ytvis import Category
from uvis.errors import UserError
from uvis.pseudo.vocabulary import IMAGENET_TEMPLATES, SHORT_TEMPLATES, class_embeddings


def test_templates_match_the_clip_paper_lists():
    assert len(IMAGENET_TEMPLATES) == 80 and len(set(IMAGENET_TEMPLATES)) == 80
    assert list(IMAGENET_TEMPLATES) == [t("{}") for t in OPENAI_IMAGENET_TEMPLATES]
    assert list(SHORT_TEMPLATES) == [t("{}") for t in SIMPLE_IMAGENET_TEMPLATES]


def test_parse_comma_list_and_file(tmp_path):
    voc = parse_classes(" person, dog ,giant_panda")
    assert voc.names == ("person", "dog", "giant_panda") and voc.ids == (1, 2, 3)
    assert voc.prompt_names() == ["person", "dog", "giant panda"]
    f = tmp_path / "classes.txt"
    f.write_text("cat\nsedan\n\n")  # trailing blank lines are not classes
    assert parse_classes(str(f)).names == ("cat", "sedan")
    assert parse_classes("person").names == ("person",)


def test_class_file_saved_with_a_byte_order_mark(tmp_path):
    """Windows editors often start UTF-8 files with a BOM; it is not part of the first class name."""
    path = tmp_path / "classes.txt"
    path.write_bytes("\ufeffperson\r\ndog\r\n".encode())
    assert parse_classes(str(path)).names == ("person", "dog")


@pytest.mark.parametrize("spec", ["a,,b", "a,b,", " , "])
def test_empty_names_are_user_errors(spec):
    with pytest.raises(UserError, match="empty name"):
        parse_classes(spec)


def test_duplicates_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="listed twice"):
        parse_classes("dog,cat,Dog")
    f = tmp_path / "c.txt"
    f.write_text("dog\n\ncat\n")
    with pytest.raises(UserError, match="empty name") as e:
        parse_classes(str(f))
    assert str(f) in str(e.value)


def test_missing_file_is_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        parse_classes(str(tmp_path / "nope.txt"))


def test_from_categories_keeps_dataset_ids():
    voc = Vocabulary.from_categories([Category(3, "dog"), Category(7, "cat")])
    assert voc.ids == (3, 7)
    assert [c.id for c in voc.categories()] == [3, 7]
    with pytest.raises(UserError):
        Vocabulary.from_categories([])


def test_class_embeddings_are_normalised_template_means_and_cached(tmp_path):
    clip = load_tiny_clip(save_tiny_clip(tmp_path))
    voc = Vocabulary.from_names(["dog", "sea_lion"])
    templates = ("a photo of a {}.", "art of the {}.")
    emb = class_embeddings(clip, voc, templates, cache_dir=tmp_path / "cache")
    assert emb.shape == (2, clip.embed_dim)
    per = clip.encode_text(["a photo of a sea lion.", "art of the sea lion."])
    expected = torch.nn.functional.normalize(per.mean(0), dim=0)
    assert torch.allclose(emb[1], expected, atol=1e-5)
    assert torch.allclose(emb.norm(dim=1), torch.ones(2), atol=1e-5)
    assert class_embeddings(clip, voc, templates) is emb  # in-memory cache
    files = list((tmp_path / "cache").iterdir())
    assert len(files) == 1
    fresh = load_tiny_clip(save_tiny_clip(tmp_path))  # same weights file: disk cache hit
    fresh.encode_text = None  # would fail if called
    assert torch.equal(class_embeddings(fresh, voc, templates, cache_dir=tmp_path / "cache"), emb)
    other = class_embeddings(clip, Vocabulary.from_names(["dog", "cat"]), templates, cache_dir=tmp_path / "cache")
    assert not torch.allclose(other[1], emb[1])
    assert len(list((tmp_path / "cache").iterdir())) == 2
