"""ose.pipeline.row_cache: resumable CSV row caches, and the two caches built on it."""

import pytest

from ose.pipeline import row_cache
from ose.search import cost_model, surrogate

# Files as the latency cache and a surrogate shard were written before `ose.pipeline.row_cache` existed
# (csv's excel dialect: CRLF line ends; floats as repr). They must read back and rewrite unchanged.
LATENCY_CACHE = (
    b"space,arch,batch_size,seq_len,threads,warmup,repeats,median_ms,iqr_ms\r\n"
    b"bert,D2-A4-H36-I37,1,16,1,2,5,0.30000000000000004,0.3333333333333333\r\n"
    b"bert,D2-A4-H36-I37/B,2,16,1,2,5,12.5,1e-05\r\n"
    b"small,D1-A1-H8-I5,1,16,1,2,5,0.6666666666666666,0.0\r\n"
)
SHARD = (  # the last row is a reference run's: held-out losses logged at steps 2 and 4
    b"arch,theta,error,train_loss,seconds,losses,rank,settings\r\n"
    b"D1-A2-H16-I23,slow,0.30000000000000004,nan,0.3333333333333333,{},0,abc123\r\n"
    b"D1-A2-H16-I23,fast,0.6666666666666666,10.0,1e-05,{},1,abc123\r\n"
    b'D1-A2-H16-I23,slow,0.5,0.25,2.0,"{""2"": 0.75, ""4"": 0.5}",0,other1\r\n'
)
COLUMNS = ("name", "setting", "value", "note")


def test_missing_or_empty_file_has_no_rows(tmp_path):
    assert row_cache.read_rows(tmp_path / "absent.csv", ("name",)) == {}
    (tmp_path / "empty.csv").write_text("")
    assert row_cache.read_rows(tmp_path / "empty.csv", ("name",), {"setting": "a"}) == {}


def test_rows_round_trip_by_key_with_floats_exact(tmp_path):
    path = tmp_path / "sub" / "cache.csv"  # the folder is made
    rows = [
        {"name": "x", "setting": "a", "value": 0.1 + 0.2, "note": 'comma, and "quote"'},
        {"name": "y", "setting": "a", "value": 1e-300, "note": "", "ignored": 7},
    ]
    assert row_cache.write_rows(path, COLUMNS, rows) == path
    read = row_cache.read_rows(path, ("name", "setting"))
    assert list(read) == [("x", "a"), ("y", "a")]
    expected = {"name": "x", "setting": "a", "value": "0.30000000000000004", "note": rows[0]["note"]}
    assert read[("x", "a")] == expected
    assert float(read[("y", "a")]["value"]) == 1e-300
    assert [p.name for p in path.parent.iterdir()] == ["cache.csv"]  # no temporary file left behind


def test_where_filters_rows_and_duplicates_keep_first_place_last_row(tmp_path):
    path = tmp_path / "cache.csv"
    rows = [
        {"name": "x", "setting": "a", "value": 1.0},
        {"name": "y", "setting": "b", "value": 2.0},
        {"name": "z", "setting": "a", "value": 3.0},
        {"name": "x", "setting": "a", "value": 4.0},
    ]
    row_cache.write_rows(path, COLUMNS, rows)
    read = row_cache.read_rows(path, ("name",), {"setting": "a"})
    assert [(k, r["value"]) for k, r in read.items()] == [(("x",), "4.0"), (("z",), "3.0")]
    assert row_cache.read_rows(path, ("name",), {"setting": "c"}) == {}
    assert len(row_cache.read_rows(path, ("name", "setting"))) == 3


def test_missing_columns_are_named(tmp_path):
    path = row_cache.write_rows(tmp_path / "cache.csv", COLUMNS, [{"name": "x"}])
    with pytest.raises(ValueError, match=r"cache\.csv: no column\(s\) \['arch', 'settings'\]"):
        row_cache.read_rows(path, ("name", "arch"), {"settings": "s"})


def test_a_failed_rewrite_leaves_the_old_file(tmp_path):
    path = row_cache.write_rows(tmp_path / "cache.csv", COLUMNS, [{"name": "x", "value": 1.0}])
    before = path.read_bytes()

    def rows():
        yield {"name": "y", "value": 2.0}
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed"):
        row_cache.write_rows(path, COLUMNS, rows())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["cache.csv"]


def test_latency_cache_reads_and_rewrites_byte_identical(tmp_path):
    path = tmp_path / "latency_cache.csv"
    path.write_bytes(LATENCY_CACHE)
    cache = cost_model.read_cache(path)
    settings = cost_model.LatencySettings(2, 16, 1, 2, 5)
    assert cache[("bert", "D2-A4-H36-I37/B", 2, 16, 1, 2, 5)] == cost_model.Timing(12.5, 1e-05, 5)
    assert cost_model._key("bert", "D2-A4-H36-I37/B", settings) in cache
    assert cache[("bert", "D2-A4-H36-I37", 1, 16, 1, 2, 5)].median_ms == 0.1 + 0.2
    again = tmp_path / "again.csv"
    cost_model._write_cache(again, cache)
    assert again.read_bytes() == LATENCY_CACHE


def test_surrogate_shard_reads_by_settings_and_rewrites_byte_identical(tmp_path):
    (tmp_path / "rank0.csv").write_bytes(SHARD)
    rows = surrogate.read_shards(tmp_path, "abc123")
    assert list(rows) == [("D1-A2-H16-I23", "slow"), ("D1-A2-H16-I23", "fast")]
    slow = rows[("D1-A2-H16-I23", "slow")]
    assert slow["error"] == 0.1 + 0.2 and slow["seconds"] == 1 / 3 and slow["rank"] == "0"
    reference = surrogate.read_shards(tmp_path, "other1")[("D1-A2-H16-I23", "slow")]
    assert reference["error"] == 0.5 and surrogate.logged_losses(reference) == {2: 0.75, 4: 0.5}
    assert surrogate.logged_losses(slow) == {}
    assert surrogate.read_shards(tmp_path, "nothing") == {}
    out = tmp_path / "out" / "rank0.csv"
    surrogate._write_rows(out, [*rows.values(), *surrogate.read_shards(tmp_path, "other1").values()])
    assert out.read_bytes() == SHARD


def test_surrogate_shards_later_files_win(tmp_path):
    (tmp_path / "rank0.csv").write_bytes(SHARD)
    later = SHARD.replace(b"0.6666666666666666,10.0", b"0.75,10.0")
    (tmp_path / "rank1.csv").write_bytes(later)
    assert surrogate.read_shards(tmp_path, "abc123")[("D1-A2-H16-I23", "fast")]["error"] == 0.75
    assert surrogate.read_shards(tmp_path, "abc123", "rank0.csv")[("D1-A2-H16-I23", "fast")]["error"] == 2 / 3
