"""The MediaPipe face mesh: the canonical face's protobuf, the 468 points on real photos, the
head pose fitted to them, eye and mouth openness, and the region masks."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from faceplane.engine import mesh as M
from faceplane.engine.faces import AnalyseOptions, Analysis, Face, analyse_image
from faceplane.engine.models.pool import ModelPool
from faceplane.engine.quality import measure_quality
from faceplane.settings import Settings

LFW = "lfw_view1/images"
EXPRESSIONS = "faces/faceapijs/examples/images"
MESH = AnalyseOptions(landmarks="mesh")


@pytest.fixture(scope="module")
def pool(settings: Settings) -> ModelPool:
    return ModelPool(settings.models_dir)


@pytest.fixture(scope="module")
def canonical(pool: ModelPool) -> M.CanonicalFace:
    return pool.face_geometry()


def photo(testdata: Path, name: str) -> np.ndarray:
    return np.asarray(Image.open(testdata / name).convert("RGB"))


def faces(pool: ModelPool, rgb: np.ndarray, opts: AnalyseOptions = MESH) -> list[Face]:
    analysis: Analysis = analyse_image(pool, rgb, opts)
    return analysis.faces


def rotated(rgb: np.ndarray, degrees: float) -> np.ndarray:
    """`rgb` turned counter-clockwise by `degrees` about its centre, black borders."""
    h, w = rgb.shape[:2]
    return cv2.warpAffine(rgb, cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0), (w, h))


# ---- the canonical face ----------------------------------------------------------------------


def test_the_canonical_face_has_468_vertices_and_triangles_among_them(
    canonical: M.CanonicalFace,
) -> None:
    assert canonical.vertices.shape == (468, 3) and canonical.uv.shape == (468, 2)
    assert len(canonical.triangles) > 800 and canonical.triangles.max() < 468
    assert set(np.unique(canonical.triangles)) == set(range(468))  # every vertex is used
    assert len(canonical.basis_ids) > 10 and canonical.basis_ids.max() < 468
    assert (canonical.basis_weights > 0).all()
    # Centimetres, x to the subject's left (the image's right), y up, z towards the viewer:
    # the right eye's outer corner (33) mirrors the left one's (263), the nose tip (1) is the
    # nearest point, the chin (152) is below the forehead (10).
    v = canonical.vertices
    assert v[33, 0] < 0 < v[263, 0] and v[33, 0] == pytest.approx(-v[263, 0])
    assert v[1, 2] == pytest.approx(v[:, 2].max(), abs=0.5)
    assert v[152, 1] < v[10, 1] and 10 < v[10, 1] - v[152, 1] < 25


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    head = _varint(number << 3 | wire)
    return head + (_varint(len(payload)) + payload if wire == 2 else payload)


def test_packed_and_unpacked_repeated_fields_read_the_same(canonical: M.CanonicalFace) -> None:
    verts = np.column_stack([canonical.vertices, canonical.uv]).ravel()
    tris = canonical.triangles.ravel()
    basis = b"".join(
        _field(2, 2, _field(1, 0, _varint(int(i))) + _field(2, 5, struct.pack("<f", w)))
        for i, w in zip(canonical.basis_ids, canonical.basis_weights, strict=True)
    )
    packed_mesh = _field(3, 2, struct.pack(f"<{len(verts)}f", *verts)) + _field(
        4, 2, b"".join(_varint(int(t)) for t in tris)
    )
    unpacked_mesh = b"".join(_field(3, 5, struct.pack("<f", v)) for v in verts) + b"".join(
        _field(4, 0, _varint(int(t))) for t in tris
    )
    for mesh in (packed_mesh, unpacked_mesh):
        face = M.parse_geometry(_field(1, 2, mesh) + basis + _field(3, 0, _varint(1)))
        np.testing.assert_allclose(face.vertices, canonical.vertices, atol=1e-6)
        np.testing.assert_array_equal(face.triangles, canonical.triangles)
        np.testing.assert_array_equal(face.basis_ids, canonical.basis_ids)
        np.testing.assert_allclose(face.basis_weights, canonical.basis_weights, rtol=1e-6)


@pytest.mark.parametrize(
    "blob",
    [
        b"",  # no mesh
        b"\x0a\x05\x1d\x00\x00",  # a float cut short
        b"\x0a\x80",  # a length cut short
        _field(1, 2, _field(3, 5, struct.pack("<f", 1.0)) * 4),  # 4 floats: not whole vertices
        _field(1, 2, _field(3, 5, b"\0\0\0\0") * 5 + _field(4, 2, bytes([0, 0, 1]))),  # index 1
        b"\x0b",  # wire type 3 (groups) is not read
    ],
)
def test_a_damaged_geometry_is_refused(blob: bytes) -> None:
    with pytest.raises(ValueError):
        M.parse_geometry(blob)


def test_the_installed_file_reads_as_the_pool_gives_it(
    settings: Settings, canonical: M.CanonicalFace
) -> None:
    path = settings.models_dir / "geometry_pipeline_metadata_landmarks.binarypb"
    np.testing.assert_array_equal(M.load_geometry(path).vertices, canonical.vertices)


# ---- the mesh on real photos -----------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "faces/insightface/t1.jpg",
        "faces/faceapijs/examples/images/bbt1.jpg",
        "faces/deepface/images/couple.jpg",
        f"{EXPRESSIONS}/neutral.jpg",
        f"{LFW}/Aaron_Sorkin/Aaron_Sorkin_0001.jpg",
    ],
)
def test_the_mesh_lies_on_the_face_and_its_eyes_on_the_detectors(
    pool: ModelPool, testdata: Path, name: str
) -> None:
    found = faces(pool, photo(testdata, name))
    assert found
    for face in found:
        d, mesh = face.detection, face.mesh
        assert mesh is not None and mesh.points.shape == (468, 3) and mesh.presence > 0.9
        x, y = mesh.points[:, 0], mesh.points[:, 1]
        inside = (x >= d.x) & (x <= d.x + d.w) & (y >= d.y) & (y <= d.y + d.h)
        assert inside.mean() > 0.9
        # The forehead, the chin and a turned face's far cheek may pass the box a little.
        mx, my = 0.1 * d.w, 0.1 * d.h
        near = (x > d.x - mx) & (x < d.x + d.w + mx) & (y > d.y - my) & (y < d.y + d.h + my)
        assert near.mean() > 0.98
        # The centres of the mesh's eye rings lie near BlazeFace's eye keypoints (turned faces
        # in t1.jpg are the worst: up to about 7% of the box width).
        assert d.keypoints is not None
        for ring, keypoint in ((M.RIGHT_EYE, d.keypoints[0]), (M.LEFT_EYE, d.keypoints[1])):
            centre = mesh.points[list(ring), :2].mean(0)
            assert np.linalg.norm(centre - keypoint) < 0.1 * d.w
        # z is a depth on the scale of x: the nose tip is nearer than the ears' region.
        assert mesh.points[1, 2] < mesh.points[234, 2] and mesh.points[1, 2] < mesh.points[454, 2]
        assert 0.2 * d.w < np.ptp(mesh.points[:, 2]) < 1.5 * d.w


def test_a_crop_without_a_face_has_a_low_presence(pool: ModelPool, testdata: Path) -> None:
    mesher = pool.mesh()
    dogs = photo(testdata, "faces/dlib/examples/faces/dogs.jpg")
    rng = np.random.default_rng(12)
    noise = rng.integers(0, 256, (192, 192, 3), dtype=np.uint8)
    assert mesher.run_crop(noise)[1] < 0.1
    assert mesher.run(dogs, (450.0, 450.0, 300.0, 0.0)).presence < 0.1
    face = faces(pool, photo(testdata, f"{EXPRESSIONS}/neutral.jpg"))[0]
    assert face.mesh is not None and face.mesh.presence > 0.9


# ---- head pose -------------------------------------------------------------------------------


def test_a_frontal_portrait_is_near_zero_and_rotating_it_rolls_it(
    pool: ModelPool, testdata: Path
) -> None:
    rgb = photo(testdata, f"{EXPRESSIONS}/neutral.jpg")
    upright = faces(pool, rgb)[0].quality
    assert upright.pose_source == "mesh"
    assert abs(upright.yaw) < 10 and abs(upright.pitch) < 10 and abs(upright.roll) < 5
    for degrees in (30.0, -30.0):
        q = faces(pool, rotated(rgb, degrees))[0].quality
        # Counter-clockwise in the image is a negative roll.
        assert q.roll - upright.roll == pytest.approx(-degrees, abs=4)
        assert q.yaw == pytest.approx(upright.yaw, abs=4)
        assert q.pitch == pytest.approx(upright.pitch, abs=4)


def test_mirroring_a_turned_face_flips_the_mesh_yaw(pool: ModelPool, testdata: Path) -> None:
    rgb = photo(testdata, f"{LFW}/Aaron_Sorkin/Aaron_Sorkin_0001.jpg")
    a = faces(pool, rgb)[0].quality
    b = faces(pool, rgb[:, ::-1].copy())[0].quality
    # The same signs as the keypoint pose (test_quality): he turns to the image's left.
    assert a.pose_source == b.pose_source == "mesh"
    assert a.yaw < -10 < 10 < b.yaw and abs(a.yaw + b.yaw) < 4
    assert a.roll == pytest.approx(-b.roll, abs=4) and a.pitch == pytest.approx(b.pitch, abs=4)


def test_mesh_and_keypoint_pose_agree_in_sign_on_turned_faces(
    pool: ModelPool, testdata: Path
) -> None:
    rgb = photo(testdata, f"{LFW}/Aaron_Sorkin/Aaron_Sorkin_0001.jpg")
    mesh_q = faces(pool, rgb)[0].quality
    kp_q = faces(pool, rgb, AnalyseOptions(mesh_quality=False))[0].quality
    assert kp_q.pose_source == "keypoints" and kp_q.eye_openness is None
    assert np.sign(mesh_q.yaw) == np.sign(kp_q.yaw) and abs(mesh_q.yaw - kp_q.yaw) < 10


def test_the_similarity_fit_recovers_a_known_rotation(canonical: M.CanonicalFace) -> None:
    # The canonical face turned by known angles, scaled and moved like a mesh in pixels.
    yaw, pitch, roll = np.radians([20.0, -10.0, 15.0])
    rz = np.array([[np.cos(roll), -np.sin(roll), 0], [np.sin(roll), np.cos(roll), 0], [0, 0, 1]])
    ry = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    rx = np.array(
        [[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]]
    )
    image_axes = canonical.vertices * np.array([1.0, -1.0, -1.0])
    points = 7.0 * image_axes @ (rz @ ry @ rx).T + np.array([300.0, 200.0, 0.0])
    got = M.mesh_pose(points, canonical)
    assert got == pytest.approx((20.0, -10.0, 15.0), abs=1e-6)


# ---- eyes and mouth --------------------------------------------------------------------------


def test_shut_eyes_are_less_open_than_the_same_persons_open_ones(
    pool: ModelPool, testdata: Path
) -> None:
    # Ray Allen, eyes shut (0002) and open (0001, 0003): photos looked at by a person.
    def eyes(n: int) -> dict[str, float]:
        q = faces(pool, photo(testdata, f"{LFW}/Ray_Allen/Ray_Allen_000{n}.jpg"))[0].quality
        assert q.eye_openness is not None
        return q.eye_openness

    shut = eyes(2)
    assert max(shut.values()) < 0.15
    for n in (1, 3):
        assert min(eyes(n).values()) > 0.18


def test_a_surprised_mouth_is_open_and_a_neutral_one_shut(pool: ModelPool, testdata: Path) -> None:
    def mouth(name: str) -> float:
        q = faces(pool, photo(testdata, f"{EXPRESSIONS}/{name}.jpg"))[0].quality
        assert q.mouth_openness is not None
        return q.mouth_openness

    assert mouth("surprised") > 0.3
    assert mouth("angry") < 0.1 and mouth("sad") < 0.1


def test_openness_is_only_reported_when_the_mesh_ran(pool: ModelPool, testdata: Path) -> None:
    rgb = photo(testdata, f"{EXPRESSIONS}/neutral.jpg")
    with_mesh = faces(pool, rgb, AnalyseOptions()).pop().quality.as_dict()
    without = faces(pool, rgb, AnalyseOptions(mesh_quality=False)).pop().quality.as_dict()
    assert set(with_mesh) - set(without) == {"eye_openness", "mouth_openness", "occlusion"}
    assert set(with_mesh["eye_openness"]) == {"left", "right"}  # type: ignore[arg-type]
    box = (0.0, 0.0, 100.0, 100.0)
    assert (
        measure_quality(rgb, box, np.zeros((6, 2)) + 50, AnalyseOptions().quality).eye_openness
        is None
    )


# ---- contour and regions ---------------------------------------------------------------------


def test_region_masks_nest_as_a_face_does(pool: ModelPool, testdata: Path) -> None:
    rgb = photo(testdata, "faces/deepface/images/couple.jpg")
    face = faces(pool, rgb)[0]
    assert face.mesh is not None
    points, size = face.mesh.points, (rgb.shape[1], rgb.shape[0])
    contour = M.face_contour(points)
    assert contour.shape == (36, 2)
    polygons = M.region_polygons(points)
    assert set(polygons) == set(M.REGIONS)
    oval = M.region_mask(points, size) > 0
    assert oval.dtype == bool and oval.shape == rgb.shape[:2]
    d = face.detection
    # The oval covers most of the detector's box and little outside it.
    box = np.zeros_like(oval)
    box[int(d.y) : int(d.y + d.h), int(d.x) : int(d.x + d.w)] = True
    assert (oval & box).sum() > 0.6 * box.sum() and (oval & ~box).sum() < 0.2 * oval.sum()
    for region in ("right_eye", "left_eye", "right_eyebrow", "left_eyebrow", "lips"):
        part = M.region_mask(points, size, (region,)) > 0
        assert 0 < part.sum() < 0.1 * oval.sum()
        # (a turned face's far eyebrow may pass the oval a little)
        assert (part & oval).sum() > 0.9 * part.sum(), region
    right, left = (M.region_mask(points, size, (r,)) > 0 for r in ("right_eye", "left_eye"))
    assert not (right & left).any()
    both = M.region_mask(points, size, ("right_eye", "left_eye")) > 0
    assert (both == (right | left)).all()
    # The subject's right eye is on the image's left.
    assert np.nonzero(right)[1].mean() < np.nonzero(left)[1].mean()
    # Lips are a ring: the inner mouth is not in it.
    lips = M.region_mask(points, size, ("lips",)) > 0
    inner = M.region_mask(points, size, ("mouth_inner",)) > 0
    outer = lips | inner
    assert (lips & inner).sum() < 0.05 * outer.sum()
