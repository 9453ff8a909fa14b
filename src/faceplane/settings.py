"""Faceplane settings: one pydantic-settings class, read from FACEPLANE_* environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_models_dir() -> Path:
    """Return the default model folder, ~/.cache/faceplane/models."""
    return Path.home() / ".cache" / "faceplane" / "models"


class Settings(BaseSettings):
    """Every tunable of the server. Units are part of the names."""

    model_config = SettingsConfigDict(env_prefix="FACEPLANE_", extra="ignore")

    # server
    host: str = Field("127.0.0.1", description="Address the HTTP server binds to.")
    port: int = Field(8080, description="Port the HTTP server listens on.")
    max_body_mb: float = Field(
        20.0, description="Largest request body accepted, in MB (multipart or JSON)."
    )

    # models
    models_dir: Path = Field(
        default_factory=default_models_dir, description="Folder holding the installed models."
    )
    detector: str = Field("blazeface", description="Default face detector: `blazeface` or `hog`.")
    embedder: str = Field(
        "auto", description="Embedder: `auto` (ONNX when installed, else dlib), `onnx` or `dlib`."
    )
    inference_threads: int = Field(
        2, ge=1, description="Concurrent inference jobs (the bounded blocking pool size)."
    )
    ort_intra_op_threads: int = Field(
        1, ge=1, description="onnxruntime intra-op threads per session."
    )
    embed_flip: bool = Field(
        True,
        description="Average the descriptors of the face chip and its mirror image "
        "(LFW View 1 DevTrain: 98.91% -> 99.09% 10-fold accuracy).",
    )

    # image intake limits
    max_image_mb: float = Field(15.0, description="Largest image file accepted, in MB.")
    max_image_pixels: int = Field(
        50_000_000, description="Largest width×height accepted (stops decompression bombs)."
    )
    min_image_side_px: int = Field(16, description="Smallest accepted image side, in pixels.")
    max_image_side_px: int = Field(12_000, description="Largest accepted image side, in pixels.")
    detect_max_side_px: int = Field(
        1920, description="Images are downscaled to this longest side before detection."
    )

    # URL intake
    fetch_connect_timeout_s: float = Field(5.0, description="URL download connect timeout.")
    fetch_read_timeout_s: float = Field(10.0, description="URL download read timeout.")
    fetch_total_timeout_s: float = Field(20.0, description="URL download whole-transfer timeout.")
    fetch_max_redirects: int = Field(3, ge=0, description="Redirects followed for an image URL.")
    fetch_allow_private: bool = Field(
        False,
        description="Allow image URLs on loopback, private, link-local and metadata addresses.",
    )

    # face analysis defaults
    det_threshold: float = Field(0.5, ge=0.0, le=1.0, description="Default detection score.")
    min_face_size_px: int = Field(20, ge=0, description="Default smallest face side reported.")
    max_faces: int = Field(100, ge=1, description="Largest number of faces returned.")
    compare_threshold: float | None = Field(
        None,
        description="Override of the calibrated compare threshold (similarity in [0, 1]).",
    )
