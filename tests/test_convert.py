"""Trace adapters: SWF, the Alibaba pod list, the Alibaba GenAI request trace and cold-start samples.

Small synthetic files written here pin every mapping rule; the real traces in ../shared/data/real
(skipped when absent) must give the counts SOURCES.md verified, and aggregate as documented.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.ipc as ipc
import pyarrow.json as pjson
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from jobmetrics import Aggregator
from jobmetrics.cli import main
from jobmetrics.convert._common import JOB_SCHEMA, Summary, TimeOrder, write_events
from jobmetrics.convert.alibaba_pods import convert_alibaba_pods, pod_events
from jobmetrics.convert.alibaba_serverless import cold_start_events, request_events
from jobmetrics.convert.swf import convert_swf, swf_events
from swf import read_swf
from swf import swf_events as swf_reference

RELATIVE_ERROR = 2.0**-7  # HDR at 2 significant figures


def _all(batches: object) -> pa.Table:
    tables = list(batches)  # type: ignore[call-overload]
    return pa.concat_tables(tables) if tables else JOB_SCHEMA.empty_table()


def _rows(table: pa.Table) -> list[tuple[object, ...]]:
    cols = [table.column(c).to_pylist() for c in ("ts", "endpoint", "job_id", "state")]
    return list(zip(*cols, strict=True))


def _real(shared_data: Path, name: str) -> Path:
    path = shared_data / "real" / name
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


def _exact_quantile(values: np.ndarray, q: float) -> float:
    ordered = np.sort(values)
    return float(ordered[math.ceil(q * ordered.size) - 1])


# ------------------------------------------------------------------------------------- SWF
SWF = """\
; Version: 2.2
; UnixStartTime: 1000000
; MaxJobs: 9
;
    1   0    5   10  4 -1 -1  4  100 -1  1  1  1 -1 -1 -1 -1 -1
    2   2    0   30  1 -1 -1  1   30 -1  0  2  1 -1  3 -1 -1 -1
    3   4   -1   -1  1 -1 -1  1   60 -1  5  2  1 -1 -1  7 -1 -1
    4   6    2    8  1 -1 -1  1   60 -1  5  3  1 -1 -1 -1 -1 -1
    5   8    1    4  1 -1 -1  1   60 -1 -1  3  1 -1 -1 -1 -1 -1
    6   9    1    4  1 -1 -1  1   60 -1  2  3  1 -1 -1 -1 -1 -1
    7  10   -1    4  1 -1 -1  1   60 -1  1  3  1 -1 -1 -1 -1 -1
    8  11    1
    9  12    3    0  1 -1 -1  1   60 -1  1  3  1 -1 -1 -1 -1 -1
"""


def _swf(tmp_path: Path, text: str = SWF, name: str = "tiny.swf") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_swf_mapping(tmp_path: Path) -> None:
    summary = Summary("tiny")
    table = _all(swf_events(_swf(tmp_path), summary=summary))
    s = 1_000_000_000  # UnixStartTime in ms
    expected = [
        (s + 0, "tiny", "1", "IN_QUEUE"),
        (s + 2_000, "queue-3", "2", "IN_QUEUE"),
        (s + 2_000, "queue-3", "2", "IN_PROGRESS"),  # no wait
        (s + 4_000, "partition-7", "3", "IN_QUEUE"),
        (s + 4_000, "partition-7", "3", "CANCELLED"),  # cancelled before it started
        (s + 5_000, "tiny", "1", "IN_PROGRESS"),
        (s + 6_000, "tiny", "4", "IN_QUEUE"),
        (s + 8_000, "tiny", "4", "IN_PROGRESS"),
        (s + 8_000, "tiny", "5", "IN_QUEUE"),
        (s + 9_000, "tiny", "5", "IN_PROGRESS"),
        (s + 12_000, "tiny", "9", "IN_QUEUE"),
        (s + 13_000, "tiny", "5", "COMPLETED"),  # status -1: completed by default
        (s + 15_000, "tiny", "1", "COMPLETED"),
        (s + 15_000, "tiny", "9", "IN_PROGRESS"),
        (s + 15_000, "tiny", "9", "COMPLETED"),  # run 0
        (s + 16_000, "tiny", "4", "CANCELLED"),  # cancelled while running
        (s + 32_000, "queue-3", "2", "FAILED"),
    ]
    assert _rows(table) == expected
    assert table.schema == JOB_SCHEMA
    assert summary.records == 8 and summary.jobs == 6 and summary.events == len(expected)
    assert summary.skipped == {
        "partial execution records (status 2/3/4)": 1,
        "wait or run time unknown": 1,
        "malformed": 1,
    }
    assert summary.first_bad == ["line 12: 3 fields, expected 18"]
    assert summary.disordered == 0


def test_swf_options(tmp_path: Path) -> None:
    path = _swf(tmp_path)
    skip = _all(swf_events(path, unknown_status="skip", endpoint="hpc"))
    assert "5" not in skip.column("job_id").to_pylist()
    assert set(skip.column("endpoint").to_pylist()) == {"hpc"}
    failed = _all(swf_events(path, unknown_status="failed", endpoint_by="log"))
    pairs = zip(failed.column("job_id").to_pylist(), failed.column("state").to_pylist(), strict=True)
    assert ("5", "FAILED") in pairs
    assert set(failed.column("endpoint").to_pylist()) == {"tiny"}
    # job 2 failed after 30 s with 30 s requested: a timeout when inferred
    timed = _all(swf_events(path, infer_timeouts=True))
    assert _rows(timed)[-1] == (1_000_032_000, "queue-3", "2", "TIMED_OUT")
    shifted = _all(swf_events(path, unix_start=0))
    assert shifted.column("ts")[0].as_py() == 0
    with pytest.raises(ValueError, match="endpoint_by"):
        swf_events(path, endpoint_by="user")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match=r"absent\.swf"):
        swf_events(tmp_path / "absent.swf")


def test_swf_gzip_and_chunks_give_the_same_log(tmp_path: Path) -> None:
    plain = _all(swf_events(_swf(tmp_path)))
    gz = tmp_path / "tiny.swf.gz"
    gz.write_bytes(gzip.compress(SWF.encode()))
    assert _all(swf_events(gz)).equals(plain)
    assert _all(swf_events(_swf(tmp_path), chunk_jobs=1)).equals(plain)


def test_swf_without_start_time_and_unsorted_submits(tmp_path: Path) -> None:
    text = (
        "  1  100  0  5  1 -1 -1 1 10 -1 1 1 1 -1 -1 -1 -1 -1\n"
        "  2   50  0  5  1 -1 -1 1 10 -1 1 1 1 -1 -1 -1 -1 -1\n"
    )
    summary = Summary("x")
    table = _all(swf_events(_swf(tmp_path, text, "nohead.swf"), chunk_jobs=1, summary=summary))
    assert table.num_rows == 6
    assert table.column("ts")[0].as_py() == 100_000
    assert summary.disordered > 0
    assert any("UnixStartTime" in note for note in summary.notes)


def test_time_order_holds_only_jobs_in_flight() -> None:
    """Release everything up to the bound, in time order; hold only later events."""
    order = TimeOrder(JOB_SCHEMA)

    def events(rows: list[tuple[int, str, str]]) -> pa.Table:
        ts, job, state = zip(*rows, strict=True)
        n = len(rows)
        return pa.table(
            {
                "ts": list(ts),
                "kind": ["job"] * n,
                "endpoint": ["e"] * n,
                "job_id": list(job),
                "state": list(state),
            },
            schema=JOB_SCHEMA,
        )

    out = order.push(events([(0, "a", "IN_QUEUE"), (50, "a", "IN_PROGRESS"), (90, "a", "COMPLETED")]), 0)
    assert out.column("ts").to_pylist() == [0] and order.held == 2
    out = order.push(events([(10, "b", "IN_QUEUE"), (10, "b", "IN_PROGRESS"), (20, "b", "COMPLETED")]), 60)
    assert out.column("ts").to_pylist() == [10, 10, 20, 50]
    assert out.column("state").to_pylist()[:2] == ["IN_QUEUE", "IN_PROGRESS"]  # lifecycle kept at equal ts
    assert order.held == 1
    assert order.finish().column("ts").to_pylist() == [90]
    assert order.disordered == 0


def test_kth_sp2(shared_data: Path) -> None:
    path = _real(shared_data, "KTH-SP2-1996-2.1-cln.swf.gz")
    summary = Summary(str(path))
    table = _all(swf_events(path, summary=summary))
    assert summary.records == summary.jobs == 28_476
    assert table.num_rows == 3 * 28_476
    assert summary.states == {"IN_QUEUE": 28_476, "IN_PROGRESS": 28_476, "COMPLETED": 20_530, "FAILED": 7_946}
    assert set(table.column("endpoint").to_pylist()) == {"KTH-SP2-1996-2.1-cln"}
    ts = table.column("ts").to_numpy()
    assert np.all(np.diff(ts) >= 0) and summary.disordered == 0
    assert ts[0] == (843_480_031 + 599_850) * 1000
    agg = Aggregator(window="1d", job_ttl="30d", retention="30d", highest="30d", allowed_lateness="0s")
    agg.ingest(table)
    agg.flush()
    t = agg.totals("KTH-SP2-1996-2.1-cln")
    assert (t["requests"], t["completed"], t["failed"], t["invalid_transitions"]) == (
        28_476,
        20_530,
        7_946,
        0,
    )
    reference = swf_reference(read_swf(path), endpoint="KTH-SP2-1996-2.1-cln")  # tests/swf.py
    assert table.equals(reference.cast(JOB_SCHEMA))
    timed = Summary(str(path))
    list(swf_events(path, infer_timeouts=True, summary=timed))
    assert timed.states["TIMED_OUT"] > 0
    assert timed.states["TIMED_OUT"] + timed.states["FAILED"] == 7_946


# ------------------------------------------------------------------------------ Alibaba pods
PODS = """\
name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time
p0,1000,1024,1,1000,,LS,Succeeded,0,100,10
p1,1000,1024,2,500,V100,BE,Failed,5,50,5
p2,1000,1024,0,0,,LS,Pending,6,40,
p3,1000,1024,1,1000,,LS,Running,7,60,9
p4,1000,1024,1,1000,,BE,Running,8,200,20
p5,1000,1024,1,1000,,BE,Pending,9,200,
p6,1000,1024,1,1000,,LS,Bogus,10,20,11
"""


def test_pod_mapping(tmp_path: Path) -> None:
    path = tmp_path / "pods.csv"
    path.write_text(PODS)
    summary = Summary("pods")
    table = _all(pod_events(path, origin_ms=1_000_000, summary=summary))
    o = 1_000_000
    assert _rows(table) == [
        (o + 0, "LS", "p0", "IN_QUEUE"),
        (o + 5_000, "BE", "p1", "IN_QUEUE"),
        (o + 5_000, "BE", "p1", "IN_PROGRESS"),
        (o + 6_000, "LS", "p2", "IN_QUEUE"),
        (o + 7_000, "LS", "p3", "IN_QUEUE"),
        (o + 8_000, "BE", "p4", "IN_QUEUE"),
        (o + 9_000, "LS", "p3", "IN_PROGRESS"),
        (o + 9_000, "BE", "p5", "IN_QUEUE"),  # pending at the trace end (200): stays queued
        (o + 10_000, "LS", "p0", "IN_PROGRESS"),
        (o + 20_000, "BE", "p4", "IN_PROGRESS"),  # running at the trace end: no terminal event
        (o + 40_000, "LS", "p2", "CANCELLED"),  # deleted while pending
        (o + 50_000, "BE", "p1", "FAILED"),
        (o + 60_000, "LS", "p3", "CANCELLED"),  # deleted while running
        (o + 100_000, "LS", "p0", "COMPLETED"),
    ]
    assert summary.skipped == {"unknown pod_phase": 1}
    assert summary.records == 7 and summary.jobs == 6
    kept = _all(pod_events(path, running_deleted="completed", endpoint_by="gpu", trace_end=1_000))
    rows = {(r[2], r[3]): r for r in _rows(kept)}
    assert ("p3", "COMPLETED") in rows and ("p4", "COMPLETED") in rows  # trace end moved past 200
    assert rows[("p5", "CANCELLED")][0] == 200_000
    assert rows[("p1", "FAILED")][1] == "gpu-2"
    with pytest.raises(ValueError, match="not an Alibaba pod list"):
        list(pod_events(_swf(tmp_path)))


def test_openb_pod_list(shared_data: Path, tmp_path: Path) -> None:
    path = _real(shared_data, "openb_pod_list_default.csv")
    out = tmp_path / "pods.parquet"
    summary = convert_alibaba_pods(path, out)
    table = pq.read_table(out)
    assert summary.records == summary.jobs == 8_152
    assert summary.states == {
        "IN_QUEUE": 8_152,
        "IN_PROGRESS": 7_255,
        "COMPLETED": 192,
        "FAILED": 1_870,
        "CANCELLED": 897 + 5_159,
    }
    assert np.all(np.diff(table.column("ts").to_numpy()) >= 0)
    agg = Aggregator(window="1d", job_ttl="365d", retention="365d", highest="365d", allowed_lateness="0s")
    agg.ingest(table)
    agg.flush()
    totals = [agg.totals(e) for e in agg.endpoints()]
    assert sum(t["in_progress"] for t in totals) == 34  # right-censored Running pods
    assert sum(t["invalid_transitions"] + t["orphans"] + t["duplicates"] for t in totals) == 0
    # the scheduling delay of every scheduled pod, within the HDR bound of the exact order statistic
    csv = pcsv.read_csv(path)
    scheduled = csv.filter(pc.is_valid(csv.column("scheduled_time")))
    delay_ms = (
        pc.subtract(scheduled.column("scheduled_time"), scheduled.column("creation_time")).to_numpy() * 1000
    )
    merged = agg.histogram("LS", "delay_time")
    for e in agg.endpoints():
        if e != "LS":
            merged.add(agg.histogram(e, "delay_time"))
    assert merged.total_count == delay_ms.size == 7_255
    for q in (0.5, 0.9, 0.99):
        exact = _exact_quantile(delay_ms * 1000, q)  # µs
        assert exact <= merged.value_at_quantile(q) <= exact * (1 + RELATIVE_ERROR) + 1


# --------------------------------------------------------------------------- Alibaba GenAI
LORA = """\
gmt_create,predict_type,predict_status,exec_time_seconds,groupId,prompt_length,negative_prompt_length,num_images_per_prompt,num_inference_steps,checkpoint_model_version_id,num_lora
2024-11-15 16:57:50,TXT_2_IMG,SUCCEED,32.0,G0,1,,1,30,M0,0
2024-11-15 16:58:00,IMG_2_IMG,FAILED,3.0,G1,1,,1,30,M1,0
2024-11-15 16:58:01,TXT_2_IMG,PENDING,0.0,G1,1,,1,30,M0,0
2024-11-15 16:58:02,TXT_2_IMG,PROCESSING,0.0,G1,1,,1,30,M0,0
2024-11-15 16:58:03,TXT_2_IMG,WEIRD,1.0,G1,1,,1,30,M0,0
2024-11-15 16:58:04,TXT_2_IMG,SUCCEED,,G1,1,,1,30,M0,0
"""


def test_request_mapping(tmp_path: Path) -> None:
    path = tmp_path / "lora.csv"
    path.write_text(LORA)
    summary = Summary("lora")
    table = _all(request_events(path, summary=summary))
    t = 1_731_689_870_000  # 2024-11-15 16:57:50 UTC
    assert _rows(table) == [
        (t, "TXT_2_IMG", "req-000001", "IN_QUEUE"),
        (t, "TXT_2_IMG", "req-000001", "IN_PROGRESS"),
        (t + 10_000, "IMG_2_IMG", "req-000002", "IN_QUEUE"),
        (t + 10_000, "IMG_2_IMG", "req-000002", "IN_PROGRESS"),
        (t + 11_000, "TXT_2_IMG", "req-000003", "IN_QUEUE"),
        (t + 12_000, "TXT_2_IMG", "req-000004", "IN_QUEUE"),
        (t + 12_000, "TXT_2_IMG", "req-000004", "IN_PROGRESS"),
        (t + 13_000, "IMG_2_IMG", "req-000002", "FAILED"),
        (t + 32_000, "TXT_2_IMG", "req-000001", "COMPLETED"),
    ]
    assert summary.skipped == {"unknown predict_status": 1, "exec_time_seconds missing or negative": 1}
    by_model = _all(request_events(path, endpoint_by="model", prefix="r"))
    assert by_model.column("endpoint").to_pylist()[:3] == ["M0", "M0", "M1"]
    assert by_model.column("job_id")[0].as_py() == "r-000001"
    assert set(_all(request_events(path, endpoint="sd")).column("endpoint").to_pylist()) == {"sd"}


def test_lora_request_trace(shared_data: Path) -> None:
    path = _real(shared_data, "lora_request_trace.csv")
    summary = Summary(str(path))
    table = _all(request_events(path, summary=summary, block_size=1 << 16))  # many blocks
    assert summary.records == summary.jobs == 26_823
    assert summary.states == {"IN_QUEUE": 26_823, "IN_PROGRESS": 26_793, "COMPLETED": 26_392, "FAILED": 398}
    assert summary.disordered == 0
    # the trace spans 23 days: a job_ttl beyond that keeps the PENDING requests queued
    agg = Aggregator(window="1h", allowed_lateness="0s", job_ttl="60d")
    agg.ingest(table)
    agg.flush()
    totals = [agg.totals(e) for e in agg.endpoints()]
    assert sorted(agg.endpoints()) == ["IMG_2_IMG", "INPAINTING", "TXT_2_IMG"]
    assert sum(t["in_queue"] for t in totals) == 30  # PENDING
    assert sum(t["in_progress"] for t in totals) == 3  # PROCESSING
    csv = pcsv.read_csv(path)
    done = csv.filter(pc.is_in(csv.column("predict_status"), pa.array(["SUCCEED", "FAILED"])))
    exec_us = done.column("exec_time_seconds").to_numpy() * 1e6
    merged = agg.histogram("TXT_2_IMG", "execution_time")
    for e in ("IMG_2_IMG", "INPAINTING"):
        merged.add(agg.histogram(e, "execution_time"))
    assert merged.total_count == exec_us.size
    for q in (0.5, 0.9, 0.99):
        exact = _exact_quantile(exec_us, q)
        assert exact <= merged.value_at_quantile(q) <= exact * (1 + RELATIVE_ERROR) + 1


def _samples_tar(tmp_path: Path, csv_text: str) -> Path:
    path = tmp_path / "samples.tar.gz"
    data = csv_text.encode()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("basemodel_update_latency_anon.csv")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def test_cold_start_mapping(tmp_path: Path) -> None:
    text = "timestamp_anon,value,container_ip\n100.0,2500.0,abc\n101.5,1000.0,abc\n102.0,,def\n"
    table = cold_start_events(_samples_tar(tmp_path, text), endpoint="load")
    assert table.column("ts").to_pylist() == [97_500, 100_000, 100_001, 100_500, 101_500, 101_501]
    assert table.column("state").to_pylist() == ["INITIALIZING", "IDLE", "OFFLINE"] * 2
    assert table.column("worker_id").to_pylist() == ["abc-1"] * 3 + ["abc-2"] * 3
    assert set(table.column("kind").to_pylist()) == {"worker"}
    plain = tmp_path / "samples.csv"
    plain.write_text(text)
    assert cold_start_events(plain, endpoint="load").equals(table)
    agg = Aggregator(window="60s", allowed_lateness="0s")
    agg.ingest(table)
    agg.flush()
    h = agg.histogram("load", "cold_start_time")
    assert h.total_count == 2 and h.min <= 1_000_000 <= h.max and h.max >= 2_500_000


def test_basemodel_cold_starts(shared_data: Path) -> None:
    path = _real(shared_data, "basemodel_update_latency_anon.tar.gz")
    summary = Summary(str(path))
    table = cold_start_events(path, summary=summary)
    assert summary.records == 7_531 and table.num_rows == 3 * 7_531
    agg = Aggregator(window="1h", allowed_lateness="0s")
    agg.ingest(table)
    agg.flush()
    assert agg.totals("basemodel-load")["cold_start_count"] == 7_531
    h = agg.histogram("basemodel-load", "cold_start_time")
    with tarfile.open(path) as tar:
        member = tar.extractfile(tar.getmembers()[0])
        assert member is not None
        values_us = pcsv.read_csv(member).column("value").to_numpy() * 1000
    for q, published_ms in ((0.5, 22_718), (0.9, 41_988)):
        exact = _exact_quantile(values_us, q)
        assert abs(exact - published_ms * 1000) <= 1000  # SOURCES.md's figures
        assert exact <= h.value_at_quantile(q) <= exact * (1 + RELATIVE_ERROR) + 1


# ----------------------------------------------------------------------------- writing, CLI
@pytest.mark.parametrize("suffix", [".parquet", ".arrow", ".csv", ".jsonl"])
def test_every_output_format_reads_back(tmp_path: Path, suffix: str) -> None:
    expected = _all(swf_events(_swf(tmp_path)))
    out = tmp_path / f"log{suffix}"
    convert_swf(_swf(tmp_path), out)
    if suffix == ".parquet":
        back = pq.read_table(out)
    elif suffix == ".arrow":
        back = ipc.open_file(out).read_all()
    elif suffix == ".csv":
        back = pcsv.read_csv(out, convert_options=pcsv.ConvertOptions(column_types=JOB_SCHEMA))
    else:
        back = pjson.read_json(out, parse_options=pjson.ParseOptions(explicit_schema=JOB_SCHEMA))
        assert json.loads(out.read_text().splitlines()[0])["state"] == "IN_QUEUE"
    assert back.select(JOB_SCHEMA.names).cast(JOB_SCHEMA).equals(expected)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_unknown_suffix_and_interrupted_write(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'log\.xlsx'"):
        convert_swf(_swf(tmp_path), tmp_path / "log.xlsx")

    def broken() -> object:
        yield JOB_SCHEMA.empty_table()
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_events(broken(), tmp_path / "out.parquet", JOB_SCHEMA)  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.swf"]


def test_cli_convert(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "log.parquet"
    result = runner.invoke(main, ["convert", "swf", str(_swf(tmp_path)), str(out), "--endpoint", "hpc"])
    assert result.exit_code == 0, result.output
    assert pq.read_table(out).num_rows == 17
    assert "events written" in result.output and "17" in result.output
    assert "line 12: 3 fields, expected 18" in result.output
    pods = tmp_path / "pods.csv"
    pods.write_text(PODS)
    result = runner.invoke(
        main, ["convert", "alibaba-pods", str(pods), str(tmp_path / "pods.jsonl"), "--origin", "2023-01-01"]
    )
    assert result.exit_code == 0, result.output
    first = json.loads((tmp_path / "pods.jsonl").read_text().splitlines()[0])
    assert first["ts"] == 1_672_531_200_000
    lora = tmp_path / "lora.csv"
    lora.write_text(LORA)
    result = runner.invoke(main, ["convert", "alibaba-serverless", str(lora), str(tmp_path / "l.csv")])
    assert result.exit_code == 0, result.output
    samples = _samples_tar(tmp_path, "timestamp_anon,value,container_ip\n100.0,2500.0,abc\n")
    result = runner.invoke(main, ["convert", "alibaba-cold-starts", str(samples), str(tmp_path / "c.arrow")])
    assert result.exit_code == 0, result.output
    missing = runner.invoke(main, ["convert", "swf", str(tmp_path / "absent.swf"), str(out)])
    assert missing.exit_code == 1 and "input not found" in missing.output
    suffix = runner.invoke(main, ["convert", "swf", str(_swf(tmp_path)), str(tmp_path / "x.txt")])
    assert suffix.exit_code == 1 and "'x.txt'" in suffix.output
    bad = runner.invoke(main, ["convert", "alibaba-pods", str(lora), str(tmp_path / "p.parquet")])
    assert bad.exit_code == 1 and "not an Alibaba pod list" in bad.output


def test_docstring_examples() -> None:
    import doctest
    import importlib

    module = importlib.import_module("jobmetrics.convert.swf")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_converted_logs_aggregate_alike_in_every_format(tmp_path: Path) -> None:
    """What convert writes, aggregate_logs reads back to the same snapshot whatever the format."""
    from jobmetrics.batch import aggregate_logs

    pods = tmp_path / "pods.csv"
    pods.write_text(PODS)
    with pytest.raises(ValueError, match="is the input file"):
        convert_alibaba_pods(pods, pods)
    assert pods.read_text() == PODS
    snapshots = []
    for suffix in (".parquet", ".arrow", ".csv", ".jsonl"):
        out = tmp_path / f"events{suffix}"
        convert_alibaba_pods(pods, out, origin_ms=1_700_000_000_000)
        snapshots.append(aggregate_logs(out, window="60s", allowed_lateness="0s"))
    first = snapshots[0]
    assert pc.sum(first.column("requests")).as_py() == 6
    assert pc.sum(first.column("completed")).as_py() == 1
    for other in snapshots[1:]:
        assert other.equals(first)
