"""runtime.py: what Runtime.open builds from settings, the two bounded pools, and close()."""

from __future__ import annotations

import asyncio
import contextvars
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from faceplane.engine.models.registry import get_spec
from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import MB, Runtime
from faceplane.services import collections as col
from faceplane.services.enroll import enroll_faces
from faceplane.services.images import ImageSource
from faceplane.services.limits import DbCounters, RedisCounters
from faceplane.settings import Settings

MakeRuntime = Callable[..., Runtime]
REDIS_URL = "redis://127.0.0.1:6379/0"
Interval = tuple[float, float]


@pytest.fixture
def make_rt(tmp_path: Path) -> Iterator[MakeRuntime]:
    """Open runtimes on fresh data folders with the given settings; close them afterwards."""
    opened: list[Runtime] = []

    def make(**settings: Any) -> Runtime:
        settings.setdefault("data_dir", tmp_path / f"rt{len(opened)}")
        rt = Runtime.open(Settings(**settings))
        opened.append(rt)
        return rt

    yield make
    for rt in opened:
        rt.close()


def timed(seconds: float) -> Callable[[], Interval]:
    """A job that sleeps (releasing the GIL, as inference does) and returns when it ran."""

    def job() -> Interval:
        start = time.monotonic()
        time.sleep(seconds)
        return start, time.monotonic()

    return job


def overlap(a: Interval, b: Interval) -> bool:
    """True if two intervals share some time."""
    return max(a[0], b[0]) < min(a[1], b[1])


async def two_at_once(run: Callable[..., Any], job: Callable[[], Interval]) -> list[Interval]:
    """Start two jobs together on a pool and wait for both."""
    return list(await asyncio.gather(run(job), run(job)))


# ---- what open builds ----------------------------------------------------------------------


def test_open_builds_intake_limits_and_the_fetch_policy_from_settings(
    make_rt: MakeRuntime,
) -> None:
    rt = make_rt(
        max_image_mb=2.5,
        max_image_pixels=1_000_000,
        min_image_side_px=32,
        max_image_side_px=4000,
        fetch_connect_timeout_s=1.5,
        fetch_read_timeout_s=2.5,
        fetch_total_timeout_s=7.0,
        fetch_max_redirects=1,
        fetch_allow_private=True,
    )
    assert rt.limits.max_bytes == int(2.5 * MB)
    assert (rt.limits.max_pixels, rt.limits.min_side, rt.limits.max_side) == (1_000_000, 32, 4000)
    f = rt.fetch
    assert f.max_bytes == rt.limits.max_bytes  # a URL may bring no more than an upload
    assert (f.connect_timeout_s, f.read_timeout_s, f.total_timeout_s) == (1.5, 2.5, 7.0)
    assert (f.max_redirects, f.allow_private) == (1, True)


def test_open_makes_the_data_folder_with_its_database_blobs_and_secret(
    make_rt: MakeRuntime, tmp_path: Path
) -> None:
    data_dir = tmp_path / "nested" / "data"
    rt = make_rt(data_dir=data_dir)
    assert rt.settings.data_dir == data_dir
    assert (data_dir / "faceplane.db").is_file()
    assert rt.store.blobs.root == data_dir / "blobs"
    assert rt.store.indexes.folder == data_dir / "index"
    assert (data_dir / "secret.key").stat().st_mode & 0o777 == 0o600
    assert rt.store.secret == (data_dir / "secret.key").read_text().strip().encode()
    # A second process on the same folder gets the same secret (signed URLs stay valid).
    assert make_rt(data_dir=data_dir).store.secret == rt.store.secret


def test_a_configured_secret_is_used_instead_of_a_generated_one(
    make_rt: MakeRuntime, tmp_path: Path
) -> None:
    rt = make_rt(secret_key="configured-secret", data_dir=tmp_path / "s")
    assert rt.store.secret == b"configured-secret"
    assert not (tmp_path / "s" / "secret.key").exists()


def test_counters_are_in_the_database_by_default(make_rt: MakeRuntime) -> None:
    rt = make_rt()
    assert isinstance(rt.counters, DbCounters)
    assert rt.counters.db is rt.store.db


def test_counters_are_in_redis_when_a_redis_url_is_set(make_rt: MakeRuntime) -> None:
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.skip(f"REDIS IS DOWN at {REDIS_URL} ({exc}): RedisCounters not tested")
    rt = make_rt(limits_redis_url=REDIS_URL)
    assert isinstance(rt.counters, RedisCounters)
    key = f"unit-{uuid.uuid4().hex}"
    try:
        assert rt.counters.add(key, 3, 30) == 3
        assert int(rt.counters.client.get("faceplane:" + key)) == 3
    finally:
        rt.counters.client.delete("faceplane:" + key)


def test_the_pools_have_the_sizes_the_settings_name(make_rt: MakeRuntime) -> None:
    rt = make_rt(inference_threads=3, io_threads=5)
    assert rt.pools.inference._max_workers == 3
    assert rt.pools.io._max_workers == 5


# ---- the pools -----------------------------------------------------------------------------


def test_blocking_work_runs_on_the_named_pool_threads_not_the_event_loop(
    make_rt: MakeRuntime,
) -> None:
    rt = make_rt()

    async def main() -> tuple[str, str, str]:
        loop_thread = threading.current_thread().name
        infer = await rt.run_blocking(lambda: threading.current_thread().name)
        io = await rt.run_io(lambda: threading.current_thread().name)
        return loop_thread, infer, io

    loop_thread, infer, io = asyncio.run(main())
    assert infer.startswith("fp-infer") and io.startswith("fp-io")
    assert loop_thread not in (infer, io)


def test_with_one_inference_thread_two_jobs_run_one_after_the_other(
    make_rt: MakeRuntime,
) -> None:
    rt = make_rt(inference_threads=1)
    a, b = asyncio.run(two_at_once(rt.run_blocking, timed(0.15)))
    assert not overlap(a, b)


def test_with_two_inference_threads_two_jobs_run_together(make_rt: MakeRuntime) -> None:
    rt = make_rt(inference_threads=2)
    a, b = asyncio.run(two_at_once(rt.run_blocking, timed(0.15)))
    assert overlap(a, b)


def test_the_io_pool_size_bounds_io_jobs_the_same_way(make_rt: MakeRuntime) -> None:
    one = make_rt(io_threads=1)
    a, b = asyncio.run(two_at_once(one.run_io, timed(0.15)))
    assert not overlap(a, b)
    two = make_rt(io_threads=2)
    a, b = asyncio.run(two_at_once(two.run_io, timed(0.15)))
    assert overlap(a, b)


def test_no_more_inference_jobs_run_at_once_than_the_pool_has_threads(
    make_rt: MakeRuntime,
) -> None:
    rt = make_rt(inference_threads=2)
    intervals = asyncio.run(
        _gather_n(rt.run_blocking, timed(0.1), 5),
    )
    # At every job's start, count the jobs running: never more than two.
    for start, _ in intervals:
        running = sum(1 for s, e in intervals if s <= start < e)
        assert running <= 2
    assert any(overlap(a, b) for a in intervals for b in intervals if a != b)


async def _gather_n(run: Callable[..., Any], job: Callable[[], Interval], n: int) -> list[Any]:
    return list(await asyncio.gather(*(run(job) for _ in range(n))))


def test_io_work_is_not_queued_behind_a_busy_inference_pool(make_rt: MakeRuntime) -> None:
    rt = make_rt(inference_threads=1)
    io_done = threading.Event()

    def inference() -> bool:
        # Holds the only inference thread until the I/O job has run: on a shared pool the
        # I/O job could not start, and this would time out.
        return io_done.wait(timeout=10)

    async def main() -> bool:
        busy = asyncio.ensure_future(rt.run_blocking(inference))
        await asyncio.sleep(0)
        await rt.run_io(io_done.set)
        return await busy

    assert asyncio.run(main()) is True


def test_the_event_loop_stays_free_while_a_blocking_job_runs(make_rt: MakeRuntime) -> None:
    rt = make_rt(inference_threads=1)
    loop_ran = threading.Event()

    async def main() -> bool:
        job = asyncio.ensure_future(rt.run_blocking(loop_ran.wait, 10))
        await asyncio.sleep(0.01)  # the loop gets here only if the job is not blocking it
        loop_ran.set()
        return await job

    assert asyncio.run(main()) is True


def test_arguments_context_and_errors_travel_with_the_job(make_rt: MakeRuntime) -> None:
    rt = make_rt()
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")

    def job(a: int, b: int, *, scale: int) -> tuple[int, str]:
        return (a + b) * scale, request_id.get()

    def fails() -> None:
        raise FaceplaneError(Err.FACE_NOT_FOUND, "none here", field="image")

    async def main() -> tuple[tuple[int, str], tuple[int, str]]:
        request_id.set("req-42")
        return await rt.run_blocking(job, 1, 2, scale=10), await rt.run_io(job, 3, 4, scale=2)

    assert asyncio.run(main()) == ((30, "req-42"), (14, "req-42"))
    with pytest.raises(FaceplaneError) as info:
        asyncio.run(rt.run_blocking(fails))
    assert info.value.err is Err.FACE_NOT_FOUND and info.value.details == {"field": "image"}


# ---- analysis options and thresholds -------------------------------------------------------


def test_analysis_options_come_from_settings_with_per_request_overrides(
    make_rt: MakeRuntime,
) -> None:
    rt = make_rt(
        detector="hog",
        det_threshold=0.7,
        min_face_size_px=40,
        max_faces=9,
        embed_tta="none",
        detect_max_side_px=800,
    )
    base = rt.analyse_options()
    assert (base.detector, base.det_threshold, base.min_face_size, base.max_faces) == (
        "hog",
        0.7,
        40,
        9,
    )
    assert (base.tta, base.detect_max_side) == ("none", 800)
    over = rt.analyse_options(max_faces=2, detector=None, landmarks=68, embeddings=True)
    assert (over.max_faces, over.detector, over.landmarks, over.embeddings) == (2, "hog", 68, True)


def test_the_compare_threshold_is_the_requests_far_else_the_settings(
    make_rt: MakeRuntime,
) -> None:
    rt = make_rt()
    # The default FAR (FACEPLANE_COMPARE_FAR, 1e-4) reads as 0.7 on the scale.
    assert rt.settings.compare_far == 1e-4
    threshold, far = rt.compare_threshold("dlib_resnet")
    assert (round(threshold, 9), far) == (0.7, 1e-4)
    assert make_rt(compare_far=1e-3).compare_threshold("dlib_resnet")[0] == pytest.approx(0.6)
    assert rt.compare_threshold("dlib_resnet", far=1e-5)[0] == pytest.approx(0.8)
    # The deprecated fixed threshold still holds when a request names no FAR, and says its FAR.
    fixed = make_rt(compare_threshold=0.8)
    threshold, far = fixed.compare_threshold("dlib_resnet")
    assert threshold == 0.8 and far == pytest.approx(1e-5, rel=1e-6)
    assert fixed.compare_threshold("dlib_resnet", far=1e-3)[0] == pytest.approx(0.6)
    with pytest.raises(FaceplaneError) as info:
        rt.compare_threshold("dlib_resnet", far=1e-8)
    assert info.value.err is Err.INVALID_ARGUMENT and info.value.details["field"] == "far"


def test_each_augmentation_mode_has_its_own_scale_of_the_embedders_space(
    make_rt: MakeRuntime,
) -> None:
    cuts = set()
    for tta in ("none", "flip", "multi"):
        cal = make_rt(embed_tta=tta).calibration("dlib_resnet")
        assert (cal.space, cal.mode) == (get_spec("dlib_resnet").space, tta)
        assert make_rt(embed_tta=tta).calibration("dlib_resnet_onnx") == cal
        cuts.add(cal.score_for_far(1e-4))
    assert len(cuts) == 3


# ---- close ---------------------------------------------------------------------------------


def test_close_saves_the_vector_indexes_a_new_runtime_then_loads(
    tmp_path: Path, testdata: Path
) -> None:
    data_dir = tmp_path / "data"
    rt = Runtime.open(Settings(data_dir=data_dir))
    cid = col.create_collection(rt, "co", "gallery", "gallery")["id"]
    sid = col.create_subject(rt, "co", cid, "obama")["id"]
    image = (testdata / "faces/face_recognition/examples/obama.jpg").read_bytes()
    enroll_faces(rt, "co", cid, sid, ImageSource("image", data=image))
    index_file = data_dir / "index" / f"{cid}.index"
    meta_file = data_dir / "index" / f"{cid}.json"
    assert not meta_file.exists()  # one change is far below the save threshold
    rt.close()
    assert index_file.is_file()
    assert json.loads(meta_file.read_text())["face_seq"] >= 1
    again = Runtime.open(Settings(data_dir=data_dir))
    try:
        assert len(again.store.indexes.get(again.store.db, cid)) == 1
    finally:
        again.close()


def test_close_waits_for_running_jobs_then_refuses_new_ones(make_rt: MakeRuntime) -> None:
    rt = make_rt(inference_threads=1)
    started, finished = threading.Event(), threading.Event()

    def job() -> None:
        started.set()
        time.sleep(0.2)
        finished.set()

    running = rt.pools.inference.submit(job)
    assert started.wait(5)
    rt.close()
    assert finished.is_set() and running.done()
    with pytest.raises(RuntimeError):
        asyncio.run(rt.run_blocking(int))
    with pytest.raises(RuntimeError):
        asyncio.run(rt.run_io(int))
