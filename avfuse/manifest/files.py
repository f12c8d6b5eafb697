"""Finding and reading a model's manifest file; file hashes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from avfuse.errors import ManifestError
from avfuse.manifest.spec import MANIFEST_NAME, Manifest


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file (model identity for caches and manifests)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


#: how to make the files load_manifest looks for
_EXPORT_FIX = (
    "export the model with `avfuse export CHECKPOINT --out DIR`, which writes model.onnx "
    f"and {MANIFEST_NAME} into DIR"
)


def _manifest_file(p: Path) -> Path:
    """The manifest file `p` names; ManifestError saying which file is missing if none."""
    if p.is_dir():
        m = p / MANIFEST_NAME
        if m.is_file():
            return m
        if m.exists():
            raise ManifestError(f"{m} is not a file: replace it with the model's {MANIFEST_NAME}")
        models = sorted(x.name for x in p.glob("*.onnx"))
        if models:
            raise ManifestError(
                f"folder {p} has {models[0]} but no {MANIFEST_NAME} beside it: {_EXPORT_FIX}"
            )
        raise ManifestError(
            f"folder {p} holds no model ({MANIFEST_NAME} is missing): give the folder of an "
            f"exported model, or {_EXPORT_FIX}"
        )
    if p.suffix == ".onnx":
        if not p.exists():
            raise ManifestError(f"model file {p} does not exist: check the path, or {_EXPORT_FIX}")
        if not p.is_file():
            raise ManifestError(f"model file {p} is not a file: give the path of model.onnx")
        m = p.parent / MANIFEST_NAME
        if not m.is_file():
            raise ManifestError(
                f"model file {p} has no {MANIFEST_NAME} beside it (looked for {m}): {_EXPORT_FIX}"
            )
        return m
    what = "manifest" if p.suffix == ".json" else "model"
    if not p.exists():
        raise ManifestError(
            f"{what} {p} does not exist: give a model folder, its model.onnx or its "
            f"{MANIFEST_NAME}, or {_EXPORT_FIX}"
        )
    if not p.is_file():
        raise ManifestError(f"{what} {p} is not a file: give a model folder or its {MANIFEST_NAME}")
    return p


def load_manifest(path: str | Path, *, check_hash: bool = True) -> Manifest:
    """Load the manifest for a model.

    Args:
        path: the manifest JSON, the ONNX file (its folder's manifest.json is used) or
            the model folder.
        check_hash: compare ``model.sha256`` with the ONNX file when both exist.

    Raises:
        ManifestError: a missing file (the message says which: the path given, the
            manifest beside a model, the manifest in a folder), a file that is not
            UTF-8 JSON, or any invalid field (named).
    """
    p = _manifest_file(Path(path))
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ManifestError(
            f"{p} is not valid JSON ({e.msg} at line {e.lineno}); re-export it"
        ) from None
    except UnicodeDecodeError:
        raise ManifestError(f"{p} is not a text file (not UTF-8 JSON); re-export it") from None
    except RecursionError:
        raise ManifestError(f"{p} nests JSON too deeply to be a manifest; re-export it") from None
    except OSError as e:
        raise ManifestError(f"{p} cannot be read ({e.strerror or e}); check the path") from None
    m = Manifest.from_dict(data, path=p.resolve())
    if check_hash and m.sha256 and m.model_path.exists() and file_sha256(m.model_path) != m.sha256:
        raise ManifestError(
            f"{m.model_path.name} does not match the recorded hash; the model "
            "file was changed or corrupted: re-export it",
            field="model.sha256",
        )
    return m


__all__ = ["file_sha256", "load_manifest"]
