# Copyright: retail.edge maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the retail.edge collection: the interface may change without notice.

"""KV version 2 operations on top of VaultConnection, shared by vault_kv, vault_env_file and the lookup."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ansible_collections.retail.edge.plugins.module_utils._vault import (
    VaultConnection,
    VaultError,
    VaultInvalidRequest,
    VaultNotFound,
    VaultPermissionDenied,
)

# Placeholders shown in diffs instead of secret values. They never depend on the value.
HIDDEN = "<hidden>"
HIDDEN_CHANGED = "<hidden, changed>"


class SecretVersionUnavailable(VaultError):
    """The requested (or latest) version exists in the metadata but was deleted or destroyed."""

    status = 404

    def __init__(self, message: str, version: int, readable_version: int | None) -> None:
        super().__init__(message)
        self.version = version
        self.readable_version = readable_version


class CasMismatch(VaultError):
    """A check-and-set write was rejected because the secret's current version differs from cas."""

    status = 400


@dataclass
class SecretMetadata:
    """KV v2 metadata of one secret (everything but the values)."""

    current_version: int = 0
    oldest_version: int = 0
    max_versions: int = 0
    cas_required: bool = False
    custom_metadata: dict[str, str] = field(default_factory=dict)
    versions: dict[int, dict[str, Any]] = field(default_factory=dict)

    def is_readable(self, version: int) -> bool:
        entry = self.versions.get(version)
        return bool(entry) and not entry.get("destroyed") and not entry.get("deletion_time")

    def newest_readable_before(self, version: int) -> int | None:
        candidates = [number for number in self.versions if number < version and self.is_readable(number)]
        return max(candidates) if candidates else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "current_version": self.current_version,
            "oldest_version": self.oldest_version,
            "max_versions": self.max_versions,
            "cas_required": self.cas_required,
            "custom_metadata": dict(self.custom_metadata),
            "versions": {str(number): dict(entry) for number, entry in sorted(self.versions.items())},
        }


@dataclass
class Secret:
    """One version of a secret: its key/value data and that version's metadata."""

    data: dict[str, Any]
    version: int
    created_time: str | None = None
    custom_metadata: dict[str, str] = field(default_factory=dict)


def _display(mount: str, path: str) -> str:
    return f"{mount}/{path}"


def read_metadata(connection: VaultConnection, mount: str, path: str) -> SecretMetadata | None:
    """Return the metadata of mount/path, or None when the secret does not exist."""
    try:
        response = connection.request("GET", f"{mount}/metadata/{path}")
    except VaultNotFound:
        return None
    data = (response or {}).get("data") or {}
    versions = {int(number): entry or {} for number, entry in (data.get("versions") or {}).items()}
    return SecretMetadata(
        current_version=int(data.get("current_version") or 0),
        oldest_version=int(data.get("oldest_version") or 0),
        max_versions=int(data.get("max_versions") or 0),
        cas_required=bool(data.get("cas_required")),
        custom_metadata=dict(data.get("custom_metadata") or {}),
        versions=versions,
    )


def _unavailable(mount: str, path: str, version: int, latest: bool, metadata: SecretMetadata | None) -> VaultError:
    """Build the error for a version without data, naming it and the version to read instead."""
    entry = metadata.versions.get(version, {}) if metadata else {}
    which = f"latest version {version}" if latest else f"version {version}"
    if entry.get("destroyed"):
        how = "was destroyed"
    elif entry.get("deletion_time"):
        how = f"was deleted at {entry['deletion_time']}"
    else:
        how = "was deleted or destroyed"
    readable = metadata.newest_readable_before(version) if metadata else None
    message = f"secret {_display(mount, path)}: the {which} {how}, so it has no data."
    if readable is not None:
        message += f" Set version: {readable} to read the newest older version that still has data."
    elif metadata is None and version > 1:
        message += f" An older version may still have data, for example version: {version - 1}."
    else:
        message += " No older version has data."
    if not entry.get("destroyed"):
        message += f" A deleted version can be restored with retail.edge.vault_kv state=undeleted versions=[{version}]."
    return SecretVersionUnavailable(message, version=version, readable_version=readable)


def read_secret(connection: VaultConnection, mount: str, path: str, version: int | None = None) -> Secret | None:
    """Read one version (default: latest) of mount/path.

    Returns None when the secret does not exist. Raises SecretVersionUnavailable when the
    version exists but was deleted or destroyed, and VaultNotFound when a requested version
    number was never written.
    """
    query = f"?version={version}" if version else ""
    try:
        response = connection.request("GET", f"{mount}/data/{path}{query}")
    except VaultNotFound as exc:
        # For a deleted or destroyed version the 404 body still carries that version's metadata.
        version_meta = ((exc.body or {}).get("data") or {}).get("metadata") or {}
        try:
            metadata = read_metadata(connection, mount, path)
        except VaultPermissionDenied:
            metadata = None
        # Metadata written before any data (current_version 0) also means: no secret yet.
        no_versions = metadata is None or metadata.current_version == 0
        if no_versions and not version_meta:
            if version:
                raise VaultNotFound(f"secret {_display(mount, path)} has no version {version}") from None
            return None
        number = int(version_meta.get("version") or version or (metadata.current_version if metadata else 0))
        if metadata is not None and number not in metadata.versions:
            raise VaultNotFound(
                f"secret {_display(mount, path)} has no version {number}; its versions are {sorted(metadata.versions)}"
            ) from None
        raise _unavailable(mount, path, number, latest=not version, metadata=metadata) from None

    data = (response or {}).get("data") or {}
    meta = data.get("metadata") or {}
    return Secret(
        data=dict(data.get("data") or {}),
        version=int(meta.get("version") or 0),
        created_time=meta.get("created_time"),
        custom_metadata=dict(meta.get("custom_metadata") or {}),
    )


def _write_options(cas: int | None) -> dict[str, Any]:
    return {"cas": cas} if cas is not None else {}


def _cas_error(mount: str, path: str, cas: int | None, exc: VaultInvalidRequest) -> VaultError:
    errors = " ".join(str(error) for error in exc.errors)
    if "check-and-set" in errors and "required" in errors:
        return CasMismatch(
            f"{_display(mount, path)} requires check-and-set (cas_required is set on the secret or the mount): "
            "pass cas with the secret's current version, or 0 to create it"
        )
    if "check-and-set" in errors:
        return CasMismatch(
            f"check-and-set failed on {_display(mount, path)}: cas={cas} but the current version differs "
            "(cas=0 means the secret must not exist yet). Read the secret for its current version and retry "
            "with that cas, or omit cas when overwriting is safe"
        )
    return exc


def write_secret(
    connection: VaultConnection, mount: str, path: str, data: dict[str, Any], cas: int | None = None
) -> dict[str, Any]:
    """Write a new version with exactly data; return the new version's metadata (version, created_time)."""
    try:
        response = connection.request(
            "POST", f"{mount}/data/{path}", payload={"data": data, "options": _write_options(cas)}
        )
    except VaultInvalidRequest as exc:
        raise _cas_error(mount, path, cas, exc) from None
    return (response or {}).get("data") or {}


def patch_secret(
    connection: VaultConnection, mount: str, path: str, data: dict[str, Any], cas: int | None = None
) -> dict[str, Any]:
    """Merge data into the latest version with an HTTP PATCH (JSON merge patch); return the new version's metadata."""
    try:
        response = connection.request(
            "PATCH",
            f"{mount}/data/{path}",
            payload={"data": data, "options": _write_options(cas)},
            headers={"Content-Type": "application/merge-patch+json"},
        )
    except VaultInvalidRequest as exc:
        raise _cas_error(mount, path, cas, exc) from None
    return (response or {}).get("data") or {}


def write_metadata(connection: VaultConnection, mount: str, path: str, settings: dict[str, Any]) -> None:
    """Set metadata fields (custom_metadata, max_versions, cas_required); fields not given keep their value."""
    connection.request("POST", f"{mount}/metadata/{path}", payload=settings)


def delete_versions(connection: VaultConnection, mount: str, path: str, versions: list[int]) -> None:
    """Soft-delete versions: their data stays in storage and undelete_versions restores it."""
    connection.request("POST", f"{mount}/delete/{path}", payload={"versions": versions})


def undelete_versions(connection: VaultConnection, mount: str, path: str, versions: list[int]) -> None:
    connection.request("POST", f"{mount}/undelete/{path}", payload={"versions": versions})


def destroy_versions(connection: VaultConnection, mount: str, path: str, versions: list[int]) -> None:
    """Remove the data of versions from storage for good."""
    connection.request("PUT", f"{mount}/destroy/{path}", payload={"versions": versions})


def delete_all(connection: VaultConnection, mount: str, path: str) -> None:
    """Delete the metadata and every version of the secret."""
    connection.request("DELETE", f"{mount}/metadata/{path}")


def changed_keys(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:
    """Return the sorted keys that were added, removed or got another value."""
    before = before or {}
    after = after or {}
    return sorted(key for key in set(before) | set(after) if before.get(key, object()) != after.get(key, object()))


def masked_view(before: dict[str, Any] | None, after: dict[str, Any] | None) -> tuple[dict[str, str], dict[str, str]]:
    """Return (before, after) key maps for a diff: every value replaced by a fixed placeholder.

    A key whose value changes gets a different placeholder on each side, so the diff line
    names the key while neither side shows a value.
    """
    changed = set(changed_keys(before, after))
    before_view = dict.fromkeys(before or {}, HIDDEN)
    after_view = {key: (HIDDEN_CHANGED if key in changed else HIDDEN) for key in (after or {})}
    return before_view, after_view
