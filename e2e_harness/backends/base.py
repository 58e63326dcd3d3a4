"""The one interface every backend implements (k3d, local, existing).

Scenario tests only see this interface through the fixtures, never which backend
runs them. A backend starts or reuses a cluster, deploys the release's components
from their resolved sources, tells how the server and the subject database are
reached (from inside pods and from the test process), and stops what it started.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar, Iterator, Mapping, Sequence

from ..components import ResolvedSource
from ..kube import Kube
from ..masking import SecretMasker
from ..release import Release
from ..subjects import Subject


class BackendError(RuntimeError):
    """The backend could not start, deploy or stop; the message says which step and why."""


class BackendUnavailable(BackendError):
    """This backend cannot run on this machine (a missing capability, named in the message): a skip."""


class BackendUsageError(BackendError):
    """The options or knobs given contradict this backend (e.g. 'already deployed' with nothing deployed):
    a usage error (exit status 4), before any work."""


@dataclass(frozen=True)
class Settings:
    """What every backend gets from the plugin (options and the old harness's knobs)."""

    release: Release
    project_dir: Path
    build_dir: Path
    artifacts_dir: Path
    run_id: str
    keep_cluster: bool = False
    skip_server_install: bool = False
    skip_client_install: bool = False
    kube_context: str | None = None
    cluster_name: str = "e2e-harness"
    # The run's pytest-xdist workers share one cluster (shared_cluster.py): each worker keeps it at its stop
    # (keep_cluster), and the controller removes it with release_shared().
    shared: bool = False
    # The run's secret masker (the plugin's state): the logs a backend publishes go through it.
    masker: SecretMasker = field(default_factory=SecretMasker)

    @property
    def bin_dir(self) -> Path:
        """The pinned tools, where `make tools` puts them (also when --build-dir is elsewhere)."""
        return self.project_dir / ".build" / "bin"


@dataclass(frozen=True)
class SubjectEndpoint:
    """One subject database: an admin account's address from the test process and from pods."""

    subject: Subject
    from_tests: object   # e.g. PostgresAddress
    in_pods: object

    def create_database(self, dbname: str):
        """A fresh database named ``dbname`` in this subject (the kind's database class)."""
        return self.subject.kind.database.create(self.from_tests, self.in_pods, dbname)


class ForwardedSubjects(Mapping):
    """The deployed subjects by name; reaching one from the tests (``local_port``) happens on first use."""

    def __init__(self, deployed: Sequence[Subject], local_port: Callable[[Subject], int]):
        self._deployed = {s.name: s for s in deployed}
        self._local_port = local_port

    def __getitem__(self, name: str) -> SubjectEndpoint:
        subject = self._deployed[name]
        return SubjectEndpoint(subject, subject.from_tests(self._local_port(subject)), subject.in_pods())

    def __iter__(self) -> Iterator[str]:
        return iter(self._deployed)

    def __len__(self) -> int:
        return len(self._deployed)

    def deployed(self) -> list[Subject]:
        return list(self._deployed.values())


@dataclass(frozen=True)
class Endpoints:
    """How the test process and pods reach the deployed services.

    Scenarios put the ``in_pods`` addresses into a ScheduledBackup's ``vars`` and use
    the ``from_tests`` ones themselves, so they never ask which backend runs them.
    """

    server_url_from_tests: str
    server_url_in_pods: str
    server_namespace: str          # where BackupUsers, BackupCollections and their Secrets live
    server_health_key: str         # for /ready
    subjects: ForwardedSubjects    # the subject databases by Deployment name (e2e_harness/subjects.py)


class Backend(ABC):
    name: ClassVar[str]
    # The backend makes its cluster and removes it at the end (unless keep_cluster); False: the cluster is
    # the user's and outlives the run (existing), so what the run deleted in it must be gone before it ends.
    owns_cluster: ClassVar[bool] = True

    def __init__(self, settings: Settings):
        self.settings = settings
        self._kube: Kube | None = None

    def check_usage(self) -> None:
        """Raise BackendUsageError when the settings (knobs, options) cannot work with this backend; cheap
        (no tools, no cluster): the plugin asks it before collection ends."""

    def preflight(self) -> None:
        """Cheap checks of what this backend needs (tools, engines, files), before any
        source is resolved or built; raises BackendUnavailable naming what is missing."""

    @abstractmethod
    def start(self) -> None:
        """Create (or reuse) the cluster; afterwards ``kubeconfig`` is usable."""

    @abstractmethod
    def deploy(self, sources: Sequence[ResolvedSource]) -> None:
        """Install CRDs, server, controller and the test subject from ``sources``."""

    @abstractmethod
    def endpoints(self) -> Endpoints:
        """Where the server is, as seen from the test process and from pods."""

    @abstractmethod
    def stop(self) -> None:
        """Release everything ``start`` and ``deploy`` created (honours keep_cluster)."""

    def share(self) -> None:
        """Make the started cluster usable by the run's other workers and outlive this one (called by each
        worker after start and deploy). Clusters outside the harness's process (k3d's, existing) need nothing."""

    def release_shared(self) -> None:
        """In the run's controller, after the last worker: remove the shared cluster (keep it with keep_cluster)."""
        self.stop()

    @property
    @abstractmethod
    def kubeconfig(self) -> Path:
        """A kubeconfig file for this cluster only (never the user's merged config)."""

    @property
    def kube_context(self) -> str | None:
        return None

    @property
    def kube(self) -> Kube:
        if self._kube is None:
            self._kube = Kube(self.kubeconfig, self.kube_context)
        return self._kube

    def pod_logs(self, namespace: str, pod: str, container: str | None = None) -> str:
        return self.kube.pod_logs(namespace, pod, container)

    def unhostable_reason(self, image: str) -> str | None:
        """Why pods of ``image`` cannot run faithfully on this backend (a template's skip reason), or None."""
        return None

    def platform(self) -> dict[str, str]:
        """What ran under the release, for the report: versions of the cluster's parts, and the images the
        backend built (name -> digest and source revision), where the backend knows them."""
        return {}

    def check_services(self) -> None:
        """Raise naming a deployed service that has died (where the backend can tell); used by every wait."""

    def diagnostic_namespaces(self) -> list[str]:
        """Namespaces of the deployed services, collected into failure bundles too."""
        return []

    def service_logs(self) -> dict[str, Path]:
        """Log files of services running outside the cluster (local backend), by name."""
        return {}

    def close_client(self) -> None:
        if self._kube is not None:
            self._kube.close()
            self._kube = None
