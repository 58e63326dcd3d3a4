"""The pytest plugin (entry point ``pytest11``): options, knobs and the harness's fixtures.

Fixtures, from the outside in: ``release`` (validated pins), ``components``
(sources at those pins), ``cluster`` (the backend, started and deployed, one per
session) and ``namespace`` (a fresh namespace per test, removed per
``--keep-namespaces``). The release is validated right after collection, before
any fixture runs, whenever a collected test needs it.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from . import interrupts, progress
from .backends import BACKEND_NAMES, Backend, BackendUnavailable, Endpoints, Settings, backend_class
from .backups import Backups
from .components import COMPONENTS, ComponentSourceError, ResolvedSource, SourceResolver, git_mirror_from
from .diagnostics import bundle_dir, collect_bundle
from .knobs import KnobError, Knobs
from .known_defects import OCCURRENCES, KnownDefectHit, KnownDefectsError, template_defects
from .known_defects import load as load_known_defects
from .masking import MASKER
from .postgres import SubjectDatabase
from .release import Release, ReleaseError, load_release
from .report import TestResult, release_properties, render_markdown, write_report
from .server_api import BackupServer, ServerAdmin, ServerClient
from .templates import TemplateDefinition, TemplateDefinitionError, load_definitions

KEEP_NAMESPACES = ("never", "on-failure", "always")
RUN_LABEL = "e2e-harness.riotkit.org/run"


@dataclass
class HarnessState:
    """Per-session state shared by the hooks and fixtures."""

    run_id: str
    project_dir: Path
    build_dir: Path
    artifacts_dir: Path
    knobs: Knobs | None = None
    git_mirror: Path | None = None
    release: Release | None = None
    sources: list[ResolvedSource] = field(default_factory=list)
    backend_name: str = ""
    platform: dict[str, str] = field(default_factory=dict)   # what ran under the release (Backend.platform)
    all_skipped: bool = False
    bundles: dict[str, Path] = field(default_factory=dict)
    report_path: Path | None = None
    templates: list[TemplateDefinition] | None = None  # the matrix, read at collection


STATE = pytest.StashKey[HarnessState]()
REPORTS = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("e2e-harness", "Backup Repository release harness")
    group.addoption("--release-env", default=None, metavar="PATH",
                    help="component pins (default: release.env in the project directory)")
    group.addoption("--backend", choices=BACKEND_NAMES, default="auto",
                    help="where to run: k3d (Docker), local (a real node here, as root), existing (a kubeconfig "
                         "context), auto = k3d when a Docker engine answers, else local")
    group.addoption("--keep-cluster", action="store_true", default=False,
                    help="leave the cluster running at the end; the next run (same --cluster-name) reuses it "
                         "(k3d, local), and removes it unless it keeps it too")
    group.addoption("--cluster-name", default="e2e-harness", metavar="NAME",
                    help="the cluster the k3d and local backends make, keep and reuse (default: e2e-harness)")
    group.addoption("--artifacts-dir", default=None, metavar="DIR",
                    help="reports, logs and failure bundles (default: .build/artifacts/<run-id>)")
    group.addoption("--keep-namespaces", choices=KEEP_NAMESPACES, default="never",
                    help="keep test namespaces for inspection: never, on-failure or always")
    group.addoption("--kube-context", default=None,
                    help="kubeconfig context for --backend existing (read only: never switched)")
    group.addoption("--build-dir", default=None, metavar="DIR",
                    help="component sources, tools and state (default: .build in the project directory)")
    group.addoption("--git-mirror", default=None, metavar="DIR",
                    help="clone components from <repository>.bundle files or bare <repository>.git dirs in DIR "
                         "(default: $E2E_GIT_MIRROR)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: scenario test that needs a running backend")
    config.addinivalue_line("markers", "template_family(name): a template-matrix scenario only for that family")
    project_dir = Path(config.rootpath)
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)
    build_dir = Path(config.getoption("--build-dir") or project_dir / ".build").absolute()
    artifacts = Path(config.getoption("--artifacts-dir") or build_dir / "artifacts" / run_id).absolute()
    config.stash[STATE] = HarnessState(run_id, project_dir, build_dir, artifacts)
    config.stash[REPORTS] = {}


def _interrupt_on_sigterm(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def pytest_sessionstart(session: pytest.Session) -> None:
    # A CI cancel or `kill` sends SIGTERM: stop like Ctrl-C, so every fixture tears down what it started.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        progress.configure(lambda line: reporter.write_line(line), MASKER.mask)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Validate knobs and release.env before any expensive fixture runs."""
    if not any("release" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    _load_inputs(session.config)


def _load_inputs(config: pytest.Config) -> HarnessState:
    """Knobs, release.env, the git mirror and the known defects, validated once; a usage error otherwise."""
    state = config.stash[STATE]
    if state.release is not None:
        return state
    path = config.getoption("--release-env") or state.project_dir / "release.env"
    try:
        state.knobs = Knobs.from_env()
        state.release = load_release(path)
        state.git_mirror = git_mirror_from(config.getoption("--git-mirror"), os.environ)
        load_known_defects()
    except (ReleaseError, KnobError, ComponentSourceError, KnownDefectsError) as exc:
        pytest.exit(f"e2e-harness: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
    return state


def _resolver(state: HarnessState) -> SourceResolver:
    return SourceResolver(state.build_dir, skip_git_pull=state.knobs.skip_git_pull, mode=state.knobs.component_source,
                          progress=progress.say, git_mirror=state.git_mirror)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The template matrix: one case per definition in the pinned backup-maker's source.

    Collecting it resolves backup-maker's source (the only component resolved at collection:
    the matrix is whatever that revision ships). A scenario marked ``template_family(x)``
    gets that family's templates only; a known defect of the release (fixtures/known-defects.yaml,
    ``handling: xfail``) marks its cases xfail(strict=True), expected only on its symptom."""
    if "procedure_template" not in metafunc.fixturenames:
        return
    state = _load_inputs(metafunc.config)
    if state.templates is None:
        backup_maker = next(c for c in COMPONENTS if c.name == "backup-maker")
        try:
            source = _resolver(state).resolve(backup_maker, state.release.pin(backup_maker.pin_key))
            state.templates = load_definitions(source.path)
        except (ComponentSourceError, TemplateDefinitionError) as exc:
            pytest.exit(f"e2e-harness: the template matrix: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
    family = metafunc.definition.get_closest_marker("template_family")
    defects = load_known_defects()
    params = []
    for definition in state.templates:
        if family and definition.family != family.args[0]:
            continue
        marks = [pytest.mark.xfail(strict=True, raises=KnownDefectHit, reason=f"known defect {d.id}: {d.symptom}")
                 for d in template_defects(defects, state.release, metafunc.function.__name__,
                                           definition.backup_template, definition.restore_template)]
        params.append(pytest.param(definition, id=definition.name, marks=marks))
    metafunc.parametrize("procedure_template", params)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    report = yield
    item.config.stash[REPORTS].setdefault(item.nodeid, {})[report.when] = report
    if report.failed:
        _attach_failure_bundle(item, report)
        masked = MASKER.mask(str(report.longrepr))
        if masked != str(report.longrepr):
            report.longrepr = masked
    return report


def _attach_failure_bundle(item: pytest.Item, report) -> None:
    """Collect the bundle of a failed scenario once, and name its path in the report."""
    state = item.config.stash[STATE]
    funcargs = getattr(item, "funcargs", {})
    namespace, backend = funcargs.get("namespace"), funcargs.get("cluster")
    if not isinstance(backend, Backend) or not isinstance(namespace, str) or item.nodeid in state.bundles:
        return
    dest = bundle_dir(state.artifacts_dir, item.nodeid)
    extra = {}
    server = funcargs.get("backup_server")
    if isinstance(server, BackupServer):
        try:
            extra["server-versions.yaml"] = server.version_listing()
        except Exception as exc:  # noqa: BLE001 - the server may be what broke; the bundle is still wanted
            extra["server-versions.yaml"] = f"<cannot list versions: {type(exc).__name__}: {exc}>\n"
    try:
        collect_bundle(backend.kube, lambda ns, pod, c: backend.pod_logs(ns, pod, c),
                       [namespace, *backend.diagnostic_namespaces()], dest, MASKER, backend.service_logs(), extra)
    except Exception as exc:  # noqa: BLE001 - a broken collector must not hide the test's own failure
        report.sections.append(("failure bundle", f"could not be collected: {type(exc).__name__}: {exc}"))
        return
    state.bundles[item.nodeid] = dest
    report.sections.append(("failure bundle", str(dest)))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus) -> None:
    """Report the release; and a run whose scenarios were all skipped did not test it: not green."""
    state = session.config.stash[STATE]
    if state.release is not None and not session.config.option.collectonly:
        _write_reports(session, state)
    scenarios = [i for i in session.items if "cluster" in getattr(i, "fixturenames", ())]
    if not scenarios or exitstatus != pytest.ExitCode.OK or session.config.option.collectonly:
        return
    reports = session.config.stash[REPORTS]
    ran = [i for i in scenarios if any(not r.skipped for r in reports.get(i.nodeid, {}).values()
                                       if r.when == "call")]
    if not ran:
        session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED
        session.config.stash[STATE].all_skipped = True


def _write_reports(session: pytest.Session, state: HarnessState) -> None:
    from _pytest.junitxml import xml_key  # the documented record_testsuite_property uses the same object

    xml = session.config.stash.get(xml_key, None)
    if xml is not None:
        for name, value in release_properties(state.release, state.sources, state.backend_name,
                                              state.platform):
            xml.add_global_property(name, value)
    results = []
    for item in session.items:
        reports = session.config.stash[REPORTS].get(item.nodeid, {})
        if not reports:
            continue
        outcome = "passed"
        reason = ""
        for when in ("setup", "call", "teardown"):
            r = reports.get(when)
            if r is None:
                continue
            if r.failed:
                outcome = "failed" if when == "call" else "error"
                break
            if r.skipped and hasattr(r, "wasxfail"):
                outcome, reason = "xfailed", r.wasxfail
            elif r.skipped:
                outcome = "skipped"
                reason = r.longrepr[2] if isinstance(r.longrepr, tuple) else str(r.longrepr)
                reason = reason.removeprefix("Skipped: ")
        results.append(TestResult(item.nodeid, outcome, sum(r.duration for r in reports.values()),
                                  state.bundles.get(item.nodeid), MASKER.mask(reason)))
    seen = OCCURRENCES.counts()
    defects = [(d, seen.get(d.id, 0)) for d in load_known_defects() if d.applies(state.release)]
    text = render_markdown(state.release, state.sources, state.backend_name, results, state.artifacts_dir, defects,
                           state.platform)
    state.report_path = write_report(MASKER.mask(text), state.artifacts_dir)


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None:
        return
    if state.all_skipped:
        terminalreporter.section("no scenario ran", red=True)
        terminalreporter.write_line("every scenario was skipped (see the skip reasons above), so this "
                                    "release was not tested; exit status 5")
    if state.release is None:
        return
    terminalreporter.section("release under test")
    for key, value in state.release.values.items():
        terminalreporter.write_line(f"{key}={value}  ({state.release.origins[key]})")
    for source in state.sources:
        terminalreporter.write_line(source.describe())
    if state.backend_name:
        terminalreporter.write_line(f"backend: {state.backend_name}")
    if state.report_path:
        terminalreporter.write_line(f"report: {state.report_path}")


# --- fixtures ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def harness_state(request: pytest.FixtureRequest) -> HarnessState:
    return request.config.stash[STATE]


@pytest.fixture(scope="session")
def release(harness_state: HarnessState) -> Release:
    assert harness_state.release is not None, "release is loaded after collection"
    return harness_state.release


@pytest.fixture(scope="session")
def components(release: Release, harness_state: HarnessState) -> list[ResolvedSource]:
    with progress.step("resolving component sources"):
        harness_state.sources = _resolver(harness_state).resolve_release(release)
    return harness_state.sources


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest, release: Release, harness_state: HarnessState):
    """The backend, started and with the release deployed; stopped at the end of the session."""
    config = request.config
    knobs = harness_state.knobs
    settings = Settings(release=release, project_dir=harness_state.project_dir,
                        build_dir=harness_state.build_dir, artifacts_dir=harness_state.artifacts_dir,
                        run_id=harness_state.run_id, keep_cluster=config.getoption("--keep-cluster"),
                        skip_server_install=knobs.skip_server_install,
                        skip_client_install=knobs.skip_client_install,
                        kube_context=config.getoption("--kube-context"),
                        cluster_name=config.getoption("--cluster-name"))
    try:
        backend: Backend = backend_class(config.getoption("--backend"))(settings)
        harness_state.backend_name = f"{backend.name} (unavailable)"
        backend.preflight()  # before any source is resolved or built
    except BackendUnavailable as exc:
        pytest.skip(f"backend unavailable: {exc}")
    harness_state.backend_name = backend.name
    sources = request.getfixturevalue("components")
    try:
        with progress.step(f"backend {backend.name}: starting the cluster"):
            backend.start()
        harness_state.backend_name = f"{backend.name} (Kubernetes {backend.kube.server_version()})"
        with progress.step(f"backend {backend.name}: deploying the release"):
            backend.deploy(sources)
        harness_state.platform = backend.platform()
        yield backend
    finally:
        # Not cut short by Ctrl-C: a half-stopped backend leaves its state dir and databases' data behind.
        what = f"backend {backend.name}: stopping"
        with interrupts.deferred(what), progress.step(what):
            backend.stop()


@pytest.fixture
def namespace(request: pytest.FixtureRequest, cluster: Backend, harness_state: HarnessState) -> str:
    """A fresh namespace named after the test; deleted per --keep-namespaces."""
    slug = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].rstrip("-")
    name = f"{slug}-{secrets.token_hex(3)}"
    cluster.kube.create_namespace(name, {RUN_LABEL: harness_state.run_id})
    yield name
    policy = request.config.getoption("--keep-namespaces")
    reports = request.config.stash[REPORTS].get(request.node.nodeid, {})
    failed = any(r.failed for r in reports.values())
    if policy == "always" or (policy == "on-failure" and failed):
        progress.say(f"keeping namespace {name} (--keep-namespaces={policy})")
        return
    cluster.kube.delete_namespace(name)


@pytest.fixture(scope="session")
def endpoints(cluster: Backend) -> Endpoints:
    """Where the server and the subject PostgreSQL are, from the test process and from pods."""
    return cluster.endpoints()


@pytest.fixture
def backup_server(cluster: Backend, endpoints: Endpoints, namespace: str) -> BackupServer:
    """Admin of the server (users, collections as custom resources) and its API client, per test."""
    server = BackupServer(ServerAdmin(cluster.kube, endpoints.server_namespace),
                          ServerClient(endpoints.server_url_from_tests), prefix=namespace)
    yield server
    server.close()


@pytest.fixture
def subject_db(endpoints: Endpoints, namespace: str) -> SubjectDatabase:
    """A fresh PostgreSQL database to back up, named after the test; dropped afterwards."""
    database = SubjectDatabase.create(endpoints.subject_db_from_tests, endpoints.subject_db_in_pods,
                                      "subject_" + re.sub(r"[^a-z0-9]", "_", namespace))
    yield database
    database.drop()


@pytest.fixture
def backups(request: pytest.FixtureRequest, cluster: Backend, namespace: str, release: Release) -> Backups:
    """ScheduledBackups and RequestedBackupActions in the test's namespace, with bounded waits.

    Afterwards the time spent in backups, restores and the Jobs' pods goes into the test's
    JUnit properties (read by tests/benchmarks/scenario_suite.py)."""
    client = Backups(cluster.kube, namespace, cluster.pod_logs, check_alive=cluster.check_services, release=release)
    yield client
    for name, seconds in client.timings().items():
        request.node.user_properties.append((name, f"{seconds:.2f}"))


@pytest.hookimpl(tryfirst=True)
def pytest_keyboard_interrupt(excinfo) -> None:
    """Ctrl-C, SIGINT or SIGTERM: say in which phase the run was stopped; then it tears down what it started,
    and a second Ctrl-C does not cut that short (exit status 2). First among the hooks: pytest's terminal
    reporter can fail formatting the interrupt's traceback (a frame whose tb_lineno is None, Python 3.11),
    and this must be said, and the teardown held, whatever it does."""
    progress.interrupted(os.environ.get("PYTEST_CURRENT_TEST"), " ".join(str(a) for a in excinfo.value.args))
    interrupts.hold_during_teardown()
