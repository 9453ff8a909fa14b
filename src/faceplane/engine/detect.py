"""Face detectors: RetinaFace MobileNet-0.25, MediaPipe BlazeFace full-range, dlib HOG."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import cv2
import numpy as np

BLAZE_INPUT = 192
BLAZE_GRID = 48  # full-range model: one anchor per cell of a 48×48 grid (stride 4)
# BlazeFace keypoint order: right eye, left eye, nose tip, mouth centre, right ear, left ear
# ("right" is the subject's right, so it appears on the left of the image).
BLAZE_KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth", "right_ear", "left_ear")
# RetinaFace's five points, in its order: the eye, then the mouth corner, on the image's left
# (the subject's right) first.
RETINA_KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth_right", "mouth_left")
# RetinaFace MobileNet-0.25's anchors: two square sizes per feature-map level, and the
# variances its box and point offsets are encoded with.
RETINA_LEVELS = ((8, (16, 32)), (16, (64, 128)), (32, (256, 512)))
RETINA_VARIANCES = (0.1, 0.2)
RETINA_MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)
# RetinaFace's boxes run from the hairline to the chin (about 3:4); BlazeFace's, like dlib's
# HOG boxes that its 5-point landmark model was trained on, are square, from the brows to the
# chin. Reported boxes follow the square convention, so that face size, crops, the landmark
# model's start and the quality limits keep their meaning: the median relation between the
# two detectors' boxes on 136 LFW View 1 DevTrain faces (centre moved down by 5% of the
# height, width × 1.18, height × 0.87).
RETINA_TO_SQUARE = (0.0, 0.05, 1.18, 0.87)


@dataclass
class Detection:
    """One detected face in image pixels: box (x, y, w, h), score and optional keypoints."""

    x: float
    y: float
    w: float
    h: float
    score: float
    detector: str
    keypoints: np.ndarray | None = field(default=None, repr=False)
    keypoint_names: tuple[str, ...] = BLAZE_KEYPOINTS

    @property
    def area(self) -> float:
        """Box area in square pixels."""
        return self.w * self.h


class Detector(Protocol):
    """Anything that finds faces in an RGB uint8 image."""

    name: str

    def detect(self, rgb: np.ndarray, threshold: float) -> list[Detection]:
        """Return the faces in `rgb` whose score is at least `threshold`."""
        ...


def shrink(rgb: np.ndarray, width: int, height: int) -> tuple[np.ndarray, int, int]:
    """`rgb` resized down to width × height by area averaging, and the width and height of
    the part of `rgb` it shows. A first step by a whole factor takes OpenCV's fast path (twice
    as fast on a 12 MP photo); it drops the last few columns and rows that do not fill one
    block (fewer than the factor), which the returned size accounts for."""
    h, w = rgb.shape[:2]
    k = min(w // max(width, 1), h // max(height, 1))
    if k >= 2:
        w, h = w // k * k, h // k * k
        rgb = cv2.resize(rgb[:h, :w], (w // k, h // k), interpolation=cv2.INTER_AREA)
    if rgb.shape[1] != width or rgb.shape[0] != height:
        rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    return rgb, w, h


def _anchors() -> np.ndarray:
    centres = (np.arange(BLAZE_GRID, dtype=np.float32) + 0.5) / BLAZE_GRID
    ax, ay = np.meshgrid(centres, centres)
    return np.stack([ax.ravel(), ay.ravel()], axis=1)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one box `a` (x1, y1, x2, y2) against many boxes `b` (N, 4)."""
    ix1 = np.maximum(a[0], b[:, 0])
    iy1 = np.maximum(a[1], b[:, 1])
    ix2 = np.minimum(a[2], b[:, 2])
    iy2 = np.minimum(a[3], b[:, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return np.asarray(inter / np.maximum(area_a + area_b - inter, 1e-9))


def weighted_nms(
    boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray, iou_threshold: float = 0.3
) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """MediaPipe-style blending NMS: overlapping candidates are averaged by score."""
    order = np.argsort(-scores)
    boxes, scores, keypoints = boxes[order], scores[order], keypoints[order]
    alive = np.ones(len(scores), dtype=bool)
    out: list[tuple[np.ndarray, float, np.ndarray]] = []
    for i in range(len(scores)):
        if not alive[i]:
            continue
        overlap = iou(boxes[i], boxes) >= iou_threshold
        group = overlap & alive
        alive &= ~group
        weights = scores[group][:, None]
        box = (boxes[group] * weights).sum(0) / weights.sum()
        kps = (keypoints[group] * weights[:, :, None]).sum(0) / weights.sum()
        out.append((box, float(scores[i]), kps))
    return out


class BlazeFaceDetector:
    """BlazeFace full-range (192×192, 2304 anchors), run by LiteRT, with tiling for large images.

    The full-range model sees the whole picture at 192 px, so faces smaller than about
    1/15 of the long side are lost. Large photos are therefore also scanned in overlapping
    tiles, and all candidates are merged with one blending NMS.
    """

    name = "blazeface_full_range"

    def __init__(self, make_interpreter: Callable[[], Any], tile_min_side: int = 520) -> None:
        self._make = make_interpreter
        self._local = threading.local()
        self._anchors = _anchors()
        self.tile_min_side = tile_min_side

    def _interpreter(self) -> tuple[Any, int, int, int]:
        # LiteRT interpreters are not thread-safe: one per worker thread.
        cached = getattr(self._local, "it", None)
        if cached is None:
            it = self._make()
            it.allocate_tensors()
            outs = it.get_output_details()
            reg = next(o["index"] for o in outs if o["shape"][-1] == 16)
            cls = next(o["index"] for o in outs if o["shape"][-1] == 1)
            cached = (it, it.get_input_details()[0]["index"], reg, cls)
            self._local.it = cached
        return cached

    def _run_square(
        self, rgb: np.ndarray, x0: int, y0: int, side: int, threshold: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Run the model on the square window (x0, y0, side), zero-padded outside the image."""
        h, w = rgb.shape[:2]
        window = np.zeros((side, side, 3), dtype=np.uint8)
        sx1, sy1 = max(x0, 0), max(y0, 0)
        sx2, sy2 = min(x0 + side, w), min(y0 + side, h)
        window[sy1 - y0 : sy2 - y0, sx1 - x0 : sx2 - x0] = rgb[sy1:sy2, sx1:sx2]
        interp = cv2.INTER_AREA if side > BLAZE_INPUT else cv2.INTER_LINEAR
        small = cv2.resize(window, (BLAZE_INPUT, BLAZE_INPUT), interpolation=interp)
        tensor = (small.astype(np.float32) / 127.5 - 1.0)[None]
        it, inp, reg_i, cls_i = self._interpreter()
        it.set_tensor(inp, tensor)
        it.invoke()
        raw = it.get_tensor(reg_i)[0]
        logits = it.get_tensor(cls_i)[0, :, 0]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -100.0, 100.0)))
        keep = scores >= threshold
        raw, scores, anchors = raw[keep], scores[keep], self._anchors[keep]
        cx = raw[:, 0] / BLAZE_INPUT + anchors[:, 0]
        cy = raw[:, 1] / BLAZE_INPUT + anchors[:, 1]
        bw = raw[:, 2] / BLAZE_INPUT
        bh = raw[:, 3] / BLAZE_INPUT
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1) * side
        boxes += np.array([x0, y0, x0, y0], dtype=np.float32)
        kps = raw[:, 4:16].reshape(-1, 6, 2) / BLAZE_INPUT + anchors[:, None, :]
        kps = kps * side + np.array([x0, y0], dtype=np.float32)
        return boxes, scores, kps

    def _windows(self, w: int, h: int) -> list[tuple[int, int, int]]:
        """The whole image as one centred square, plus overlapping tiles for large images."""
        side = max(w, h)
        windows = [((w - side) // 2, (h - side) // 2, side)]
        if min(w, h) >= self.tile_min_side:
            # A 2×2 grid of squares of 60% of the short side, overlapping so that a face cut
            # by one tile border lies whole inside a neighbour.
            tile = int(min(w, h) * 0.6)
            for ty in (0, h - tile):
                for tx in (0, w - tile):
                    windows.append((tx, ty, tile))
            if max(w, h) > 1.6 * min(w, h):
                # Panoramas: add the middle column (or row) that the corners leave thin.
                windows += (
                    [((w - tile) // 2, 0, tile), ((w - tile) // 2, h - tile, tile)]
                    if w > h
                    else [(0, (h - tile) // 2, tile), (w - tile, (h - tile) // 2, tile)]
                )
        return windows

    def detect(self, rgb: np.ndarray, threshold: float) -> list[Detection]:
        """Detect faces; boxes and keypoints are in pixels of `rgb`."""
        h, w = rgb.shape[:2]
        parts = [self._run_square(rgb, x0, y0, s, threshold) for x0, y0, s in self._windows(w, h)]
        boxes = np.concatenate([p[0] for p in parts])
        if len(boxes) == 0:
            # A face that fills the frame (a tight crop, an ID-photo chip) is too big for the
            # model, which expects some context: look again with the picture zoomed out.
            side = int(max(w, h) * 1.8)
            parts = [self._run_square(rgb, (w - side) // 2, (h - side) // 2, side, threshold)]
            boxes = parts[0][0]
            if len(boxes) == 0:
                return []
        return self.merge(parts, w, h)

    def merge(
        self,
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
        w: int,
        h: int,
        name: str | None = None,
    ) -> list[Detection]:
        """The candidates of several windows merged by one blending NMS, clipped to the image
        (w × h); boxes under 2 px are dropped."""
        boxes = np.concatenate([p[0] for p in parts])
        scores = np.concatenate([p[1] for p in parts])
        kps = np.concatenate([p[2] for p in parts])
        out = []
        for box, score, kp in weighted_nms(boxes, scores, kps):
            x1, y1 = max(float(box[0]), 0.0), max(float(box[1]), 0.0)
            x2, y2 = min(float(box[2]), float(w)), min(float(box[3]), float(h))
            if x2 - x1 < 2 or y2 - y1 < 2:
                continue
            out.append(Detection(x1, y1, x2 - x1, y2 - y1, score, name or self.name, kp))
        return out


def retina_priors(height: int, width: int) -> np.ndarray:
    """RetinaFace's anchors for an input of height × width: (N, 4) centre x, y, w, h in pixels."""
    out = []
    for step, sizes in RETINA_LEVELS:
        rows, cols = -(-height // step), -(-width // step)
        cy, cx = np.meshgrid(
            (np.arange(rows, dtype=np.float32) + 0.5) * step,
            (np.arange(cols, dtype=np.float32) + 0.5) * step,
            indexing="ij",
        )
        centres = np.stack([cx.ravel(), cy.ravel()], axis=1)
        # Anchor order inside a cell: every size of that cell before the next cell.
        per_cell = [
            np.concatenate([centres, np.full((len(centres), 2), size, np.float32)], axis=1)
            for size in sizes
        ]
        out.append(np.stack(per_cell, axis=1).reshape(-1, 4))
    return np.concatenate(out)


def square_box(box: np.ndarray) -> tuple[float, float, float, float]:
    """A RetinaFace box (x1, y1, x2, y2) in the square convention of `RETINA_TO_SQUARE`."""
    dx, dy, sw, sh = RETINA_TO_SQUARE
    bw, bh = float(box[2] - box[0]), float(box[3] - box[1])
    cx, cy = float(box[0] + box[2]) / 2 + dx * bw, float(box[1] + box[3]) / 2 + dy * bh
    return cx - sw * bw / 2, cy - sh * bh / 2, cx + sw * bw / 2, cy + sh * bh / 2


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Indices kept by greedy non-maximum suppression, best score first."""
    order = list(np.argsort(-scores))
    keep: list[int] = []
    while order:
        i = order.pop(0)
        keep.append(i)
        if not order:
            break
        rest = np.array(order)
        order = [int(j) for j in rest[iou(boxes[i], boxes[rest]) < iou_threshold]]
    return keep


class RetinaFaceDetector:
    """RetinaFace with a MobileNet-0.25 backbone (ONNX, dynamic input size), 5 keypoints.

    Three steps, each chosen by measurement (bench/detect.py and the issue-12 note):

    1. One pass over the whole picture, scaled so that it *with* a mirrored border of
       `edge_pad` × its long side on every side fits `base_side`. The mirror completes a
       face cut by the frame edge into a whole one, which the model then finds.
    2. Pictures whose long side is over 1.5 × `base_side` get a second pass at `fine_side`
       for the small faces of group photos and crowds; only its small boxes are kept (the
       large ones are the first pass's business, and high resolution turns textures of
       large objects into false faces).
    3. A candidate the model is not sure of (raw score under `sure`) is looked at again on
       a window around it, scaled so that the face is `verify_face_px` wide, and its score
       becomes the mean of both looks. Textures and mirror artefacts rarely survive a
       second look at another scale; faces do.

    The reported score maps the operating point `op_score` (on the averaged scale) to 0.5,
    monotonically, so that the default `det_threshold` of 0.5 means "a face".
    """

    name = "retinaface_mnet025"

    def __init__(
        self,
        session: Any,
        base_side: int = 640,
        fine_side: int = 1440,
        edge_pad: float = 0.15,
        nms_iou: float = 0.4,
        low: float = 0.3,
        sure: float = 0.97,
        op_score: float = 0.75,
        verify_face_px: int = 96,
    ) -> None:
        self._session = session  # onnxruntime sessions are safe to call from several threads
        self.base_side = base_side
        self.fine_side = fine_side
        # The finest pass never looks at more pixels than this: callers may downscale to it.
        self.max_input_side = fine_side
        self.edge_pad = edge_pad
        self.nms_iou = nms_iou
        self.low = low
        self.sure = sure
        self.op_score = op_score
        self.verify_face_px = verify_face_px
        self._priors: dict[tuple[int, int], np.ndarray] = {}
        self._priors_lock = threading.Lock()

    def _priors_for(self, h: int, w: int) -> np.ndarray:
        key = (h, w)
        with self._priors_lock:
            if key not in self._priors:
                if len(self._priors) > 64:
                    self._priors.clear()
                self._priors[key] = retina_priors(h, w)
            return self._priors[key]

    def raw(
        self, rgb: np.ndarray, threshold: float, scale: float = 1.0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Candidates before NMS on `rgb` resized by `scale`: boxes (x1, y1, x2, y2), scores
        and keypoints (N, 5, 2), all in pixels of `rgb`."""
        h0, w0 = rgb.shape[:2]
        img = rgb
        if scale != 1.0:
            size = (max(round(w0 * scale), 1), max(round(h0 * scale), 1))
            interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
            img = cv2.resize(rgb, size, interpolation=interp)
        h, w = img.shape[:2]
        # BGR planes minus the mean, written straight into the NCHW tensor.
        tensor = np.empty((1, 3, h, w), dtype=np.float32)
        for c in range(3):
            tensor[0, c] = img[:, :, 2 - c]
        tensor -= RETINA_MEAN_BGR[:, None, None]
        loc, conf, landmarks = self._session.run(None, {"input": tensor})
        scores = conf[0, :, 1]
        keep = scores >= threshold
        priors = self._priors_for(h, w)[keep]
        loc, landmarks, scores = loc[0][keep], landmarks[0][keep], scores[keep]
        v0, v1 = RETINA_VARIANCES
        centres = priors[:, :2] + loc[:, :2] * v0 * priors[:, 2:]
        sizes = priors[:, 2:] * np.exp(loc[:, 2:] * v1)
        boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1) / scale
        kps = priors[:, None, :2] + landmarks.reshape(-1, 5, 2) * v0 * priors[:, None, 2:]
        return boxes, scores.astype(np.float32), kps / scale

    def _padded_pass(
        self, rgb: np.ndarray, side: int, pad: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """`raw` on `rgb` with a mirrored border of `pad` × its long side, the whole fitted to
        `side`; boxes whose centre falls outside the picture (mirror images) are dropped.
        Also returns the scale the picture was seen at."""
        h, w = rgb.shape[:2]
        scale = min(1.0, side / ((1.0 + 2.0 * pad) * max(h, w)))
        img, used_w, used_h = rgb, w, h
        if scale != 1.0:
            img, used_w, used_h = shrink(rgb, max(round(w * scale), 1), max(round(h * scale), 1))
        # Resize first, then mirror (REFLECT_101 cannot reach further than the image itself).
        p = min(round(pad * max(img.shape[:2])), img.shape[0] - 1, img.shape[1] - 1)
        if p > 0:
            img = cv2.copyMakeBorder(img, p, p, p, p, cv2.BORDER_REFLECT_101)
        boxes, scores, kps = self.raw(img, self.low)
        sx, sy = img.shape[1] - 2 * p, img.shape[0] - 2 * p
        # Back to pixels of `rgb` (per axis: rounding made the two scales differ slightly).
        fx, fy = used_w / sx, used_h / sy
        boxes = (boxes - np.float32(p)) * np.array([fx, fy, fx, fy], dtype=np.float32)
        kps = (kps - np.float32(p)) * np.array([fx, fy], dtype=np.float32)
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        inside = (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
        return boxes[inside], scores[inside], kps[inside], scale

    def candidates(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Steps 1 and 2: raw candidates of both passes after NMS (boxes may reach past the
        frame; they are clipped later)."""
        h, w = rgb.shape[:2]
        boxes, scores, kps, scale = self._padded_pass(rgb, self.base_side, self.edge_pad)
        if max(h, w) > 1.5 * self.base_side and self.fine_side > self.base_side:
            fb, fs, fk, _ = self._padded_pass(rgb, self.fine_side, 0.0)
            # Keep the faces too small for the first pass: under 4 of its smallest anchors.
            small = np.maximum(fb[:, 2] - fb[:, 0], fb[:, 3] - fb[:, 1]) * scale < 64
            boxes = np.concatenate([boxes, fb[small]])
            scores = np.concatenate([scores, fs[small]])
            kps = np.concatenate([kps, fk[small]])
        if len(scores) == 0:
            return boxes, scores, kps
        keep = nms(boxes, scores, self.nms_iou)
        return boxes[keep], scores[keep], kps[keep]

    def second_look(self, rgb: np.ndarray, box: np.ndarray) -> float:
        """Step 3: the best score of a face overlapping `box` on a mirrored-border window of
        three face sizes around it, scaled so that the face is `verify_face_px` wide."""
        h, w = rgb.shape[:2]
        bw, bh = float(box[2] - box[0]), float(box[3] - box[1])
        # A face cut by a side edge is completed by its mirror image, which widens the box
        # (or heightens it, at the top or bottom): judge its size along the uncut direction.
        cut_x, cut_y = box[0] < 0 or box[2] > w, box[1] < 0 or box[3] > h
        size = max(bh if cut_x and not cut_y else bw if cut_y and not cut_x else max(bw, bh), 1.0)
        half = int(1.5 * max(bw, bh, size))
        cx, cy = int((box[0] + box[2]) / 2), int((box[1] + box[3]) / 2)
        x0, y0, x1, y1 = cx - half, cy - half, cx + half, cy + half
        # Mirror what the window needs beyond the frame (at most the picture's own size).
        pl, pt = min(max(-x0, 0), w - 1), min(max(-y0, 0), h - 1)
        pr, pb = min(max(x1 - w, 0), w - 1), min(max(y1 - h, 0), h - 1)
        src = rgb
        if pl or pt or pr or pb:
            src = cv2.copyMakeBorder(rgb, pt, pb, pl, pr, cv2.BORDER_REFLECT_101)
        wx0, wy0 = max(x0 + pl, 0), max(y0 + pt, 0)
        window = src[wy0 : y1 + pt, wx0 : x1 + pl]
        if window.size == 0:
            return 0.0
        boxes, scores, _ = self.raw(
            np.ascontiguousarray(window), 0.05, min(4.0, self.verify_face_px / size)
        )
        if len(scores) == 0:
            return 0.0
        offset = np.array([wx0 - pl, wy0 - pt] * 2, dtype=np.float32)
        overlap = iou(box.astype(np.float32), boxes + offset) >= 0.3
        return float(scores[overlap].max()) if overlap.any() else 0.0

    def calibrated(self, score: float) -> float:
        """The averaged score on the reported scale: `op_score` becomes 0.5, 1 stays 1."""
        t = self.op_score
        return 0.5 * score / t if score < t else 0.5 + 0.5 * (score - t) / (1.0 - t)

    def detect(self, rgb: np.ndarray, threshold: float) -> list[Detection]:
        """Detect faces, those cut by the frame edge included; boxes are clipped to it."""
        h, w = rgb.shape[:2]
        boxes, scores, kps = self.candidates(rgb)
        out = []
        for box, raw, kp in zip(boxes, scores, kps, strict=True):
            score = float(raw)
            if score < self.sure:
                if self.calibrated((score + 1.0) / 2) < threshold:
                    continue  # not even a perfect second look would lift it to the threshold
                score = (score + self.second_look(rgb, box)) / 2
            score = self.calibrated(min(score, 1.0))
            if score < threshold:
                continue
            x1, y1, x2, y2 = square_box(box)
            x1, y1 = max(x1, 0.0), max(y1, 0.0)
            x2, y2 = min(x2, float(w)), min(y2, float(h))
            if x2 - x1 < 2 or y2 - y1 < 2:
                continue
            out.append(Detection(x1, y1, x2 - x1, y2 - y1, score, self.name, kp, RETINA_KEYPOINTS))
        return out


class HogDetector:
    """dlib's HOG + linear SVM frontal face detector (upsampled once for small faces)."""

    name = "dlib_hog"

    def __init__(self, detector: Any, upsample: int = 1) -> None:
        self._detector = detector
        self.upsample = upsample

    def detect(self, rgb: np.ndarray, threshold: float) -> list[Detection]:
        """Detect frontal faces; the SVM margin is squashed into a [0, 1] score."""
        rects, margins, _ = self._detector.run(rgb, self.upsample, -0.5)
        h, w = rgb.shape[:2]
        out = []
        for r, m in zip(rects, margins, strict=True):
            # The SVM margin is unbounded; a logistic around 0 gives a comparable [0, 1] score.
            score = float(1.0 / (1.0 + np.exp(-2.0 * m)))
            if score < threshold:
                continue
            x1, y1 = max(r.left(), 0), max(r.top(), 0)
            x2, y2 = min(r.right(), w), min(r.bottom(), h)
            out.append(
                Detection(float(x1), float(y1), float(x2 - x1), float(y2 - y1), score, self.name)
            )
        return out
