"""The Runtime: everything a service needs, opened one way by the server, workers and the CLI.

`Runtime.open(settings)` builds the model pool, the intake policies, the store (database,
blobs, vector indexes, secret), the usage counters and the bounded pools for blocking work.
Nothing is attached later: what a process has is what `open` gave it.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from faceplane.engine.faces import AnalyseOptions
from faceplane.engine.fetch import FetchPolicy, FetchSlots
from faceplane.engine.image import ImageLimits
from faceplane.engine.models.pool import ModelPool
from faceplane.engine.models.registry import calibration, space_of
from faceplane.engine.quality import QualityPolicy
from faceplane.engine.similarity import Calibration
from faceplane.errors import Err, FaceplaneError
from faceplane.services.limits import Counters, DbCounters, RedisCounters
from faceplane.services.login_guard import LoginGuard
from faceplane.settings import Settings
from faceplane.store import Store

P = ParamSpec("P")
T = TypeVar("T")
MB = 1024 * 1024

log = logging.getLogger("faceplane")


class BlockingPools:
    """Three bounded thread pools: inference (one job per core), database / I/O work, and
    password hashing.

    Inference is CPU-bound and must not oversubscribe the cores; database and file work
    mostly waits, so it gets its own wider pool and never queues behind a model. Password
    hashes (argon2id, 64 MiB and a core each) get a small pool of their own, so a login flood
    holds neither of the others and its memory stays bounded.
    """

    def __init__(self, inference_threads: int, io_threads: int, password_threads: int = 2) -> None:
        self.inference = ThreadPoolExecutor(inference_threads, thread_name_prefix="fp-infer")
        self.io = ThreadPoolExecutor(io_threads, thread_name_prefix="fp-io")
        self.passwords = ThreadPoolExecutor(password_threads, thread_name_prefix="fp-pw")

    def shutdown(self) -> None:
        """Stop accepting work and wait for running jobs."""
        self.inference.shutdown(wait=True, cancel_futures=True)
        self.io.shutdown(wait=True, cancel_futures=True)
        self.passwords.shutdown(wait=True, cancel_futures=True)


@dataclass
class Runtime:
    """Settings, models, intake policies, storage, counters and the blocking pools."""

    settings: Settings
    pool: ModelPool
    limits: ImageLimits
    fetch: FetchPolicy
    store: Store
    counters: Counters
    pools: BlockingPools = field(repr=False)
    # URL downloads in flight, per company and in all (services.images.fetch_images).
    fetch_slots: FetchSlots = field(repr=False)
    # Login throttles and password-hashing slots (services.logins), per server process.
    login_guard: LoginGuard = field(repr=False)

    @classmethod
    def open(cls, settings: Settings) -> Runtime:
        """Open everything named by `settings` (the database is migrated under a lock)."""
        import cv2

        # Parallelism comes from the bounded pools (one inference job per core) or from
        # worker processes; OpenCV's own thread pool on top would oversubscribe the cores.
        cv2.setNumThreads(1)
        limits = ImageLimits(
            max_bytes=int(settings.max_image_mb * MB),
            max_pixels=settings.max_image_pixels,
            min_side=settings.min_image_side_px,
            max_side=settings.max_image_side_px,
        )
        fetch = FetchPolicy(
            max_bytes=limits.max_bytes,
            connect_timeout_s=settings.fetch_connect_timeout_s,
            read_timeout_s=settings.fetch_read_timeout_s,
            total_timeout_s=settings.fetch_total_timeout_s,
            max_redirects=settings.fetch_max_redirects,
            allow_private=settings.fetch_allow_private,
        )
        pool = ModelPool(
            settings.models_dir,
            settings.ort_intra_op_threads,
            settings.embedder,
            settings.model_set,
        )
        store = Store.open(settings)
        counters: Counters = (
            RedisCounters(settings.limits_redis_url)
            if settings.limits_redis_url
            else DbCounters(store.db)
        )
        pools = BlockingPools(
            settings.inference_threads, settings.io_threads, settings.login_hash_threads
        )
        slots = FetchSlots(settings.fetch_max_concurrent_per_company, settings.fetch_max_concurrent)
        guard = LoginGuard.from_settings(settings)
        if settings.compare_threshold is not None:
            log.warning(
                "FACEPLANE_COMPARE_THRESHOLD is deprecated: set FACEPLANE_COMPARE_FAR (the "
                "similarity scale is calibrated by false-accept rate; see the README)"
            )
        return cls(settings, pool, limits, fetch, store, counters, pools, slots, guard)

    def close(self) -> None:
        """Save the vector indexes and stop the pools."""
        self.store.indexes.save_all()
        self.pools.shutdown()

    async def run_blocking(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run CPU-bound `fn` (decode, inference) on the inference pool, off the event loop."""
        return await _run_on(self.pools.inference, fn, *args, **kwargs)

    async def run_io(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run blocking database, file or network work on the I/O pool, off the event loop."""
        return await _run_on(self.pools.io, fn, *args, **kwargs)

    async def run_password(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a password hash or check on its own small pool (take a `login_guard` slot
        first, so nothing queues there)."""
        return await _run_on(self.pools.passwords, fn, *args, **kwargs)

    def analyse_options(self, **overrides: object) -> AnalyseOptions:
        """Analysis options from settings, with per-request overrides."""
        s = self.settings
        base: dict[str, object] = {
            "detector": s.detector,
            "det_threshold": s.det_threshold,
            "min_face_size": s.min_face_size_px,
            "max_faces": s.max_faces,
            "tta": s.embed_tta,
            "detect_max_side": s.detect_max_side_px,
            "quality": self.quality_policy(),
        }
        base.update({k: v for k, v in overrides.items() if v is not None})
        return AnalyseOptions(**base)  # type: ignore[arg-type]

    def quality_policy(self) -> QualityPolicy:
        """The one quality policy, from settings: detect's `issues` and the enroll gate."""
        s = self.settings
        return QualityPolicy(
            level=s.quality_filter,
            min_inter_eye_px=s.quality_min_inter_eye_px,
            min_size_ratio=s.quality_min_size_ratio,
            max_incomplete=s.quality_max_incomplete,
            min_eye_openness=s.quality_min_eye_openness,
            max_eye_occlusion=s.quality_max_eye_occlusion,
            score_override=s.quality_min_score,
        )

    def calibration(self, name: str | None = None) -> Calibration:
        """The similarity scale of an embedding space, or of the embedder set that makes it
        (`dlib_resnet_onnx+mobilefacenet`; default: the server's space), for the augmentation
        in force."""
        space = space_of(name) if name else self.pool.embedding_space()
        return calibration(space, self.settings.embed_tta)

    def far_threshold(self, far: float, embedder_name: str | None = None) -> float:
        """The similarity threshold whose false-accept rate is `far`; INVALID_ARGUMENT when the
        table does not reach that far (or it is not a rate)."""
        cal = self.calibration(embedder_name)
        try:
            return cal.threshold(far)
        except ValueError as exc:
            raise FaceplaneError(
                Err.INVALID_ARGUMENT,
                f"No threshold is calibrated for far={far:g}; the smallest is {cal.min_far:g}.",
                field="far",
                far=far,
                min_far=cal.min_far,
            ) from exc

    def compare_threshold(
        self, embedder_name: str | None = None, far: float | None = None
    ) -> tuple[float, float]:
        """(similarity threshold, its FAR) for a compare `match`: the request's `far`, else
        the deprecated FACEPLANE_COMPARE_THRESHOLD, else FACEPLANE_COMPARE_FAR."""
        if far is None and self.settings.compare_threshold is not None:
            threshold = self.settings.compare_threshold
            cal = self.calibration(embedder_name)
            return threshold, cal.far(cal.score_for_similarity(threshold))
        chosen = self.settings.compare_far if far is None else far
        return self.far_threshold(chosen, embedder_name), chosen


async def _run_on(
    executor: ThreadPoolExecutor, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
) -> T:
    # The context travels with the job (request-scoped logging fields, as Starlette does).
    ctx = contextvars.copy_context()
    call = functools.partial(ctx.run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(executor, call)
