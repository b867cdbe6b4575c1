"""Resuming, sharding and distributing ``lunglesion run``: every way of splitting the work ends
with the same tables as one uninterrupted run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest

from pipeline.errors import ErrorCode
from tests.pipeline.batch.conftest import (
    ALL_OUTPUTS,
    LUNGLESION,
    csv_tables,
    finished_run,
    read_csv,
)


def test_run_killed_part_way_then_rerun_ends_like_an_uninterrupted_run(tmp_path, reference_run, reference_input):
    out = tmp_path / "out"
    args = [
        "run",
        reference_input.dicom,
        "--cohort",
        reference_input.cohort,
        "--outputs",
        "csv,nifti,seg,qc",
        "--workers",
        1,
        "--out",
        out,
    ]
    log = tmp_path / "killed.log"
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            [str(LUNGLESION), *(str(a) for a in args)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    deadline = time.monotonic() + 300
    while not list(out.glob("scans/*/done.json")):
        assert process.poll() is None, f"the run ended before it could be killed:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, "no scan finished within 300 s"
        time.sleep(0.05)
    # SIGKILL the main process and its Dask workers (the whole process group), as an OOM killer
    # or a cancelled batch job would: nothing gets to clean up.
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    finished_at_kill = len(list(out.glob("scans/*/done.json")))
    assert 1 <= finished_at_kill < 3
    assert not (out / "scans.csv").exists()  # killed before the tables were built

    rerun = finished_run(out, *args[1:-2])
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    counts = json.loads((out / "run.json").read_text())["counts"]
    assert counts["scans_reused"] == finished_at_kill
    assert counts["scans_computed"] == 3 - finished_at_kill
    assert csv_tables(out) == csv_tables(reference_run.out)
    assert not list(out.rglob(".tmp-*")), "temporary files left behind"

    # Asking for another device does not make finished scans stale; run.json shows the request.
    again = finished_run(out, *args[1:-2], "--device", "cpu")
    assert again.returncode == 0, again.stderr[-3000:]
    record = json.loads((out / "run.json").read_text())
    assert record["counts"]["scans_reused"] == 3 and record["counts"]["scans_computed"] == 0
    assert record["config"]["segmentation"]["device"] == record["device"] == "cpu"


def test_three_parts_run_at_the_same_time_into_one_folder_equal_one_full_run(tmp_path, reference_run, reference_input):
    out = tmp_path / "out"
    processes = []
    for part in range(3):
        args = [
            "run",
            reference_input.dicom,
            "--cohort",
            reference_input.cohort,
            "--workers",
            1,
            "--num-parts",
            3,
            "--part-id",
            part,
            "--out",
            out,
        ]
        processes.append(
            subprocess.Popen(
                [str(LUNGLESION), *(str(a) for a in args)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
        )
    logs = [p.communicate(timeout=600)[1] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], "\n".join(log[-2000:] for log in logs)
    in_part = [int(re.search(r"(\d+) in this part", log).group(1)) for log in logs]
    assert sum(in_part) == 3 and max(in_part) < 3  # the parts split the three scans between them
    assert len(list(out.glob("scans/*/done.json"))) == 3
    assert csv_tables(out) == csv_tables(reference_run.out)


def test_parts_run_one_after_the_other_fill_the_tables_step_by_step(tmp_path, reference_run, reference_input):
    from pipeline.batch.runner import shard_of

    out = tmp_path / "out"
    scan_ids = sorted(p.parent.name for p in reference_run.out.glob("scans/*/done.json"))
    assert len({shard_of(s, 3) for s in scan_ids}) == 2  # two parts have work, one has none
    base = (reference_input.dicom, "--cohort", reference_input.cohort, "--workers", 1, "--num-parts", 3)
    for part in range(3):
        run = finished_run(out, *base, "--part-id", part)
        assert run.returncode == 0, run.stderr[-3000:]
        expected = sorted(s for s in scan_ids if shard_of(s, 3) <= part)
        assert sorted(p.parent.name for p in out.glob("scans/*/done.json")) == expected
        counts = json.loads((out / "run.json").read_text())["counts"]
        assert counts["scans_in_this_part"] == counts["scans_computed"] == sum(shard_of(s, 3) == part for s in scan_ids)
        assert counts["scans_ok"] == len(expected)  # the tables hold every scan finished so far
        assert len(read_csv(out / "scans.csv")) == len(expected)
    assert csv_tables(out) == csv_tables(reference_run.out)


def test_scheduler_option_runs_the_scans_on_an_existing_dask_cluster(tmp_path, reference_run, reference_input):
    from dask.distributed import Client, LocalCluster

    from segmentation.inference import model_load_count

    out = tmp_path / "out"
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        worker_pids = set(client.run(os.getpid).values())
        run = finished_run(
            out, reference_input.dicom, "--cohort", reference_input.cohort, "--scheduler", cluster.scheduler_address
        )
        loaded = client.run(model_load_count)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"connecting to the Dask scheduler at {cluster.scheduler_address}" in run.stderr
    assert "starting a local Dask cluster" not in run.stderr
    record = json.loads((out / "run.json").read_text())
    assert record["scheduler"] == cluster.scheduler_address
    assert record["counts"]["scans_computed"] == 3
    assert len(worker_pids) == 1 and len(record["model_loads_per_worker"]) == 1
    assert list(loaded.values()) == record["model_loads_per_worker"]  # the model lived in the cluster's worker
    assert csv_tables(out) == csv_tables(reference_run.out)


class _FakeClient:
    def __init__(self, found):
        self.found = found

    def run(self, function, *args, on_error):
        assert on_error == "return"
        return self.found


def test_a_cluster_whose_workers_lack_lunglesion_is_refused():
    from importlib.metadata import PackageNotFoundError

    from pipeline import __version__
    from pipeline.batch.executor import check_worker_versions
    from pipeline.errors import ConfigError

    check_worker_versions(_FakeClient({"tcp://a:1": __version__}))
    check_worker_versions(_FakeClient({}))  # no workers yet (adaptive cluster): nothing to check
    with pytest.raises(ConfigError, match=r"1 of the 2 Dask worker\(s\).*tcp://b:2: not installed"):
        check_worker_versions(_FakeClient({"tcp://a:1": __version__, "tcp://b:2": PackageNotFoundError("x")}))
    with pytest.raises(ConfigError, match="tcp://a:1: 0.0.1"):
        check_worker_versions(_FakeClient({"tcp://a:1": "0.0.1"}))


def test_a_recompute_drops_the_old_done_marker_before_it_overwrites_any_output(
    tmp_path, reference_run, reference_input, monkeypatch
):
    """Killed half-way through a recompute, a scan must not look finished with the old marker."""
    import shutil

    from pipeline.batch import task as task_module
    from pipeline.batch.runner import BatchRun, RunOptions
    from pipeline.config import load_settings
    from pipeline.errors import LunglesionError
    from pipeline.ingest import index_inputs

    out = tmp_path / "out"
    shutil.copytree(reference_run.out, out)
    options = RunOptions(inputs=(reference_input.dicom,), out_dir=out, cohort=reference_input.cohort, force=True)
    run = BatchRun(options, settings=load_settings())
    run.index = index_inputs(list(options.inputs), settings=run.settings)
    tasks, _ = run._plan(list(run.index.selected), model_sha="")
    seen = []

    def first_stage_dies(task, **kwargs):
        seen.append(task.paths.done_json.exists())  # what a run killed now would leave
        raise LunglesionError(ErrorCode.SEGMENTATION_FAILED, "stopped here")

    monkeypatch.setattr(task_module, "_run_stages", first_stage_dies)
    old_outputs = tasks[0].paths.every_output_file()
    assert all(path.is_file() for path in old_outputs)  # mask, SEG, QC picture and thumbnail
    outcome = task_module.process_scan(tasks[0], settings=run.settings)
    assert seen == [False]
    assert not any(path.exists() for path in old_outputs)  # a scan that now fails shows no old picture
    assert outcome.status == "failed"
    assert json.loads(tasks[0].paths.done_json.read_text())["status"] == "failed"


def test_results_of_another_configuration_stay_out_of_the_tables(tmp_path, reference_run, reference_input):
    """One part rerun with a changed per-scan setting: the other parts' old results are stale."""
    import shutil

    from pipeline.batch.runner import shard_of

    out = tmp_path / "out"
    shutil.copytree(reference_run.out, out)
    config = tmp_path / "changed.yaml"
    config.write_text("metrics:\n  quality:\n    lung_ml_max: 2000\n", encoding="utf-8")
    scan_ids = sorted(p.parent.name for p in reference_run.out.glob("scans/*/done.json"))
    part = shard_of(scan_ids[0], 3)
    mine = [s for s in scan_ids if shard_of(s, 3) == part]
    run = finished_run(
        out,
        reference_input.dicom,
        "--cohort",
        reference_input.cohort,
        "--outputs",
        ALL_OUTPUTS,
        "--workers",
        1,
        "--config",
        config,
        "--num-parts",
        3,
        "--part-id",
        part,
    )
    assert run.returncode in (0, 3), run.stderr[-3000:]
    counts = json.loads((out / "run.json").read_text())["counts"]
    assert counts["scans_computed"] == len(mine)
    assert counts["scans_stale"] == len(scan_ids) - len(mine)
    assert sorted(r["scan_id"] for r in read_csv(out / "scans.csv")) == mine
    assert "left out of the tables" in run.stderr
