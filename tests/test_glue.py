"""ose.data.glue: the classic GLUE TSV layout (tiny fixtures, and the real files when present) and the
`datasets` hub path (offline failure; success on a local copy)."""

import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from ose.data.glue import (
    GLUE_TASKS,
    HubDatasetUnavailable,
    hub_to_task,
    load_hub_dataset,
    load_hub_task,
    read_glue_file,
    read_glue_task,
)
from ose.data.tasks import eval_texts

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
FIXTURE_GLUE = HERE / "fixtures" / "glue"
FIXTURE_HUB = HERE / "fixtures" / "hub" / "glue"
# The real files live in shared/ beside the repository (or inside it, on a copied work tree).
SHARED_GLUE = next(
    (p for p in (REPO.parent / "shared/data/glue", REPO / "shared/data/glue") if p.is_dir()), None
)
needs_shared = pytest.mark.skipif(SHARED_GLUE is None, reason="shared/data/glue is not present")

# (train rows, {test split: rows}) of the fixture files; QQP train has one malformed row more.
FIXTURE_SIZES = {
    "cola": (7, {"test": 5}),
    "sst2": (7, {"test": 3}),
    "mrpc": (5, {"test": 3}),
    "qqp": (5, {"test": 3}),
    "stsb": (5, {"test": 3}),
    "mnli": (7, {"test": 3, "test_mismatched": 2}),
    "qnli": (5, {"test": 3}),
    "rte": (7, {"test": 3}),
    "wnli": (5, {"test": 3}),
}


@pytest.mark.parametrize("task", GLUE_TASKS)
def test_fixture_glue_task_reads_every_file(task):
    data = read_glue_task(FIXTURE_GLUE, task, dev_fraction=0.3, seed=1)
    train_rows, tests = FIXTURE_SIZES[task]
    assert len(data.train) + len(data.dev) == train_rows
    assert {k: len(v) for k, v in data.splits().items() if k.startswith("test")} == tests
    assert data.provenance["official_sizes"] == {"train": train_rows, **tests}
    for frame in data.splits().values():
        assert list(frame.columns) == [*data.text_columns, "label"]
        for column in data.text_columns:
            assert frame[column].map(lambda t: t == t.strip() and "\t" not in t and t).all()


def test_fixture_quirks():
    mrpc = read_glue_file(FIXTURE_GLUE / "MRPC/train.tsv", "mrpc")
    assert mrpc["text_a"][0].startswith("Amrozi") and mrpc["label"].tolist() == [1, 0, 1, 0, 1]
    cola_dev = read_glue_file(FIXTURE_GLUE / "CoLA/dev.tsv", "cola")  # no final newline
    assert cola_dev["text"].iloc[-1] == "Left she that know I." and len(cola_dev) == 5
    assert read_glue_file(FIXTURE_GLUE / "SST-2/dev.tsv", "sst2")["text"][2] == '" a glib , slick mess'
    qqp = read_glue_file(FIXTURE_GLUE / "QQP/train.tsv", "qqp")
    assert qqp.attrs["skipped_malformed_rows"] == 1
    assert qqp["text_b"].iloc[-1] == 'Who is "John"?'
    qnli = read_glue_file(FIXTURE_GLUE / "QNLI/train.tsv", "qnli")
    assert "Hope\u2028(formerly" in qnli["text_b"][3]
    mnli = read_glue_task(FIXTURE_GLUE, "mnli", dev_fraction=0.3, seed=0)
    assert mnli.test["label"].tolist() == [1, 2, 0]  # neutral, contradiction, entailment
    stsb = read_glue_file(FIXTURE_GLUE / "STS-B/train.tsv", "stsb")
    assert stsb["label"].tolist() == [5.0, 3.8, 0.0, 2.5, 4.75]


def test_malformed_row_is_an_error_with_its_line(tmp_path):
    bad = tmp_path / "train.tsv"
    bad.write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\tonly two\n")
    with pytest.raises(ValueError, match=r"train.tsv:3: 2 tab-separated fields"):
        read_glue_file(bad, "rte")
    bad.write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n")
    with pytest.raises(ValueError, match="label 'maybe'"):
        read_glue_file(bad, "rte")


def test_glue_dev_comes_from_train_and_official_dev_is_test():
    official_train = read_glue_file(FIXTURE_GLUE / "RTE/train.tsv", "rte")
    official_dev = read_glue_file(FIXTURE_GLUE / "RTE/dev.tsv", "rte")
    task = read_glue_task(FIXTURE_GLUE, "rte", dev_fraction=3 / 7, seed=4)
    pd.testing.assert_frame_equal(task.test, official_dev)
    ours = pd.concat([task.train, task.dev]).sort_values("text_a").reset_index(drop=True)
    pd.testing.assert_frame_equal(ours, official_train.sort_values("text_a").reset_index(drop=True))
    assert Counter(task.dev["label"]) == Counter({0: 2, 1: 1})  # 4 entailment, 3 not, stratified
    again = read_glue_task(FIXTURE_GLUE, "rte", dev_fraction=3 / 7, seed=4)
    pd.testing.assert_frame_equal(task.dev, again.dev)


def test_unknown_glue_task_and_missing_folder():
    with pytest.raises(ValueError, match=r"task must be one of \['cola', 'sst2'.*got 'sst-2'"):
        read_glue_task(FIXTURE_GLUE, "sst-2")
    with pytest.raises(FileNotFoundError, match="no RTE/ folder"):
        read_glue_task(HERE, "rte")


# The real GLUE files: official row counts and label counts (shared/data/glue/PROVENANCE.md).
OFFICIAL = {
    "rte": (2490, 277, {"train": {0: 1249, 1: 1241}, "test": {0: 146, 1: 131}}),
    "mrpc": (3668, 408, {"train": {1: 2474, 0: 1194}, "test": {1: 279, 0: 129}}),
    "cola": (8551, 1043, {"train": {1: 6023, 0: 2528}, "test": {1: 721, 0: 322}}),
    "stsb": (5749, 1500, None),
    "wnli": (635, 71, {"train": {1: 312, 0: 323}, "test": {1: 31, 0: 40}}),
    "sst2": (67349, 872, {"train": {1: 37569, 0: 29780}, "test": {1: 444, 0: 428}}),
}


@needs_shared
@pytest.mark.parametrize("task", list(OFFICIAL))
def test_real_glue_files_have_the_official_counts(task):
    n_train, n_dev, labels = OFFICIAL[task]
    data = read_glue_task(SHARED_GLUE, task, dev_fraction=0.1, seed=0)
    assert data.provenance["official_sizes"] == {"train": n_train, "test": n_dev}
    assert data.provenance["skipped_malformed_rows"] == 0
    assert len(data.train) + len(data.dev) == n_train and len(data.test) == n_dev
    if labels is None:
        everything = pd.concat([data.train, data.dev, data.test])["label"]
        assert everything.between(0, 5).all()
    else:
        train_labels = Counter(pd.concat([data.train, data.dev])["label"])
        assert train_labels == labels["train"] and Counter(data.test["label"]) == labels["test"]


@needs_shared
def test_real_glue_field_starting_with_a_quote_stays_one_field():
    """A csv reader would open a quoted field here and swallow the following lines."""
    mrpc = read_glue_file(SHARED_GLUE / "MRPC/dev.tsv", "mrpc")
    assert mrpc["text_b"][0] == '" The foodservice pie business does not fit our long-term growth strategy .'
    assert mrpc["text_a"][1].startswith("Magnarelli said Racicot") and len(mrpc) == 408


@needs_shared
def test_sst2_test_text_is_found_in_rotten_tomatoes():
    """SST-2 was built from the RT snippets: most of its test split is in the RT corpus."""
    from ose.data.corpus import match_key, read_corpus

    rt = {match_key(t) for t in read_corpus("rotten_tomatoes").texts}
    sst2 = read_glue_task(SHARED_GLUE, "sst2", seed=0)
    leaked = sum(match_key(t) in rt for t in sst2.test["text"])
    assert leaked == 680
    built_exclusion = {match_key(t) for t in eval_texts(sst2)}
    assert len(built_exclusion & rt) > leaked  # our seeded dev part of train leaks too


# Hub path


def test_hub_offline_and_not_cached_fails_at_once(tmp_path):
    """In a fresh process with an empty HF cache, so a cached copy elsewhere cannot hide it."""
    script = textwrap.dedent(
        """
        import time
        from ose.data.glue import HubDatasetUnavailable, load_hub_task
        start = time.perf_counter()
        try:
            load_hub_task("glue", "rte")
        except HubDatasetUnavailable as error:
            print(f"{time.perf_counter() - start:.3f}")
            print(error)
        """
    )
    env = {
        **os.environ,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    seconds, message = done.stdout.split("\n", 1)
    assert float(seconds) < 5.0
    assert "'glue'" in message and "'rte'" in message and "HF_DATASETS_OFFLINE=1" in message
    assert "read_glue_task" in message and "go online" in message


def test_hub_success_on_a_local_copy_of_the_hub_repo(tmp_path):
    task = load_hub_task(str(FIXTURE_HUB), "rte", dev_fraction=0.25, seed=2, cache_dir=tmp_path)
    assert task.name == "rte" and task.text_columns == ("text_a", "text_b")
    assert (len(task.train), len(task.dev), len(task.test)) == (10, 3, 7)  # hub test (-1) unused
    assert task.test["text_a"][0] == "Every cat in the town sleeps at noon."
    assert task.test["label"].tolist() == [1, 0, 1, 0, 1, 0, 1]
    stsb = load_hub_task(str(FIXTURE_HUB), "stsb", dev_fraction=3 / 11, seed=2, cache_dir=tmp_path)
    assert stsb.is_regression and (len(stsb.train), len(stsb.dev), len(stsb.test)) == (8, 3, 6)
    assert stsb.train["label"].dtype == float


def test_hub_save_to_disk_copy_gives_the_same_task(tmp_path):
    import datasets

    hub = load_hub_dataset(str(FIXTURE_HUB), "rte", cache_dir=tmp_path / "cache")
    hub.save_to_disk(str(tmp_path / "saved" / "glue" / "rte"))
    a = load_hub_task(str(FIXTURE_HUB), "rte", seed=5, cache_dir=tmp_path / "cache")
    b = load_hub_task(str(tmp_path / "saved" / "glue"), "rte", seed=5)
    for split in ("train", "dev", "test"):
        pd.testing.assert_frame_equal(getattr(a, split), getattr(b, split))
    assert isinstance(load_hub_dataset(str(tmp_path / "saved" / "glue"), "rte"), datasets.DatasetDict)


def test_hub_mnli_maps_both_validation_sets():
    import datasets

    def split(n, offset):
        return datasets.Dataset.from_dict(
            {
                "premise": [f"p{offset + i}" for i in range(n)],
                "hypothesis": [f"h{offset + i}" for i in range(n)],
                "label": [i % 3 for i in range(n)],
            }
        )

    dataset = datasets.DatasetDict(
        train=split(9, 0), validation_matched=split(4, 100), validation_mismatched=split(5, 200)
    )
    task = hub_to_task(dataset, "glue", "mnli", dev_fraction=1 / 3, seed=0)
    assert (len(task.train), len(task.dev), len(task.test)) == (6, 3, 4)
    assert task.extra_tests["test_mismatched"]["text_a"].tolist() == [f"p{200 + i}" for i in range(5)]


def test_hub_bad_names_are_value_errors(tmp_path):
    with pytest.raises(ValueError, match=r"config must be one of \['cola', 'sst2'.*got 'sst-2'"):
        load_hub_task("glue", "sst-2")
    with pytest.raises(ValueError, match=r"config must be one of \['boolq', 'cb', 'rte'\]"):
        load_hub_task("super_glue", "copa")
    with pytest.raises(ValueError, match=r"benchmark must be one of \['glue', 'super_glue'\]"):
        load_hub_task("squad", "plain_text")
    with pytest.raises(HubDatasetUnavailable, match="'aps/super_glue', config 'boolq'"):
        load_hub_task("aps/super_glue", "boolq", cache_dir=tmp_path)


STSB_HEADER = "index\tsentence1\tsentence2\tscore\n"


@pytest.mark.parametrize("task", ["rte", "cola"])
def test_empty_file_is_an_error_naming_it(tmp_path, task):
    empty = tmp_path / "train.tsv"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"train\.tsv:1: empty file"):
        read_glue_file(empty, task)


def test_header_only_file_is_an_error(tmp_path):
    header_only = tmp_path / "dev.tsv"
    header_only.write_text("index\tsentence1\tsentence2\tlabel\n")
    with pytest.raises(ValueError, match=r"dev\.tsv:2: no data rows after the header"):
        read_glue_file(header_only, "rte")


@pytest.mark.parametrize(
    "score,message",
    [
        ("abc", "score 'abc' is not a number"),
        ("nan", "score 'nan' is not a finite number"),
        ("inf", "score 'inf' is not a finite number"),
    ],
)
def test_bad_regression_label_names_file_and_line(tmp_path, score, message):
    bad = tmp_path / "train.tsv"
    bad.write_text(f"{STSB_HEADER}0\ta\tb\t4.5\n1\tc\td\t{score}\n")
    with pytest.raises(ValueError, match=rf"train\.tsv:3: {message}"):
        read_glue_file(bad, "stsb")
