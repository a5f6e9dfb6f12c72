"""The artifact manifest: ``models/artifacts/manifest.json``, one entry per shipped file with its sha256.

Serving verifies every artifact against it before loading, so a truncated,
altered or swapped file stops start-up with a message instead of serving
something unknown.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
MANIFEST = ARTIFACTS_DIR / "manifest.json"


class ArtifactError(RuntimeError):
    """An artifact is missing, or its bytes are not the ones the manifest records."""


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(manifest: Path = MANIFEST) -> dict[str, Any]:
    if not manifest.is_file():
        return {"artifacts": {}}
    data: dict[str, Any] = json.loads(manifest.read_text())
    return data


def record(path: Path, entry: dict[str, Any], manifest: Path | None = None) -> dict[str, Any]:
    """Add or replace the entry for ``path`` (keyed by file name, with sha256 and size) in the manifest beside it."""
    manifest = manifest or path.parent / "manifest.json"
    data = read_manifest(manifest)
    entry = {**entry, "file": path.name, "sha256": sha256_of(path), "bytes": path.stat().st_size}
    data["artifacts"][path.name] = entry
    manifest.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return entry


def verify(path: str | Path, manifest: Path | None = None) -> str:
    """Check ``path`` against the manifest beside it; returns its sha256 or raises ArtifactError."""
    path = Path(path)
    manifest = manifest or path.parent / "manifest.json"
    entry = read_manifest(manifest)["artifacts"].get(path.name)
    if not path.is_file():
        expected = f"; {manifest} expects sha256 {entry['sha256']} ({entry['bytes']} bytes)" if entry else ""
        raise ArtifactError(f"artifact missing: {path}{expected}")
    if entry is None:
        raise ArtifactError(f"artifact {path} has no entry in {manifest}; export it with the models' export command")
    actual = sha256_of(path)
    if actual != entry["sha256"]:
        raise ArtifactError(
            f"artifact {path} does not match {manifest}: expected sha256 {entry['sha256']} ({entry['bytes']} bytes), "
            f"found {actual} ({path.stat().st_size} bytes)"
        )
    return actual
