"""The error catalogue: one enum whose members carry their HTTP status, message and vendor codes.

Every failure Faceplane reports is a member of :class:`Err`. Each member names the code that
each vendor dialect renders for it (Pho.to, AILabTools, Linkface, Oz Forensics), and every
code in every vendor's table (``faceplane.catalogue``) has exactly one *home* member:

1. the member that lists it in ``also`` (as ``"vendor:code"``), if any; else
2. the first member, in the order below, whose own vendor value it is.

So order matters where several members share a vendor code: the broad member comes first
(``INVALID_ARGUMENT`` before the many 400s that also render Linkface ``INVALID_ARGUMENT``).
Where order cannot give the right home, the home claims the code in ``also``, even when it is
the member's own value (``APP_NOT_FOUND`` claims Pho.to 606 from the earlier ``AUTH_INVALID``).

Codes are UPPER_SNAKE and never renamed once shipped. ``docs/errors.md`` is generated from
this module by ``faceplane errors-doc``; a contract test fails when it is stale.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import Enum

from faceplane.catalogue import load_vendor_table

__all__ = [
    "VENDOR_TITLES",
    "Err",
    "ErrSpec",
    "FaceplaneError",
    "render_errors_markdown",
    "split_vendor_code",
    "vendor_home",
]

VENDOR_TITLES: dict[str, str] = {
    "photo": "Pho.to",
    "ailab": "AILabTools",
    "linkface": "Linkface",
    "oz": "Oz Forensics",
}


@dataclass(frozen=True)
class ErrSpec:
    """The data one catalogue member carries."""

    http: int  # native HTTP status
    message: str  # default human message (English, one sentence)
    photo: tuple[str, int]  # (status "Error" | "SecurityError", err_code)
    ailab: str  # error_detail.code
    linkface: str  # status field
    oz: int  # error_code
    also: tuple[str, ...] = ()  # further vendor codes this member is the home of, "vendor:code"


_E = ErrSpec
_ERR = "Error"
_SEC = "SecurityError"


class Err(Enum):
    """Every error Faceplane can return; a member's value is its :class:`ErrSpec`."""

    # fmt: off
    # ---- the request itself ------------------------------------------------------------------
    INVALID_ARGUMENT = _E(400, "A request parameter is invalid.",
        (_ERR, -3), "ERROR_PARAMETERS", "INVALID_ARGUMENT", 4,
        also=("ailab:ERROR_INVALID_PARAMETER", "ailab:ERROR_INVALID_SIDE_PARAMETER",
              "ailab:UNSUPPORTED_PARAMETER_VALUES", "ailab:EXCEEDING_LIMITS",
              "ailab:ERROR_INCORRECT_FILE_COUNT", "linkface:Bad Request"))
    MISSING_ARGUMENT = _E(400, "A required request parameter is missing.",
        (_ERR, -3), "MISSING_PARAMETERS", "INVALID_ARGUMENT", 3,
        also=("ailab:ERROR_MISSING_LIMIT_PARAMETER", "ailab:ERROR_MISSING_TASKS_PARAMETER",
              "ailab:ERROR_MISSING_ASSURE_DIRECTION_PARAMETER",
              "ailab:ERROR_MISSING_MIN_HEIGHT_PARAMETER", "ailab:ERROR_MISSING_OUTPUT_FORMAT"))
    INVALID_TYPE = _E(400, "A request parameter has the wrong type.",
        (_ERR, -3), "ERROR_INVALID_PARAMETER_FORMAT", "INVALID_ARGUMENT", 5,
        also=("ailab:ERROR_PARAMETER_CONVERSION_FAILED",))
    PARAMETERS_EMPTY = _E(400, "One or more required parameters are empty.",
        (_SEC, 614), "PARAMETERS_CANNOT_EMPTY", "INVALID_ARGUMENT", 3)
    ENCODING_ERROR = _E(400, "A request parameter is not valid UTF-8.",
        (_ERR, -3), "ERROR_INVALID_PARAMETER_FORMAT", "ENCODING_ERROR", 4)
    ROUTE_NOT_FOUND = _E(404, "No API route matches this path.",
        (_ERR, -3), "ERROR_AI_NOT_EXISTS", "NOT_FOUND", 10)
    METHOD_NOT_ALLOWED = _E(405, "This HTTP method is not allowed on this route.",
        (_ERR, -3), "ERROR_ILLEGAL_OPERATION", "NOT_FOUND", 1)
    # AILab has no 501: "AI does not exist or has been deactivated" is its word for a capability
    # this server does not offer. Faceplane never stores whole photos, so a request for image
    # storage is one such capability too: NOT_IMPLEMENTED is the home of that code.
    NOT_IMPLEMENTED = _E(501, "This operation is not implemented by this server.",
        (_ERR, -3), "ERROR_AI_NOT_EXISTS", "NOT_FOUND", 2,
        also=("ailab:ERROR_IMAGE_STORAGE_NOT_SUPPORTED",))
    RESPONSE_FORMAT_UNSUPPORTED = _E(406, "The requested response format is not supported.",
        (_ERR, -3), "ERROR_UNSUPPORTED_RESPONSE_FORMAT", "INVALID_ARGUMENT", 4,
        also=("ailab:ERROR_INVALID_RESPONSE_FORMAT",))
    OUTPUT_FORMAT_UNSUPPORTED = _E(400, "The requested output image format is not supported.",
        (_ERR, -3), "ERROR_INVALID_OUTPUT_FORMAT", "INVALID_ARGUMENT", 4)
    BATCH_LIMIT_EXCEEDED = _E(400, "The request holds more items than one batch allows.",
        (_ERR, -3), "ERROR_BATCH_TASK_LIMIT_EXCEEDED", "INVALID_ARGUMENT", 4,
        also=("ailab:ERROR_TOO_MANY_FILES", "ailab:ERROR_TOO_MANY_GROUPS_IN_GROUP_LIST",
              "ailab:ERROR_TOO_MANY_UIDS_IN_UID_LIST", "ailab:ERROR_TOO_MANY_APPS_IN_APP_LIST"))

    # ---- the server --------------------------------------------------------------------------
    INTERNAL = _E(500, "An internal error occurred.",
        (_ERR, 1), "SERVICE_INTERNAL_ERROR", "INTERNAL_ERROR", 0,
        also=("photo:-4", "photo:4", "ailab:UNKNOWN_ERROR"))
    PROCESSING_FAILED = _E(500, "The server failed to process the request.",
        (_ERR, -1), "PROCESSING_FAILURE", "INTERNAL_ERROR", 0,
        also=("ailab:ERROR_IMAGE_RECOGNITION_FAILED",))
    TIMEOUT = _E(504, "The operation took too long and was stopped.",
        (_ERR, -7), "AI_SERVICE_TIMEOUT", "INTERNAL_ERROR", 0)
    SERVER_BUSY = _E(503, "The server is at capacity; try again later.",
        (_ERR, -5), "AI_SERVICE_FLOW_RESTRICTION", "INTERNAL_ERROR", 0,
        also=("ailab:ERROR_RESOURCE_UNAVAILABLE", "ailab:ERROR_INSUFFICIENT_RESOURCES"))
    WORKER_FAILED = _E(500, "The worker running the task failed.",
        (_ERR, 3), "SERVICE_INTERNAL_ERROR", "INTERNAL_ERROR", 0)
    DATABASE_ERROR = _E(500, "The database failed to complete the operation.",
        (_ERR, -4), "SERVICE_INTERNAL_ERROR", "INTERNAL_ERROR", 12)
    STORAGE_ERROR = _E(500, "The file store failed to read or write a file.",
        (_ERR, -4), "FILE_SERVICE_ERROR", "INTERNAL_ERROR", 0,
        also=("ailab:ERROR_FILE_UPLOAD_FAILED", "ailab:ERROR_GET_FACE_IMAGE_FAILED",
              "ailab:ERROR_FACE_IMAGE_ADDITION_FAILED"))
    EXTERNAL_SERVICE_ERROR = _E(502, "An external service failed to answer correctly.",
        (_ERR, -4), "ERROR_GATEWAY", "INTERNAL_ERROR", 11)
    MODEL_UNAVAILABLE = _E(503, "A model this needs is missing or not in the model set.",
        (_ERR, -4), "AI_SERVICE_NOT_FOUND", "INTERNAL_ERROR", 2)
    INFERENCE_FAILED = _E(500, "A model failed while processing the image.",
        (_ERR, -1), "AI_SERVICE_ERROR", "INTERNAL_ERROR", 0,
        also=("ailab:AI_SERVICE_INTERNAL_ERROR",))

    # ---- authentication and the caller's account ---------------------------------------------
    AUTH_INVALID = _E(401, "The API key or token is not valid.",
        (_SEC, 606), "ERROR_USER_NOT_EXISTS", "UNAUTHORIZED", 7)
    AUTH_MISSING = _E(401, "No API key or token was given.",
        (_SEC, 614), "ERROR_USER_NOT_EXISTS", "UNAUTHORIZED", 6)
    AUTH_EXPIRED = _E(401, "The API key or token has expired.",
        (_SEC, 608), "ERROR_USER_NOT_EXISTS", "KEY_EXPIRED", 8)
    AUTH_FORBIDDEN = _E(403, "This key may not perform this operation.",
        (_SEC, 606), "AI_SERVICE_UNAUTHORIZED", "NO_PERMISSION", 9,
        also=("linkface:Forbidden",))
    APP_NOT_FOUND = _E(401, "The application id is unknown.",
        (_SEC, 606), "ERROR_APPLICATIONS_NOT_EXISTS", "UNAUTHORIZED", 7,
        also=("photo:606",))
    KEY_MISSING = _E(401, "No signing key has been generated for this application.",
        (_SEC, 600), "ERROR_APPLICATIONS_NOT_EXISTS", "UNAUTHORIZED", 7)
    SIGNATURE_INVALID = _E(401, "The request signature does not match its data.",
        (_SEC, 613), "ERROR_APPLICATIONS_NOT_EXISTS", "UNAUTHORIZED", 7)
    APP_DEACTIVATED = _E(403, "The application has been deactivated.",
        (_SEC, 607), "ERROR_USER_LOCKED", "NO_PERMISSION", 9)
    APP_EXPIRED = _E(403, "The application's access has expired.",
        (_SEC, 608), "ERROR_USER_LOCKED", "KEY_EXPIRED", 9,
        also=("photo:608",))

    # ---- rates, quotas and credits -----------------------------------------------------------
    RATE_LIMIT_EXCEEDED = _E(429, "Too many requests; retry after the rate-limit window resets.",
        (_SEC, 609), "ERROR_NOT_ENOUGH_CREDITS", "RATE_LIMIT_EXCEEDED", 9)
    QUOTA_EXCEEDED = _E(429, "The key has used up its request quota for this period.",
        (_SEC, 609), "ERROR_NOT_ENOUGH_CREDITS", "OUT_OF_QUOTA", 9)
    APP_REQUEST_LIMIT = _E(429, "The application has reached its limit on requests.",
        (_SEC, 609), "ERROR_NOT_ENOUGH_CREDITS", "OUT_OF_QUOTA", 9,
        also=("photo:609",))
    CREDITS_INSUFFICIENT = _E(429, "The account has too few credits for this operation.",
        (_SEC, 609), "ERROR_NOT_ENOUGH_CREDITS", "OUT_OF_QUOTA", 9,
        also=("ailab:ERROR_NOT_ENOUGH_CREDITS",))

    # ---- image intake ------------------------------------------------------------------------
    IMAGE_FORMAT_UNSUPPORTED = _E(415, "The image format is not supported.",
        (_ERR, -10), "UNSUPPORTED_FILE_TYPES", "INVALID_IMAGE_FORMAT_OR_SIZE", 4)
    IMAGE_CORRUPT = _E(400, "The file is not a readable image.",
        (_ERR, -10), "FILE_DECODING_FAILURE", "CORRUPT_IMAGE", 4,
        also=("ailab:ERROR_INVALID_FILE",))
    IMAGE_FILE_TOO_LARGE = _E(413, "The image file is larger than the size limit.",
        (_ERR, -6), "FILE_SIZE_EXCEEDS_LIMIT", "IMAGE_FILE_SIZE_TOO_BIG", 4)
    PAYLOAD_TOO_LARGE = _E(413, "The request body is larger than the server accepts.",
        (_ERR, -6), "ERROR_REQUEST_BODY_TOO_LARGE", "Request Entity Too Large", 4,
        also=("ailab:ERROR_CONTENT_TOO_LONG", "ailab:ERROR_RESPONSE_BODY_TOO_LARGE"))
    IMAGE_PIXELS_EXCEEDED = _E(413, "The image has more pixels than the server will decode.",
        (_ERR, -6), "FILE_RESOLUTION_EXCEEDS_LIMITS", "INVALID_IMAGE_FORMAT_OR_SIZE", 4)
    IMAGE_DIMENSION_TOO_SMALL = _E(422, "The image is too small to process.",
        (_ERR, -1002), "ERROR_LOW_RESOLUTION", "INVALID_IMAGE_FORMAT_OR_SIZE", 4)
    IMAGE_DIMENSION_TOO_LARGE = _E(422, "The image width or height exceeds the limit.",
        (_ERR, -6), "ERROR_HIGH_RESOLUTION", "INVALID_IMAGE_FORMAT_OR_SIZE", 4)
    IMAGE_EMPTY = _E(400, "The image file is empty.",
        (_ERR, -1002), "PARAMETERS_CANNOT_EMPTY", "CORRUPT_IMAGE", 4)
    IMAGE_GRAYSCALE_UNSUPPORTED = _E(415, "This operation does not accept grayscale images.",
        (_ERR, -10), "ERROR_UNSUPPORTED_GRAYSCALE_IMAGE", "INVALID_IMAGE_FORMAT_OR_SIZE", 4)
    VIDEO_TOO_LONG = _E(413, "The video is longer than the duration limit.",
        (_ERR, -6), "ERROR_VIDEO_DURATION_EXCEEDED", "INVALID_IMAGE_FORMAT_OR_SIZE", 4)
    IMAGE_CONTENT_UNSUITABLE = _E(422, "The image content does not suit this operation.",
        (_ERR, -1002), "FILE_CONTENT_NON_COMPLIANCE", "INVALID_IMAGE_FORMAT_OR_SIZE", 4,
        also=("ailab:ERROR_CONTENT_NON_COMPLIANCE", "ailab:ERROR_ILLEGAL_FILE",
              "ailab:ERROR_SCENE_TYPE_MISMATCH", "ailab:ERROR_FACE_COPY_SCENE_MISMATCH",
              "ailab:ERROR_CARTOON_FACE_NOT_SUPPORTED"))
    MASK_SIZE_MISMATCH = _E(422, "The mask and the image must have the same size.",
        (_ERR, -3), "ERROR_MASK_IMAGE_RESOLUTION_MISMATCH", "INVALID_ARGUMENT", 4)

    # ---- images given by URL -----------------------------------------------------------------
    DOWNLOAD_FAILED = _E(400, "The image could not be downloaded from its URL.",
        (_ERR, -2), "ERROR_FILE_DOWNLOAD_FAILED", "DOWNLOAD_ERROR", 11,
        also=("ailab:ERROR_DATA_TRANSFER_FAILED",))
    DOWNLOAD_TIMEOUT = _E(400, "Downloading the image from its URL timed out.",
        (_ERR, -7), "ERROR_FILE_DOWNLOAD_TIMEOUT", "DOWNLOAD_TIMEOUT", 11)
    URL_INVALID = _E(400, "The image URL is malformed or does not use http or https.",
        (_ERR, -2), "ERROR_PARAMETERS", "INVALID_ARGUMENT", 4)
    URL_FORBIDDEN = _E(403, "The image URL points to an address the server may not fetch.",
        (_ERR, -2), "ERROR_PARAMETERS", "DOWNLOAD_ERROR", 4)

    # ---- faces: detection and quality --------------------------------------------------------
    FACE_NOT_FOUND = _E(422, "No face was found in the image.",
        (_ERR, -1000), "ERROR_NO_FACE_IN_FILE", "NO_FACE_DETECTED", 4,
        also=("ailab:ERROR_NO_RECOGNITION_TARGET_DETECTED",))
    FACE_INDEX_OUT_OF_RANGE = _E(422, "The face index is beyond the faces found in the image.",
        (_ERR, -1000), "UNSUPPORTED_PARAMETER_VALUES", "INVALID_ARGUMENT", 4)
    BAD_FACE_RECT = _E(400, "The face rectangle or points are invalid.",
        (_ERR, -1001), "ERROR_INVALID_FACE_BOX_PARAMETER", "INVALID_ARGUMENT", 4)
    FACE_TOO_SMALL = _E(422, "The face is too small to analyse.",
        (_ERR, -1000), "ERROR_SMALL_FACE_SIZE", "NO_FACE_DETECTED", 4)
    FACE_SIZE_UNSUITABLE = _E(422, "The face is too small or too large relative to the image.",
        (_ERR, -1000), "ERROR_FACE_SIZE_NOT_MEET_REQUIREMENTS", "NO_FACE_DETECTED", 4)
    FACE_SIZE_RATIO = _E(422, "The face takes too small a part of the image.",
        (_ERR, -1000), "ERROR_FACE_SIZE_RATIO_NOT_MET", "NO_FACE_DETECTED", 4)
    FACE_INCOMPLETE = _E(422, "The face is cut off by the edge of the image.",
        (_ERR, -1000), "ERROR_INCOMPLETE_FACE", "NO_FACE_DETECTED", 4)
    FACE_BLURRY = _E(422, "The face is too blurry.",
        (_ERR, -1000), "ERROR_BLURRY_FACE", "NO_FACE_DETECTED", 4)
    FACE_POOR_LIGHTING = _E(422, "The face is too dark, too bright or unevenly lit.",
        (_ERR, -1000), "ERROR_POOR_FACE_LIGHTING", "NO_FACE_DETECTED", 4)
    FACE_NOT_FRONTAL = _E(422, "The face is turned too far away from the camera.",
        (_ERR, -1000), "ERROR_FACE_NOT_FACING_FORWARD", "NO_FACE_DETECTED", 4)
    FACE_OCCLUDED = _E(422, "The face is partly covered.",
        (_ERR, -1000), "ERROR_OBSTRUCTED_FACE", "NO_FACE_DETECTED", 4)
    FACE_LEFT_EYE_OCCLUDED = _E(422, "The left eye is covered.",
        (_ERR, -1000), "ERROR_LEFT_EYE_OCCLUSION_TOO_HIGH", "NO_FACE_DETECTED", 4)
    FACE_RIGHT_EYE_OCCLUDED = _E(422, "The right eye is covered.",
        (_ERR, -1000), "ERROR_RIGHT_EYE_OCCLUSION_TOO_HIGH", "NO_FACE_DETECTED", 4)
    FACE_LEFT_SIDE_OCCLUDED = _E(422, "The left side of the face is covered.",
        (_ERR, -1000), "ERROR_LEFT_FACE_OCCLUSION_TOO_HIGH", "NO_FACE_DETECTED", 4)
    FACE_RIGHT_SIDE_OCCLUDED = _E(422, "The right side of the face is covered.",
        (_ERR, -1000), "ERROR_RIGHT_FACE_OCCLUSION_TOO_HIGH", "NO_FACE_DETECTED", 4)
    FACE_NOSE_OCCLUDED = _E(422, "The nose is covered.",
        (_ERR, -1000), "ERROR_NOSE_OCCLUSION_TOO_HIGH", "NO_FACE_DETECTED", 4)
    FACE_MOUTH_OCCLUDED = _E(422, "The mouth is covered.",
        (_ERR, -1000), "ERROR_MOUTH_OCCLUSION_TOO_HIGH", "NO_FACE_DETECTED", 4)
    FACE_CHIN_OCCLUDED = _E(422, "The chin is covered.",
        (_ERR, -1000), "ERROR_CHIN_OCCLUSION_TOO_HIGH", "NO_FACE_DETECTED", 4)
    FACE_POOR_QUALITY = _E(422, "The face quality is too low for this operation.",
        (_ERR, -1000), "ERROR_POOR_FACE_QUALITY", "NO_FACE_DETECTED", 4,
        also=("ailab:ERROR_FACE_UNRECOGNIZABLE", "ailab:ERROR_QUALITY_CONTROL_ERROR",
              "ailab:ERROR_TEMPLATE_IMAGE_QUALITY_TOO_LOW"))
    FACE_EYES_CLOSED = _E(422, "The eyes are closed.",
        (_ERR, -1000), "ERROR_POOR_FACE_QUALITY", "NO_FACE_DETECTED", 4)
    FACE_QUALITY_SCORE_LOW = _E(422, "The face's quality score is below the level asked for.",
        (_ERR, -1000), "ERROR_QUALITY_SCORE_NOT_MEET_REQUIREMENTS", "NO_FACE_DETECTED", 4)
    LIVENESS_FAILED = _E(422, "The liveness check did not pass.",
        (_ERR, -1000), "ERROR_LIVENESS_DETECTION_FAILED", "INVALID_ARGUMENT", 4,
        also=("ailab:ERROR_LIVENESS_CONTROL_ERROR", "ailab:ERROR_ACTION_VERIFICATION_FAILED",
              "ailab:ERROR_SYNTHESIS_DETECTION_FAILED"))

    # ---- embeddings --------------------------------------------------------------------------
    EMBEDDING_INVALID = _E(400, "The embedding has the wrong length or is not a finite vector.",
        (_ERR, -3), "ERROR_PARAMETERS", "INVALID_ARGUMENT", 4)
    EMBEDDING_MODEL_MISMATCH = _E(409, "The embedding was made by a different model.",
        (_ERR, -3), "ERROR_PARAMETERS", "INVALID_ARGUMENT", 4)

    # ---- stored resources: images, collections, subjects, faces ------------------------------
    RESOURCE_NOT_FOUND = _E(404, "The requested resource does not exist.",
        (_ERR, -1), "ERROR_RESOURCE_NOT_FOUND", "NOT_FOUND", 10,
        also=("ailab:ERROR_CONTENT_NOT_FOUND", "oz:10"))
    RESOURCE_EXISTS = _E(409, "A resource with this id already exists.",
        (_ERR, -1), "ERROR_DATA_ALREADY_EXISTS", "INVALID_ARGUMENT", 4)
    RESOURCE_BUSY = _E(409, "The resource is in use or being changed; try again later.",
        (_ERR, -1), "ERROR_RESOURCE_IN_USE", "INVALID_ARGUMENT", 4,
        also=("ailab:ERROR_RESOURCE_IN_TRANSIT", "ailab:ERROR_CLEANING_USER_GROUP_DATA"))
    RESOURCE_EXPIRED = _E(410, "The resource has expired and was removed.",
        (_ERR, -1), "ERROR_RESOURCE_RECLAIMED", "NOT_FOUND", 10)
    IMAGE_NOT_FOUND = _E(404, "No stored image has this id.",
        (_ERR, -2), "ERROR_FILE_NOT_FOUND", "IMAGE_ID_NOT_EXIST", 10)
    COLLECTION_NOT_FOUND = _E(404, "No collection has this id.",
        (_ERR, -1), "ERROR_USER_GROUP_NOT_FOUND", "NOT_FOUND", 10)
    SUBJECT_NOT_FOUND = _E(404, "No subject has this id in the collection.",
        (_ERR, -1), "ERROR_USER_NOT_FOUND", "NOT_FOUND", 10)
    FACE_TOKEN_NOT_FOUND = _E(404, "No stored face has this token.",
        (_ERR, -1), "ERROR_FACE_TOKEN_NOT_FOUND", "NOT_FOUND", 10,
        also=("ailab:ERROR_FACE_NOT_FOUND",))
    COLLECTION_EXISTS = _E(409, "A collection with this id or name already exists.",
        (_ERR, -1), "ERROR_USER_GROUP_ALREADY_EXISTS", "INVALID_ARGUMENT", 4,
        also=("ailab:ERROR_DUPLICATE_GROUP_NAME",))
    SUBJECT_EXISTS = _E(409, "A subject with this id already exists in the collection.",
        (_ERR, -1), "ERROR_USER_ALREADY_EXISTS", "INVALID_ARGUMENT", 4)
    FACE_EXISTS = _E(409, "This face is already stored.",
        (_ERR, -1), "ERROR_FACE_ALREADY_EXISTS", "INVALID_ARGUMENT", 4)
    COLLECTION_LIMIT_EXCEEDED = _E(409, "The maximum number of collections has been reached.",
        (_ERR, -1), "ERROR_DATABASE_LIMIT_EXCEEDED", "INVALID_ARGUMENT", 4)
    SUBJECT_LIMIT_EXCEEDED = _E(409, "The collection holds the maximum number of subjects.",
        (_ERR, -1), "ERROR_DATABASE_LIMIT_EXCEEDED", "INVALID_ARGUMENT", 4)
    FACE_LIMIT_EXCEEDED = _E(409, "The subject holds the maximum number of faces.",
        (_ERR, -1), "ERROR_FACE_TRACE_LIMIT_EXCEEDED", "INVALID_ARGUMENT", 4)

    # ---- tasks -------------------------------------------------------------------------------
    # Pho.to answers an unknown request_id with status WrongID, which has no err_code; its
    # nearest table row is SecurityError 612 "Bad, invalid or empty REQUEST_ID parameter".
    TASK_NOT_FOUND = _E(404, "No task has this request id.",
        (_SEC, 612), "ERROR_RESOURCE_NOT_FOUND", "NOT_FOUND", 10)
    TASK_EXPIRED = _E(410, "The task has expired and its result was removed.",
        (_SEC, 612), "ERROR_RESOURCE_RECLAIMED", "NOT_FOUND", 10)
    TASK_CONFLICT = _E(409, "A task with this idempotency key already exists with other input.",
        (_ERR, -1), "ERROR_TASK_CONFLICT", "INVALID_ARGUMENT", 4)
    TASK_REVOKED = _E(409, "The task has been canceled.",
        (_ERR, -1), "ERROR_TASK_REVOKED", "INVALID_ARGUMENT", 4,
        also=("ailab:ERROR_TASK_STOPPED_PROCESSING",))
    TASK_REVOCATION_FAILED = _E(409, "The task could not be canceled because it has finished.",
        (_ERR, -1), "ERROR_TASK_REVOCATION_FAILED", "INVALID_ARGUMENT", 4)

    # ---- signed data containers (Oz) ---------------------------------------------------------
    CONTAINER_MISSING = _E(400, "No data container was provided.",
        (_ERR, -3), "MISSING_PARAMETERS", "INVALID_ARGUMENT", 13)
    CONTAINER_PAYLOAD_MISSING = _E(400, "The data container has no payload.json.",
        (_ERR, -3), "MISSING_PARAMETERS", "INVALID_ARGUMENT", 3)
    CONTAINER_NO_MEDIA = _E(400, "The data container holds no media.",
        (_ERR, -3), "MISSING_PARAMETERS", "INVALID_ARGUMENT", 4)
    CONTAINER_DAMAGED = _E(400, "The data container is damaged.",
        (_ERR, -3), "FILE_DECODING_FAILURE", "INVALID_ARGUMENT", 5)
    CONTAINER_SIGNATURE_INVALID = _E(400, "The data container's signature or hash is invalid.",
        (_SEC, 613), "ERROR_INVALID_FILE", "INVALID_ARGUMENT", 14)
    CONTAINER_TOO_LARGE = _E(413, "The data container inflates past the server's limits.",
        (_ERR, -6), "ERROR_REQUEST_BODY_TOO_LARGE", "Request Entity Too Large", 14)

    # ---- portrait effects --------------------------------------------------------------------
    TEMPLATE_NOT_FOUND = _E(404, "No effect template has this name.",
        (_ERR, -1003), "ERROR_RESOURCE_NOT_FOUND", "NOT_FOUND", 10)
    EFFECT_FAILED = _E(422, "The effect could not be applied to this image.",
        (_ERR, -1), "ERROR_FACE_BLENDING_FAILED", "INVALID_ARGUMENT", 4)
    BEAUTY_BIG_EYES_INVALID = _E(400, "The big-eyes strength is out of range.",
        (_ERR, -3), "ERROR_INVALID_BIG_EYES_PARAMETER", "INVALID_ARGUMENT", 4)
    BEAUTY_FACE_SLIMMING_INVALID = _E(400, "The face-slimming strength is out of range.",
        (_ERR, -3), "ERROR_INVALID_FACE_SLIMMING_PARAMETER", "INVALID_ARGUMENT", 4)
    BEAUTY_SMOOTHING_INVALID = _E(400, "The skin-smoothing strength is out of range.",
        (_ERR, -3), "ERROR_INVALID_SMOOTHING_PARAMETER", "INVALID_ARGUMENT", 4)
    BEAUTY_WHITENING_INVALID = _E(400, "The skin-whitening strength is out of range.",
        (_ERR, -3), "ERROR_INVALID_SKIN_WHITENING_PARAMETER", "INVALID_ARGUMENT", 4)
    # fmt: on

    @property
    def spec(self) -> ErrSpec:
        """The member's data."""
        value: ErrSpec = self.value
        return value

    @property
    def code(self) -> str:
        """The stable native code, which is the member's name."""
        return self.name

    @property
    def http(self) -> int:
        """The native HTTP status."""
        return self.spec.http

    @property
    def message(self) -> str:
        """The default human message."""
        return self.spec.message

    @property
    def photo(self) -> tuple[str, int]:
        """Pho.to (status, err_code)."""
        return self.spec.photo

    @property
    def ailab(self) -> str:
        """AILabTools error_detail.code."""
        return self.spec.ailab

    @property
    def linkface(self) -> str:
        """Linkface status."""
        return self.spec.linkface

    @property
    def oz(self) -> int:
        """Oz Forensics error_code."""
        return self.spec.oz

    @property
    def also(self) -> tuple[str, ...]:
        """Further vendor codes this member is the home of, as "vendor:code"."""
        return self.spec.also

    def vendor_code(self, vendor: str) -> str:
        """Return the code this member renders in one vendor's dialect, as text."""
        spec = self.spec
        codes = {
            "photo": str(spec.photo[1]),
            "ailab": spec.ailab,
            "linkface": spec.linkface,
            "oz": str(spec.oz),
        }
        try:
            return codes[vendor]
        except KeyError:
            raise ValueError(f"unknown vendor {vendor!r}") from None


class FaceplaneError(Exception):
    """A failure with a catalogue code, an optional specific message and JSON-able details."""

    def __init__(self, err: Err, message: str | None = None, /, **details: object) -> None:
        self.err = err
        self.message = message if message is not None else err.message
        self.details: dict[str, object] = details
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.err.name}: {self.message}"


def split_vendor_code(entry: str) -> tuple[str, str]:
    """Split an ``also`` entry "vendor:code" into (vendor, code); the code may hold colons."""
    vendor, sep, code = entry.partition(":")
    if not sep or vendor not in VENDOR_TITLES or not code:
        raise ValueError(f"bad vendor code {entry!r}: expected 'vendor:code'")
    return vendor, code


@functools.cache
def _homes() -> dict[tuple[str, str], Err]:
    homes: dict[tuple[str, str], Err] = {}
    claims: dict[tuple[str, str], Err] = {}
    for err in Err:
        for vendor in VENDOR_TITLES:
            homes.setdefault((vendor, err.vendor_code(vendor)), err)
        for entry in err.also:
            key = split_vendor_code(entry)
            if key in claims:
                raise ValueError(f"{entry} is claimed by both {claims[key].name} and {err.name}")
            claims[key] = err
    return homes | claims


def vendor_home(vendor: str, code: str) -> Err | None:
    """Return the member that is the home of a vendor's code, or None if it has none."""
    return _homes().get((vendor, code))


def _cell(text: object) -> str:
    """Escape text for a Markdown table cell."""
    return (
        str(text).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")
    )


def render_errors_markdown() -> str:
    """Render the catalogue as the Markdown page docs/errors.md."""
    lines = [
        "# Error catalogue",
        "",
        "<!-- Generated from src/faceplane/errors.py by `faceplane errors-doc`."
        " Do not edit by hand. -->",
        "",
        "Every error Faceplane returns carries one code from this catalogue. The native body is",
        '`{"request_id": "...", "error": {"code": "...", "message": "...", "details": {...}}}`',
        "with the HTTP status below. On a vendor-compatible route the same error is rendered",
        "in that vendor's shape, with the vendor code given in its column. Codes are never",
        "renamed once shipped.",
        "",
        f"{len(Err)} codes.",
        "",
        "| Code | HTTP | Message | Pho.to | AILab | Linkface | Oz |",
        "|---|---|---|---|---|---|---|",
    ]
    for err in Err:
        status, number = err.photo
        lines.append(
            f"| `{err.name}` | {err.http} | {_cell(err.message)} | {status} {number} "
            f"| `{err.ailab}` | `{err.linkface}` | {err.oz} |"
        )
    lines += [
        "",
        "## Vendor codes and their home",
        "",
        "Every code in each vendor's published catalogue has one *home*: the member it means",
        "when read back. Several members may render the same vendor code (many 400s render",
        "Linkface `INVALID_ARGUMENT`); the home is the broadest of them. An *alias*",
        "is one the home member does not render itself: it names that member in the vendor's",
        "more detailed (or older) vocabulary. Oz reuses 3, 4 and 5 for data-container errors;",
        "the `CONTAINER_*` members render those codes, and read back they mean the general member.",
    ]
    for vendor, title in VENDOR_TITLES.items():
        rows = load_vendor_table(vendor)
        lines += [
            "",
            f"### {title}",
            "",
            "| Vendor code | Vendor description | Home | Alias |",
            "|---|---|---|---|",
        ]
        for row in rows:
            home = vendor_home(vendor, row.code)
            code = f"{row.status} {row.code}" if row.status else f"`{row.code}`"
            if row.http_status is not None:
                code = f"{row.http_status} {code}"
            about = f"{row.name}: {row.description}" if row.name else row.description
            if home is None:
                home_cell, alias = "*none*", ""
            else:
                home_cell = f"`{home.name}`"
                alias = "" if home.vendor_code(vendor) == row.code else "yes"
            lines.append(f"| {code} | {_cell(about)} | {home_cell} | {alias} |")
    return "\n".join(lines) + "\n"
