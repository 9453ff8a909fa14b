"""services/images.py: every kind of image input, decoded under the runtime's limits."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from faceplane.engine.image import DecodedImage
from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import MB, Runtime
from faceplane.services.images import (
    ImageSource,
    b64decode_checked,
    download_image,
    fetch_images,
    load_image,
)
from faceplane.settings import Settings

MakeRuntime = Callable[..., Runtime]
PORTRAIT = "faces/compreface/embedding-calculator/sample_images/017_0.jpg"  # 565×339 JPEG
ROTATED = "liveness/silent_face/sample/image_T1.jpg"  # 640×480 stored, EXIF orientation 6


@pytest.fixture
def make_rt(tmp_path: Path) -> Iterator[MakeRuntime]:
    """Open runtimes on fresh data folders with the given settings; close them afterwards."""
    opened: list[Runtime] = []

    def make(**settings: Any) -> Runtime:
        rt = Runtime.open(Settings(data_dir=tmp_path / f"rt{len(opened)}", **settings))
        opened.append(rt)
        return rt

    yield make
    for rt in opened:
        rt.close()


@pytest.fixture(scope="module")
def photo(testdata: Path) -> bytes:
    """A real JPEG photo."""
    return (testdata / PORTRAIT).read_bytes()


@pytest.fixture(scope="module")
def server(testdata: Path) -> Iterator[str]:
    """A loopback HTTP server serving real photos: /photo.jpg, /rotated.jpg, and /slow.jpg
    (the photo after a second)."""
    files = {
        "/photo.jpg": testdata / PORTRAIT,
        "/rotated.jpg": testdata / ROTATED,
        "/slow.jpg": testdata / PORTRAIT,
    }

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path = files.get(self.path)
            if path is None:
                self.send_response(404)
                self.end_headers()
                return
            body = path.read_bytes()
            if self.path == "/slow.jpg":
                time.sleep(1.0)
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def load(rt: Runtime, source: ImageSource) -> DecodedImage:
    """`source` downloaded if it is a URL, then decoded: the path of every operation."""
    return load_image(rt, download_image(rt, source))


def failure(rt: Runtime, source: ImageSource) -> FaceplaneError:
    """The error loading `source` raises."""
    with pytest.raises(FaceplaneError) as info:
        load(rt, source)
    return info.value


def b64(data: bytes) -> str:
    """Standard base64 text."""
    return base64.b64encode(data).decode()


# ---- each kind of input --------------------------------------------------------------------


def test_raw_bytes_decode_into_an_rgb_array_of_the_photos_size(
    make_rt: MakeRuntime, photo: bytes
) -> None:
    image = load_image(make_rt(), ImageSource("image", data=photo))
    assert isinstance(image, DecodedImage)
    assert (image.width, image.height, image.format) == (565, 339, "JPEG")
    assert image.rgb.shape == (339, 565, 3) and image.rgb.dtype == np.uint8
    assert image.rgb.std() > 20  # a photograph, not a blank


def test_base64_and_a_data_url_give_the_same_pixels_as_the_bytes(
    make_rt: MakeRuntime, photo: bytes
) -> None:
    rt = make_rt()
    direct = load_image(rt, ImageSource("image", data=photo)).rgb
    as_b64 = load_image(rt, ImageSource("image", base64=b64(photo))).rgb
    as_data_url = load_image(
        rt, ImageSource("image", base64="data:image/jpeg;base64," + b64(photo))
    ).rgb
    assert np.array_equal(direct, as_b64)
    assert np.array_equal(direct, as_data_url)


def test_an_image_url_is_fetched_when_private_addresses_are_allowed(
    make_rt: MakeRuntime, photo: bytes, server: str
) -> None:
    rt = make_rt(fetch_allow_private=True)
    fetched = load(rt, ImageSource("image", url=server + "/photo.jpg"))
    assert np.array_equal(fetched.rgb, load_image(rt, ImageSource("image", data=photo)).rgb)


def test_a_loopback_url_is_refused_by_default_and_names_its_field(
    make_rt: MakeRuntime, server: str
) -> None:
    err = failure(make_rt(), ImageSource("image2", url=server + "/photo.jpg"))
    assert err.err is Err.URL_FORBIDDEN
    assert err.details["field"] == "image2"
    # The URL is named; what its host resolved to is not (it would map the private network).
    assert err.details["url"] == server + "/photo.jpg"
    assert "127.0.0.1" not in str({k: v for k, v in err.details.items() if k != "url"})
    assert "address" not in err.details


def test_a_url_is_never_downloaded_while_decoding(make_rt: MakeRuntime, server: str) -> None:
    # Decoding runs on the inference pool: a URL that reached it undownloaded is a bug, loudly.
    with pytest.raises(FaceplaneError) as info:
        load_image(make_rt(fetch_allow_private=True), ImageSource("image", url=server + "/x"))
    assert info.value.err is Err.INTERNAL


def test_a_url_that_answers_404_is_download_failed(make_rt: MakeRuntime, server: str) -> None:
    err = failure(make_rt(fetch_allow_private=True), ImageSource("image", url=server + "/nope"))
    assert err.err is Err.DOWNLOAD_FAILED
    assert err.details["http_status"] == 404


def test_a_source_with_nothing_in_it_is_a_missing_argument(make_rt: MakeRuntime) -> None:
    err = failure(make_rt(), ImageSource("image1"))
    assert err.err is Err.MISSING_ARGUMENT and err.details["field"] == "image1"


def test_empty_bytes_are_an_empty_image_of_their_field(make_rt: MakeRuntime) -> None:
    err = failure(make_rt(), ImageSource("image", data=b""))
    assert err.err is Err.IMAGE_EMPTY and err.details["field"] == "image"


def test_bytes_that_are_no_image_are_corrupt(make_rt: MakeRuntime, photo: bytes) -> None:
    err = failure(make_rt(), ImageSource("image", data=b"hello, not a picture" * 10))
    assert err.err is Err.IMAGE_CORRUPT
    err = failure(make_rt(), ImageSource("image", data=photo[: len(photo) // 3]))
    assert err.err is Err.IMAGE_CORRUPT  # a truncated JPEG


@pytest.mark.parametrize(
    "text",
    ["not base64 at all!", "aGVsbG8=garbage", "data:image/png;base64,@@@@", "abc"],
)
def test_text_that_is_not_base64_is_an_invalid_argument_naming_the_field(
    make_rt: MakeRuntime, text: str
) -> None:
    err = failure(make_rt(), ImageSource("image1", base64=text))
    assert err.err is Err.INVALID_ARGUMENT
    assert err.details["field"] == "image1"
    assert "image1.base64" in err.message


# ---- limits --------------------------------------------------------------------------------


def test_a_file_over_the_byte_limit_is_refused_in_every_form(
    make_rt: MakeRuntime, photo: bytes, server: str
) -> None:
    rt = make_rt(max_image_mb=(len(photo) - 1) / MB, fetch_allow_private=True)
    for source in (
        ImageSource("image", data=photo),
        ImageSource("image", base64=b64(photo)),
        ImageSource("image", url=server + "/photo.jpg"),
    ):
        err = failure(rt, source)
        assert err.err is Err.IMAGE_FILE_TOO_LARGE, source
        assert err.details["max_bytes"] == len(photo) - 1
        assert err.details["field"] == "image"


def test_a_file_exactly_at_the_byte_limit_is_accepted_as_base64_too(
    make_rt: MakeRuntime, photo: bytes
) -> None:
    # Base64 padding must not count as bytes: a file that fits as an upload fits as base64.
    assert len(photo) % 3 != 0  # the case where the encoding carries "=" padding
    rt = make_rt(max_image_mb=len(photo) / MB)
    assert rt.limits.max_bytes == len(photo)
    assert load_image(rt, ImageSource("image", data=photo)).width == 565
    assert load_image(rt, ImageSource("image", base64=b64(photo))).width == 565
    assert len(b64decode_checked(rt, "image", b64(photo))) == len(photo)


def test_base64_over_the_limit_is_refused_before_it_is_decoded(make_rt: MakeRuntime) -> None:
    rt = make_rt(max_image_mb=1000 / MB)
    # Not even valid base64: the size is what is checked first.
    with pytest.raises(FaceplaneError) as info:
        b64decode_checked(rt, "image", "!" * 4000)
    assert info.value.err is Err.IMAGE_FILE_TOO_LARGE


@pytest.mark.parametrize(
    ("settings", "code"),
    [
        ({"max_image_pixels": 565 * 339 - 1}, Err.IMAGE_PIXELS_EXCEEDED),
        ({"max_image_side_px": 564}, Err.IMAGE_DIMENSION_TOO_LARGE),
        ({"min_image_side_px": 340}, Err.IMAGE_DIMENSION_TOO_SMALL),
    ],
)
def test_an_image_past_a_pixel_or_side_limit_answers_that_limits_code(
    make_rt: MakeRuntime, photo: bytes, settings: dict[str, int], code: Err
) -> None:
    err = failure(make_rt(**settings), ImageSource("face", data=photo))
    assert err.err is code
    assert (err.details["width"], err.details["height"]) == (565, 339)
    assert err.details["field"] == "face"


def test_an_image_exactly_at_the_pixel_and_side_limits_is_accepted(
    make_rt: MakeRuntime, photo: bytes
) -> None:
    rt = make_rt(max_image_pixels=565 * 339, max_image_side_px=565, min_image_side_px=339)
    assert load_image(rt, ImageSource("image", data=photo)).height == 339


# ---- orientation ---------------------------------------------------------------------------


def test_exif_orientation_is_applied_whatever_the_input(
    make_rt: MakeRuntime, testdata: Path, server: str
) -> None:
    data = (testdata / ROTATED).read_bytes()
    rt = make_rt(fetch_allow_private=True)
    images = [
        load_image(rt, ImageSource("image", data=data)),
        load_image(rt, ImageSource("image", base64=b64(data))),
        load(rt, ImageSource("image", url=server + "/rotated.jpg")),
    ]
    # Stored 640×480 with orientation 6 (rotate 90° clockwise to view): upright it is portrait.
    for image in images:
        assert (image.width, image.height) == (480, 640)
    assert all(np.array_equal(images[0].rgb, i.rgb) for i in images[1:])


def test_the_upright_image_is_the_stored_one_turned_clockwise(
    make_rt: MakeRuntime, testdata: Path
) -> None:
    from PIL import Image

    raw = np.asarray(Image.open(testdata / ROTATED).convert("RGB"))
    upright = load_image(make_rt(), ImageSource("image", data=(testdata / ROTATED).read_bytes()))
    assert np.array_equal(upright.rgb, np.rot90(raw, k=-1))


# ---- downloads before inference, under per-company slots -----------------------------------


def test_fetch_images_turns_every_url_into_bytes_and_leaves_other_inputs_alone(
    make_rt: MakeRuntime, photo: bytes, server: str
) -> None:
    rt = make_rt(fetch_allow_private=True)
    given = {
        "image1": ImageSource("image1", url=server + "/photo.jpg"),
        "image2": ImageSource("image2", base64=b64(photo)),
    }
    ready = asyncio.run(fetch_images(rt, "acme", given))
    assert ready["image1"] == ImageSource("image1", data=photo)
    assert ready["image2"] is given["image2"]
    assert rt.fetch_slots.in_flight() == 0


def test_a_company_past_its_download_cap_is_refused_while_another_company_downloads(
    make_rt: MakeRuntime, photo: bytes, server: str
) -> None:
    rt = make_rt(
        fetch_allow_private=True, fetch_max_concurrent_per_company=1, fetch_slot_wait_s=0.2
    )

    async def three() -> list[Any]:
        slow = {"image": ImageSource("image", url=server + "/slow.jpg")}
        return await asyncio.gather(
            fetch_images(rt, "greedy", slow),
            fetch_images(rt, "greedy", slow),
            fetch_images(rt, "other", slow),
            return_exceptions=True,
        )

    first, second, other = asyncio.run(three())
    assert first["image"].data == photo and other["image"].data == photo
    assert isinstance(second, FaceplaneError)
    assert second.err is Err.RATE_LIMIT_EXCEEDED  # 429 with Retry-After: the caller's own excess
    assert second.details["field"] == "image" and second.details["retry_after_s"] == 1


def test_the_server_wide_download_cap_answers_server_busy(
    make_rt: MakeRuntime, server: str
) -> None:
    rt = make_rt(fetch_allow_private=True, fetch_max_concurrent=1, fetch_slot_wait_s=0.2)

    async def two() -> list[Any]:
        slow = {"image": ImageSource("image", url=server + "/slow.jpg")}
        return await asyncio.gather(
            fetch_images(rt, "a", slow), fetch_images(rt, "b", slow), return_exceptions=True
        )

    results = asyncio.run(two())
    assert [type(r) is FaceplaneError and r.err for r in results].count(Err.SERVER_BUSY) == 1


def test_a_cancelled_request_keeps_its_download_slot_until_the_download_ends(
    make_rt: MakeRuntime, server: str
) -> None:
    rt = make_rt(fetch_allow_private=True)

    async def cancel_midway() -> int:
        job = asyncio.ensure_future(
            fetch_images(rt, "acme", {"image": ImageSource("image", url=server + "/slow.jpg")})
        )
        await asyncio.sleep(0.3)
        job.cancel()
        await asyncio.sleep(0)
        return rt.fetch_slots.in_flight("acme")

    # The download still runs on its thread: the slot is not free for the caller's next one.
    assert asyncio.run(cancel_midway()) == 1
    assert wait_for(lambda: rt.fetch_slots.in_flight("acme") == 0, 5.0)


def wait_for(pred: Callable[[], bool], seconds: float) -> bool:
    """Poll `pred` until it holds or `seconds` pass."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False
