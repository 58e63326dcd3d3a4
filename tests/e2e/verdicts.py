"""What a scenario proves (DESIGN.md, "What a scenario proves"): the checks that decide a backup case.

Each fails with what was expected and what was seen. ``tests/e2e/lifecycle.py`` composes them
into the phases of a backup case; scenarios that test one refusal call them directly.
"""

from __future__ import annotations

import base64
import gzip
import io
import subprocess
import tarfile
import tempfile

from e2e_harness.backups import TRACKING_LABEL, ActionResult, GpgKeys, is_armored_pgp_message

UNPACK_DEPTH = 4   # a tar of files and a gzipped dump: two levels; more would be a loop


def assert_job_succeeded(result: ActionResult) -> None:
    assert result.job_outcome == "Complete", f"the {result.kind} Job of {result.name} did not complete:\n{result.describe()}"


def assert_job_failed(result: ActionResult) -> None:
    assert result.job_outcome == "Failed", f"the {result.kind} Job of {result.name} was expected to fail:\n{result.describe()}"


def assert_rendered_for_the_action(result: ActionResult) -> None:
    """The Job carries the tracking label and its ownerReference to the RequestedBackupAction."""
    labels = result.job["metadata"].get("labels") or {}
    tracking = [r["trackingId"] for r in result.status.get("ownedReferences") or [] if r.get("kind") == "Job"]
    assert labels.get(TRACKING_LABEL) in tracking, (
        f"Job label {TRACKING_LABEL}={labels.get(TRACKING_LABEL)!r}, the action's tracking ids {tracking}")
    owners = result.job["metadata"].get("ownerReferences") or []
    assert [(o["kind"], o["uid"]) for o in owners] == [("RequestedBackupAction", result.action["metadata"]["uid"])], (
        f"Job ownerReferences {owners}, expected one to RequestedBackupAction {result.name}")


def assert_action_reports(result: ActionResult, healthy: bool) -> None:
    """Processed, non-empty childrenResourcesHealth, nothing running, and ``healthy`` as the Job decided."""
    status = result.status
    children = status.get("childrenResourcesHealth") or []
    assert status.get("processed") is True, f"action not processed: {status}"
    assert children, f"action has no childrenResourcesHealth: {status}"
    assert not any(c.get("running") for c in children), f"action still reports a running child: {children}"
    assert bool(status.get("healthy")) is healthy, (
        f"action healthy={status.get('healthy', False)}, expected {healthy} (Job {result.job_outcome}):\n"
        f"{result.describe()}")


def assert_action_succeeded(result: ActionResult) -> None:
    """The Job completed, was rendered for its action, and the action reports it healthy."""
    assert_job_succeeded(result)
    assert_rendered_for_the_action(result)
    assert_action_reports(result, healthy=True)


def assert_new_version(versions_before: list[dict], versions_after: list[dict], collection: str) -> dict:
    """Exactly one new version, numbered after the previous highest, with a non-empty file."""
    old = {v["versionNumber"] for v in versions_before}
    new = [v for v in versions_after if v["versionNumber"] not in old]
    expected_number = max(old, default=0) + 1
    assert [v["versionNumber"] for v in new] == [expected_number], (
        f"collection {collection}: expected exactly one new version {expected_number}; before "
        f"{sorted(old)}, after {[v['versionNumber'] for v in versions_after]}")
    assert new[0]["filesize"] > 0, f"version {expected_number} is empty: {new[0]}"
    return new[0]


def assert_encrypted_backup_of(data: bytes, keys: GpgKeys, plaintext: list[str], what: str) -> None:
    """Uploaded bytes: an armored PGP message without the seeded text, decrypting (with ``keys``) to a
    backup that holds every piece of it (read through its gzip, tar and pg_dump layers)."""
    assert is_armored_pgp_message(data), f"{what} is not an armored PGP message: {data[:80]!r}"
    leaked = [text for text in plaintext if text.encode() in data]
    assert not leaked, f"the uploaded bytes of {what} contain plaintext {leaked}"
    readable = readable_text(keys.decrypt(data))
    missing = [text for text in plaintext if text not in readable]
    assert not missing, (f"the decrypted {what} lacks the seeded {missing}; it reads (first 600 characters):\n"
                         f"{readable[:600]}")


def assert_same_snapshot(before: dict, after: dict, what: str, result: ActionResult | None = None) -> None:
    assert after == before, (f"{what}: the restored data differs from the snapshot taken before the backup:\n"
                             f"before: {before}\nafter:  {after}\n{result.describe() if result else ''}")


def readable_text(data: bytes, depth: int = 0) -> str:
    """A backup as text: gzip is inflated, a tar's members are listed and read, a pg_dump custom-format
    archive becomes SQL (pg_restore); anything else is decoded as it is."""
    if depth > UNPACK_DEPTH:
        return ""
    if data[:2] == b"\x1f\x8b":
        return readable_text(gzip.decompress(data), depth + 1)
    if data[:5] == b"PGDMP":
        return _pg_restore_sql(data)
    if data[257:262] == b"ustar":
        parts = []
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                parts.append(f"--- {member.name}")
                if member.isfile():
                    parts.append(readable_text(tar.extractfile(member).read(), depth + 1))
        return "\n".join(parts)
    return data.decode(errors="replace")


def _pg_restore_sql(dump: bytes) -> str:
    """pg_restore turns pgbr's custom-format (compressed) dump into SQL text for inspection."""
    with tempfile.NamedTemporaryFile(suffix=".dump") as f:
        f.write(dump)
        f.flush()
        proc = subprocess.run(["pg_restore", "--data-only", "-f", "-", f.name], capture_output=True, timeout=60)
    assert proc.returncode == 0, f"pg_restore could not read the decrypted dump: {proc.stderr.decode()[-300:]}"
    return proc.stdout.decode(errors="replace")


def controller_keys(kube, namespace: str) -> GpgKeys:
    """The keys the controller made itself (createIfNotExists) from its GPG Secret."""
    secret = kube.get("v1", "Secret", "backup-keys", namespace)
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    return GpgKeys(data.get("e-mail.txt", ""), data["public"], data["private"], data.get("passphrase", ""))
