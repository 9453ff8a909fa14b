"""Faceplane settings: one pydantic-settings class, read from FACEPLANE_* environment variables."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def default_data_dir() -> Path:
    """Return the default data folder (database, blobs), ~/.local/share/faceplane."""
    return Path.home() / ".local" / "share" / "faceplane"


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
    oversize_drain_mb: float = Field(
        64.0,
        ge=0,
        description="Of a body past FACEPLANE_MAX_BODY_MB, read and drop up to this many MB "
        "before answering 413, so a client that sends before it reads gets the answer, not a "
        "connection reset.",
    )
    oversize_drain_s: float = Field(
        5.0, ge=0, description="Drain an oversized body for at most this many seconds."
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Addresses or CIDR networks of reverse proxies whose `X-Forwarded-For` and "
        "`X-Forwarded-Proto` are believed (comma-separated); empty: the peer's address is the "
        "client's (audit, throttles).",
    )

    # models
    models_dir: Path = Field(
        default_factory=default_models_dir, description="Folder holding the installed models."
    )
    model_set: Literal["default", "research"] = Field(
        "default",
        description="Which models may run: `default` leaves out weights whose licence or "
        "training data forbids commercial use (`faceplane models list` marks them); `research` "
        "allows them too.",
    )
    detector: Literal["auto", "retinaface", "blazeface", "hog"] = Field(
        "auto",
        description="Default face detector (a request may name another). `auto`: RetinaFace "
        "MobileNet-0.25, or BlazeFace when only it is installed (never HOG). `retinaface`: "
        "finds faces from about 16 px, faces cut by the frame edge (it looks at the photo with "
        "a mirrored border) and small faces of large photos (a second pass at 1440 px); unsure "
        "candidates get a second look, and scores are calibrated so that 0.5 is its operating "
        "point. `blazeface`: MediaPipe full-range, the fastest, misses small and edge-cut faces. "
        "`hog`: dlib's frontal HOG, slow, frontal faces only.",
    )
    embedder: Literal["auto", "fused", "onnx", "dlib", "mobilefacenet"] = Field(
        "auto",
        description="Embedding set: `auto` (dlib's ResNet fused with MobileFaceNet when "
        "MobileFaceNet is installed, else dlib's ResNet alone; its ONNX form when installed), "
        "`fused` (always the fusion), `onnx` or `dlib` (dlib's ResNet alone, ONNX or dlib's "
        "own; space dlib_resnet_v1), `mobilefacenet` (alone). New collections are pinned to "
        "the set's space; collections of a space made of some of its parts keep working.",
    )
    inference_threads: int = Field(
        2, ge=1, description="Concurrent inference jobs (the bounded inference pool size)."
    )
    io_threads: int = Field(
        16, ge=1, description="Threads for blocking database, file and network work."
    )
    ort_intra_op_threads: int = Field(
        1, ge=1, description="onnxruntime intra-op threads per session."
    )
    embed_tta: Literal["none", "flip", "multi"] = Field(
        "flip",
        description="Test-time augmentation of embeddings: `none`; `flip` averages the chip "
        "and its mirror image (2 passes); `multi` adds chips at paddings 0.2 and 0.3 "
        "(6 passes). LFW View 1 DevTrain 10-fold: 98.91%, 99.09%, 99.32%.",
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

    # Oz data containers (a zip): declared sizes are checked before anything is inflated
    oz_container_max_uncompressed_mb: float = Field(
        32.0,
        gt=0,
        description="Largest total an Oz data container may inflate to, in MB (each photo "
        "in it is also held to max_image_mb). Photos barely compress, so this is a little more "
        "than a multipart upload of max_body_mb can carry.",
    )
    oz_container_max_ratio: float = Field(
        20.0,
        gt=0,
        description="Largest uncompressed/compressed size ratio of an Oz data container and "
        "of each member over 1 MB in it (photos barely compress; bombs do).",
    )

    # URL intake
    fetch_connect_timeout_s: float = Field(
        5.0, gt=0, description="URL download: limit of the DNS lookup and of the TCP connect."
    )
    fetch_read_timeout_s: float = Field(
        10.0, gt=0, description="URL download: longest wait for the next bytes."
    )
    fetch_total_timeout_s: float = Field(
        20.0,
        gt=0,
        description="URL download: wall-clock limit of the whole exchange (DNS, connect, TLS, "
        "headers, body, every redirect), enforced at the socket: then DOWNLOAD_TIMEOUT.",
    )
    fetch_max_concurrent_per_company: int = Field(
        4,
        ge=1,
        description="Image URL downloads one company may have in flight in a server process; "
        "more wait `fetch_slot_wait_s`, then answer RATE_LIMIT_EXCEEDED (429).",
    )
    fetch_max_concurrent: int = Field(
        8,
        ge=1,
        description="Image URL downloads in flight in a server process, all companies together; "
        "keep it below `io_threads` so database work always finds a thread. More wait "
        "`fetch_slot_wait_s`, then answer SERVER_BUSY (503).",
    )
    fetch_slot_wait_s: float = Field(
        2.0, ge=0, description="How long a URL download waits for a free download slot."
    )
    fetch_max_redirects: int = Field(3, ge=0, description="Redirects followed for an image URL.")
    fetch_allow_private: bool = Field(
        False,
        description="Allow image URLs on loopback, private, link-local and metadata addresses.",
    )

    # access
    auth_disabled: bool = Field(
        False,
        description="Serve without credentials, as the first company's admin. For local "
        "experiments only: loudly logged at start.",
    )
    default_rate_limit: int = Field(
        600, ge=1, le=2**31 - 1, description="Requests per window of a new app."
    )
    rate_window_s: int = Field(60, ge=1, description="The rate-limit window.")
    quota_period_s: int = Field(30 * 86_400, ge=1, description="The quota (credits) period.")
    access_token_ttl_s: int = Field(900, ge=1, description="Lifetime of an access token.")
    refresh_token_ttl_s: int = Field(7 * 86_400, ge=1, description="Lifetime of a refresh token.")
    login_max_failures: int = Field(
        5,
        ge=1,
        description="Wrong passwords (and attempts in flight) an account is allowed before "
        "its logins are refused with RATE_LIMIT_EXCEEDED (429, Retry-After) for "
        "`login_lockout_s`, doubled at each further failure. Counted per server process.",
    )
    login_max_failures_per_address: int = Field(
        20,
        ge=1,
        description="The same, per client address (the peer, or the client a trusted proxy "
        "names), whichever accounts it tries.",
    )
    login_lockout_s: float = Field(
        1.0, gt=0, description="The first lockout once an account or address is over its limit."
    )
    login_max_lockout_s: float = Field(
        900.0, gt=0, description="The longest lockout: the doubling stops here."
    )
    login_failure_window_s: float = Field(
        900.0,
        gt=0,
        description="Failures older than this (since the last one) are forgotten; a correct "
        "password forgets the account's at once (not its address's).",
    )
    login_hash_threads: int = Field(
        2,
        ge=1,
        description="Password hashes (argon2id, 64 MiB each) computed at once per server "
        "process, on their own pool: a login flood never occupies the inference or I/O pools.",
    )
    login_hash_wait_s: float = Field(
        2.0,
        ge=0,
        description="How long a login waits for a free hashing slot before it is answered "
        "SERVER_BUSY (503, Retry-After).",
    )
    signature_max_skew_s: float = Field(
        300.0, gt=0, description="A signed request's timestamp may be this far off the clock."
    )
    limits_redis_url: str | None = Field(
        None,
        description="Keep rate and quota counters in this Redis (distributed mode); "
        "default: in the database.",
    )

    # storage
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Folder for the embedded database, blobs and the server secret; made "
        "private to its owner (folders 0700, files 0600) whatever the umask.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the metadata database; default: SQLite in data_dir. "
        "Use postgresql+psycopg://... for the distributed mode.",
    )
    secret_key: str | None = Field(
        None,
        description="Secret for signed blob URLs; default: generated once into data_dir.",
    )
    public_url: str | None = Field(
        None,
        description="Base URL of this server in links it returns (signed blob URLs); "
        "default http://HOST:PORT.",
    )
    blob_url_ttl_s: int = Field(3600, ge=1, description="Lifetime of a signed blob URL.")

    # tasks
    executor: str = Field(
        "local", description="Task executor: `local` (worker processes) or `celery`."
    )
    workers: int = Field(2, ge=0, description="Local worker processes started by the server.")
    broker_url: str = Field(
        "redis://127.0.0.1:6379/0", description="Celery broker URL (distributed mode)."
    )
    celery_queue: str = Field(
        "faceplane",
        description="Celery queue the server publishes to and `faceplane worker` consumes.",
    )
    task_max_queue: int = Field(
        1000, ge=1, description="Queued tasks accepted before SERVER_BUSY (503)."
    )
    task_max_queue_per_company: int = Field(
        250,
        ge=1,
        description="Queued tasks of one company accepted before RATE_LIMIT_EXCEEDED (429), "
        "so one tenant's backlog cannot fill the whole queue (capped at task_max_queue).",
    )
    task_max_attempts: int = Field(3, ge=1, description="Runs of a task whose worker dies.")
    task_lease_s: float = Field(
        120.0, gt=0, description="A running task whose worker is silent this long is retried."
    )
    task_ttl_s: int = Field(
        86_400, ge=1, description="Inputs and results of a task are deleted after this."
    )
    batch_max_items: int = Field(50, ge=1, description="Largest POST /v1/tasks:batch.")
    webhook_max_attempts: int = Field(6, ge=1, description="Delivery attempts per webhook.")
    webhook_backoff_s: float = Field(
        2.0, gt=0, description="First retry delay; doubles after each failed attempt."
    )
    webhook_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Wall-clock deadline of one webhook delivery: connect, sending, and the "
        "answer's headers and body (at most 4 KiB of it is read). Past it the attempt fails.",
    )
    webhook_max_concurrent: int = Field(
        8,
        ge=1,
        description="Webhook deliveries in flight at once per server, on the I/O pool (never "
        "more than half of `io_threads`).",
    )
    webhook_max_concurrent_per_company: int = Field(
        2,
        ge=1,
        description="Of those, deliveries of one company's tasks: a slow endpoint of one "
        "company never holds every delivery slot.",
    )
    maintenance_interval_s: float = Field(
        1.0,
        gt=0,
        description="How often the server recovers and expires tasks and claims due webhook "
        "deliveries.",
    )

    # collections and search
    max_collections: int = Field(100, ge=1, description="Collections per company.")
    collection_max_subjects: int = Field(1_000_000, ge=1, description="Subjects per collection.")
    collection_max_faces: int = Field(2_000_000, ge=1, description="Faces per collection.")
    subject_max_faces: int = Field(50, ge=1, description="Faces per subject.")
    enroll_keep_crops: bool = Field(
        False, description="Keep a crop of each enrolled face (never the full photo)."
    )
    # The one quality policy: detect's `issues` and the enroll gate apply the same policy, so
    # a face detect reports without issues is a face enroll accepts (docs/quality.md).
    quality_filter: Literal["NONE", "AUTO", "LOW", "MEDIUM", "HIGH"] = Field(
        "AUTO",
        description="Quality policy (detect's `issues` and the enroll gate): the unified "
        "score's bar. NONE refuses nothing; LOW, MEDIUM, HIGH and AUTO (chosen from the "
        "error-versus-discard curve) are the score model's thresholds; a request may ask for "
        "another with `quality_threshold`.",
    )
    quality_min_score: float | None = Field(
        None,
        ge=0,
        le=100,
        description="Quality policy: a least unified score (0..100) replacing the level's "
        "(unset: the score model's threshold for the level).",
    )
    quality_min_inter_eye_px: float = Field(
        24.0,
        ge=1,
        description="Quality policy, hard: least distance between the eye centres in pixels, "
        "else `too_small`.",
    )
    quality_min_size_ratio: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Quality policy, hard: least √(face box area / image area), else "
        "`size_ratio` (0: off).",
    )
    quality_max_incomplete: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Quality policy, hard: largest share of the face outside the image, else "
        "`incomplete`.",
    )
    quality_min_eye_openness: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Quality policy, hard: least eye aspect ratio of each eye, else "
        "`eyes_closed` (needs the face mesh).",
    )
    quality_max_eye_occlusion: float = Field(
        0.6,
        ge=0,
        le=1,
        description="Quality policy, hard: largest covered share of each eye's area, else "
        "`left_eye_occluded` / `right_eye_occluded` (needs the face mesh).",
    )
    search_default_far: float = Field(
        1e-4, gt=0, lt=1, description="Default false-accept rate of a search threshold."
    )
    index_ann_threshold: int = Field(
        20_000, ge=1, description="Collections this large are searched with HNSW, not exactly."
    )

    # face analysis defaults
    det_threshold: float = Field(0.5, ge=0.0, le=1.0, description="Default detection score.")
    min_face_size_px: int = Field(20, ge=0, description="Default smallest face side reported.")
    max_faces: int = Field(100, ge=1, description="Largest number of faces returned.")
    compare_far: float = Field(
        1e-4,
        gt=0,
        lt=1,
        description="False-accept rate of compare's `match` (per request: `far`). 1e-4, one "
        "different person in 10,000 accepted, is the FIDO biometric bar for verification; "
        "the threshold is the similarity of that FAR on the calibrated scale (0.7).",
    )
    compare_threshold: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Deprecated (use FACEPLANE_COMPARE_FAR): a fixed compare threshold on the "
        "similarity scale, used when a request gives no `far`.",
    )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        """`10.0.0.1,192.168.0.0/16` (or a JSON list) from the environment; each entry must be
        an address or a network."""
        items: object = value
        if isinstance(value, str):
            text = value.strip()
            items = json.loads(text) if text.startswith("[") else text.split(",")
        if not isinstance(items, list | tuple):
            return value
        out = [str(item).strip() for item in items if str(item).strip()]
        for item in out:
            ipaddress.ip_network(item, strict=False)  # ValueError names a bad entry
        return out


def render_settings_markdown() -> str:
    """The settings reference page (docs/settings.md), generated from the fields above."""
    lines = [
        "# Settings",
        "",
        "Generated by `faceplane settings-doc` from `src/faceplane/settings.py`; a test fails",
        "when this page is stale. Every setting is an environment variable with the",
        "`FACEPLANE_` prefix, e.g. `FACEPLANE_PORT=9000`.",
        "",
        "| variable | default | description |",
        "|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        lines.append(
            f"| `FACEPLANE_{name.upper()}` | `{_doc_default(field)}` | {field.description or ''} |"
        )
    return "\n".join(lines) + "\n"


def _doc_default(field: FieldInfo) -> str:
    """A field's default as the page shows it: a factory's value, the home folder as `~`."""
    value = field.get_default(call_default_factory=True, validated_data={})
    if isinstance(value, Path):
        # The page must not depend on who generated it: show the home folder as `~`.
        home = Path.home()
        value = "~/" + value.relative_to(home).as_posix() if value.is_relative_to(home) else value
    return str(value)
