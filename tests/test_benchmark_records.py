"""Benchmark records, the appendix page that reads them, and the key that follows them."""

from __future__ import annotations

import json
import subprocess
import sys

from stroke_lib import cache
from stroke_lib.benchmark_records import measured_on_gpu, read_benchmarks, write_benchmark
from stroke_lib.paths import REPO_ROOT
from tests.conftest import run_chapter_text


def test_a_record_reads_back_and_a_bad_file_is_named_without_hiding_the_others(tmp_path):
    rows = [{"length": 512, "scan": "parallel scan", "seconds": 0.01, "x loop": 1.5}]
    path = write_benchmark("mamba_scan", rows, "cpu", {"repeats": 3}, tmp_path)
    (tmp_path / "broken.json").write_text("{ not json")
    (tmp_path / "other.json").write_text(json.dumps({"rows": []}))
    found, bad = read_benchmarks(tmp_path)
    assert list(found) == ["mamba_scan"] and path.name == "mamba_scan.json"
    record = found["mamba_scan"]
    assert record["rows"] == rows and record["device"] == "cpu" and record["device_name"].startswith("CPU")
    assert record["settings"] == {"repeats": 3} and "torch" in record["versions"]
    assert not measured_on_gpu(record) and measured_on_gpu({**record, "device": "cuda:1"})
    assert sorted(b.split(" ")[0] for b in bad) == ["broken.json", "other.json"]
    assert "not a benchmark record" in next(b for b in bad if b.startswith("other.json"))


def test_the_appendix_key_follows_its_records(tmp_path):
    source = REPO_ROOT / "notebooks" / "90_reproducibility.py"
    declared = {"records": {"default": '""'}, "profile": {"default": '"smoke"'}, "device": {"default": '"cpu"'}}
    params = {"records": str(tmp_path)}
    empty, _ = cache.chapter_key(source, declared, params, code="c")
    write_benchmark("loaders", [{"reader": "x", "seconds": 1.0}], "cpu", folder=tmp_path)
    one, parts = cache.chapter_key(source, declared, params, code="c")
    write_benchmark("loaders", [{"reader": "x", "seconds": 2.0}], "cpu", folder=tmp_path)
    changed, _ = cache.chapter_key(source, declared, params, code="c")
    assert list(parts["data"]["benchmark_records"]) == ["loaders.json"]
    assert len({empty, one, changed}) == 3


def test_mamba_benchmark_writes_a_record_the_appendix_shows(tmp_path):
    records = tmp_path / "records"
    out = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "mamba_scan.py"), "--lengths", "64", "256",
                          "--repeats", "1", "--record", str(records)], capture_output=True, text=True, check=True)
    assert "parallel scan" in out.stdout and "step-by-step loop" in out.stdout
    found, _ = read_benchmarks(records)
    rows = found["mamba_scan"]["rows"]
    assert {(r["length"], r["scan"]) for r in rows} >= {(64, "parallel scan"), (256, "step-by-step loop")}
    assert max(r["max |diff|"] for r in rows) < 1e-4  # the two scans compute the same output
    (records / "stray.json").write_text("[]")
    text = run_chapter_text("90_reproducibility", {"profile": "smoke", "records": str(records)},
                            tmp_path / "appendix.ipynb")
    assert "Every figure on this page was measured on a CPU" in text
    assert "the parallel scan ran at the loop's speed" in text and "times at 256 positions" in text
    assert "No fused-kernel figure" in text
    assert "stray.json left out" in text
    assert "**No record** of `training_loop`" in text
