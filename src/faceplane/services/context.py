"""The app-scoped objects every service needs, built once from settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from faceplane.engine.faces import AnalyseOptions
from faceplane.engine.fetch import FetchPolicy
from faceplane.engine.image import ImageLimits
from faceplane.engine.models.pool import ModelPool
from faceplane.engine.models.registry import get_spec
from faceplane.settings import Settings

if TYPE_CHECKING:
    from faceplane.store import Store

MB = 1024 * 1024


@dataclass
class Services:
    """Settings, the model pool and the intake policies, shared by routes, CLI and workers."""

    settings: Settings
    pool: ModelPool
    limits: ImageLimits
    fetch: FetchPolicy
    # The database and blobs, for operations that need them (collections); set by the app,
    # the workers and the CLI commands that use storage.
    store: Store | None = None

    def require_store(self) -> Store:
        """The store, which collection operations need."""
        assert self.store is not None, "this operation needs storage (Services.store)"
        return self.store

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        """Build the services for one app (or one CLI run, or one worker)."""
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
        pool = ModelPool(settings.models_dir, settings.ort_intra_op_threads, settings.embedder)
        return cls(settings, pool, limits, fetch)

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
        }
        base.update({k: v for k, v in overrides.items() if v is not None})
        return AnalyseOptions(**base)  # type: ignore[arg-type]

    def calibration(self, embedder_name: str) -> tuple[float, float]:
        """The similarity calibration of an embedder, for the augmentation in force."""
        cal = get_spec(embedder_name).calibration
        assert cal is not None
        return cal[self.settings.embed_tta]

    def compare_threshold(self, embedder_name: str) -> float:
        """The similarity threshold for a match: the setting, else the model's calibration."""
        if self.settings.compare_threshold is not None:
            return self.settings.compare_threshold
        threshold = get_spec(embedder_name).threshold
        assert threshold is not None
        return threshold
