"""Directory trees in PersistentVolumeClaims, written and read by short busybox pods.

The file templates (tar, and the ``withFiles`` of gitea, passbolt and wordpress) back up
paths inside the Job's volumes. The harness puts a tree there and reads it back through
pods, never through a backend's host paths, so the same code works on every backend.
A tree is compared by its *manifest*: per entry its type, mode, size and sha256.
"""

from __future__ import annotations

import itertools
import posixpath
import shlex
from dataclasses import dataclass, field
from typing import Callable

from .kube import Kube

POD_TIMEOUT = 120
IMAGE = "busybox"
MOUNT = "/data"
MARKER = "MANIFEST "

SEED_TEXT = "release harness file tree"   # readme.txt's content: must show in a decrypted backup of the tree
# A tree with text, binary and executable files, restricted modes and a nested directory.
SEED = """set -e
mkdir -p "$R/nested/deeper"
printf '""" + SEED_TEXT + """\\n' > "$R/readme.txt"
head -c 20000 /dev/urandom > "$R/nested/random.bin"
printf '#!/bin/sh\\necho restored\\n' > "$R/nested/run.sh"
chmod 755 "$R/nested/run.sh"
printf 'private bytes\\n' > "$R/nested/deeper/private.key"
chmod 600 "$R/nested/deeper/private.key"
chmod 750 "$R/nested/deeper"
"""
# What a user might do after the backup: edit, change a mode, delete a file and a directory.
MUTATE = """set -e
printf 'edited after the backup\\n' > "$R/readme.txt"
chmod 600 "$R/nested/run.sh"
rm -f "$R/nested/random.bin"
rm -rf "$R/nested/deeper"
"""
LIST = f"""set -e
cd "$R"
find . -mindepth 1 | sort | while read -r p; do
  if [ -L "$p" ]; then t=link; elif [ -d "$p" ]; then t=dir; else t=file; fi
  if [ "$t" = file ]; then s=$(stat -c %s "$p"); h=$(sha256sum < "$p" | cut -c1-64); else s=-; h=-; fi
  echo "{MARKER}$t $(stat -c %a "$p") $s $h $p"
done
"""


class FileTreeError(AssertionError):
    """A seeding or listing pod did not succeed; says which and shows its log."""


@dataclass
class FileTrees:
    """Trees in the claims of one namespace."""

    kube: Kube
    namespace: str
    pod_logs: Callable[[str, str, str | None], str]
    check_alive: Callable[[], None] = lambda: None
    claims: set[str] = field(default_factory=set)
    _counter: itertools.count = field(default_factory=lambda: itertools.count(1))

    def claim(self, name: str, size: str = "64Mi") -> dict:
        """A PersistentVolumeClaim (once), and the pod volume that mounts it under ``name``."""
        if name not in self.claims:
            self.kube.apply([{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                              "metadata": {"name": name, "namespace": self.namespace},
                              "spec": {"accessModes": ["ReadWriteOnce"],
                                       "resources": {"requests": {"storage": size}}}}])
            self.claims.add(name)
        return {"name": name, "persistentVolumeClaim": {"claimName": name}}

    def seed(self, claim: str, root: str) -> dict[str, str]:
        """Write the tree under ``root`` (relative to the claim); returns its manifest."""
        return self._run(claim, root, SEED + LIST, "seed")

    def mutate(self, claim: str, root: str) -> dict[str, str]:
        return self._run(claim, root, MUTATE + LIST, "mutate")

    def manifest(self, claim: str, root: str) -> dict[str, str]:
        return self._run(claim, root, LIST, "list")

    def _run(self, claim: str, root: str, script: str, what: str) -> dict[str, str]:
        self.claim(claim)
        name = f"files-{what}-{next(self._counter)}"
        directory = posixpath.normpath(posixpath.join(MOUNT, root))
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": self.namespace},
               "spec": {"restartPolicy": "Never",
                        "containers": [{"name": "files", "image": IMAGE,
                                        "command": ["sh", "-c", f"R={shlex.quote(directory)}\n" + script],
                                        "volumeMounts": [{"name": "tree", "mountPath": MOUNT}]}],
                        "volumes": [{"name": "tree", "persistentVolumeClaim": {"claimName": claim}}]}}
        self.kube.apply([pod])

        def ended(obj):
            self.check_alive()
            phase = ((obj or {}).get("status") or {}).get("phase")
            return phase in ("Succeeded", "Failed"), f"phase {phase}"

        final = self.kube.wait_for("v1", "Pod", name, ended, namespace=self.namespace, timeout=POD_TIMEOUT,
                                   what=f"pod {self.namespace}/{name} ({what} files in claim {claim}) to end",
                                   where=f"the pod's events and log (kubectl logs -n {self.namespace} {name})")
        log = self.pod_logs(self.namespace, name, "files")
        if final["status"]["phase"] != "Succeeded":
            raise FileTreeError(f"pod {name} ({what} files under {directory} in claim {claim}) failed:\n{log[-2000:]}")
        self.kube.delete("v1", "Pod", name, self.namespace)
        entries = {}
        for line in log.splitlines():
            if line.startswith(MARKER):
                kind, mode, size, digest, path = line[len(MARKER):].split(" ", 4)
                entries[path] = f"{kind} {mode} {size} {digest}"
        return entries
