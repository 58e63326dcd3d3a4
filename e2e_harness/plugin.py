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

from . import commands, interrupts, knobs, progress, shared_cluster
from .backends import BACKEND_NAMES, Backend, BackendUnavailable, BackendUsageError, Endpoints, Settings, backend_class
from .backups import Backups
from .components import COMPONENTS, ComponentSourceError, ResolvedSource, SourceResolver, git_mirror_from
from .diagnostics import bundle_dir, collect_bundle
from .knobs import KnobError, Knobs
from .known_defects import DEFECTS_FILE, KnownDefect, KnownDefectHit, KnownDefectsError, Occurrences, template_defects
from .known_defects import load as load_known_defects
from .masking import SecretMasker
from .processes import children
from .release import Release, ReleaseError, load_release
from .report import TestResult, add_junit_properties, release_properties, render_markdown, write_report
from .server_api import BackupServer, RoleTokens, ServerAdmin, ServerClient
from .shared_cluster import SharedCluster
from .templates import TemplateDefinition, TemplateDefinitionError, load_definitions
from .waiting import deadline_clock

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
    worker: str | None = None       # gw0, gw1... in a pytest-xdist worker
    deleted_namespaces: list[str] = field(default_factory=list)   # deletion requested, awaited once at the end
    report_path: Path | None = None
    templates: list[TemplateDefinition] | None = None  # the matrix, read at collection
    masker: SecretMasker = field(default_factory=SecretMasker)     # every secret the run learns; masks all output
    occurrences: Occurrences = field(default_factory=Occurrences)  # known-defect hits, for the report
    known_defects: list[KnownDefect] | None = None                 # the catalogue, loaded once


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
    group.addoption("--known-defects", default=None, metavar="PATH",
                    help=f"the known defects of the release (default: the harness's own, {DEFECTS_FILE.name})")
    knobs.add_options(group)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: scenario test that needs a running backend")
    config.addinivalue_line("markers", "template_family(name): a template-matrix scenario only for that family")
    project_dir = Path(config.rootpath)
    build_dir = Path(config.getoption("--build-dir") or project_dir / ".build").absolute()
    given = getattr(config, "workerinput", {})   # a pytest-xdist worker: the controller's run id
    run_id = given.get(shared_cluster.RUN_ID) or time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)
    artifacts = Path(given.get(shared_cluster.ARTIFACTS_DIR) or config.getoption("--artifacts-dir")
                     or build_dir / "artifacts" / run_id).absolute()
    config.stash[STATE] = HarnessState(run_id, project_dir, build_dir, artifacts,
                                       worker=shared_cluster.worker_id(config))
    config.stash[REPORTS] = {}
    config.pluginmanager.register(_Reports(config), "e2e-harness-reports")
    if shared_cluster.is_controller(config):
        config.pluginmanager.register(_Controller(config), "e2e-harness-controller")


# Workers per CPU for `-n auto`: a scenario mostly waits (for the controller, for pods), so a worker per
# core leaves the cores idle; the cluster's own processes need their share too.
WORKERS_PER_CPU = 2
MAX_WORKERS = 8
MEMORY_PER_WORKER = 1 << 30   # a worker's Python, its port-forwards and the pods of its scenario


@pytest.hookimpl(optionalhook=True, tryfirst=True)   # before xdist's own (one per CPU)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: WORKERS_PER_CPU per usable CPU, at most MAX_WORKERS, and no more than the available
    memory holds (MEMORY_PER_WORKER each)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    by_memory = MAX_WORKERS
    try:
        available_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                            if line.startswith("MemAvailable:"))
        by_memory = max(1, available_kb * 1024 // MEMORY_PER_WORKER)
    except (OSError, StopIteration, ValueError):
        pass
    return max(1, min(cpus * WORKERS_PER_CPU, MAX_WORKERS, by_memory))


def _interrupt_on_sigterm(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def pytest_sessionstart(session: pytest.Session) -> None:
    # A CI cancel or `kill` sends SIGTERM: stop like Ctrl-C, so every fixture tears down what it started.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    state = session.config.stash[STATE]
    worker = state.worker
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if worker is not None:   # a worker's terminal is not shown; its stderr is the console's
        progress.configure(lambda line: os.write(2, (line + "\n").encode()), state.masker.mask,
                           label=progress.test_label(worker))
    elif reporter is not None:
        progress.configure(lambda line: reporter.write_line(line), state.masker.mask)
    if _runs_scenarios(session.config) and not session.config.option.collectonly:
        _load_inputs(session.config)   # a usage error says so before collection, not as a collection error


def pytest_collection_finish(session: pytest.Session) -> None:
    """Validate knobs and release.env before any expensive fixture runs."""
    if not any("release" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    _load_inputs(session.config)


def _load_inputs(config: pytest.Config) -> HarnessState:
    """Knobs, release.env, the git mirror, the known defects and the knobs' fit to the backend, validated
    once; a usage error (exit status 4) otherwise."""
    state = config.stash[STATE]
    if state.release is not None:
        return state
    path = config.getoption("--release-env") or state.project_dir / "release.env"
    try:
        state.knobs = knobs.from_pytest(config)
        commands.configure(verbose=state.knobs.verbose)
        state.release = load_release(path)
        state.git_mirror = git_mirror_from(config.getoption("--git-mirror"), os.environ)
        state.known_defects = load_known_defects(Path(config.getoption("--known-defects") or DEFECTS_FILE))
        if _runs_scenarios(config):
            backend_class(config.getoption("--backend"))(_settings(config, state, keep_cluster=False,
                                                                   shared=False)).check_usage()
    except (ReleaseError, KnobError, ComponentSourceError, KnownDefectsError, BackendUsageError) as exc:
        state.release = None
        pytest.exit(f"e2e-harness: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
    return state


def _runs_scenarios(config: pytest.Config) -> bool:
    """Whether a path of the command line holds tests/e2e or lies in it."""
    scenarios = (config.stash[STATE].project_dir / "tests" / "e2e").resolve()
    if not scenarios.is_dir():
        return False
    for arg in config.args:
        path = (config.invocation_params.dir / arg.split("::")[0]).resolve()
        if path == scenarios or scenarios in path.parents or path in scenarios.parents:
            return True
    return False


def _resolver(state: HarnessState) -> SourceResolver:
    return SourceResolver(state.build_dir, skip_git_pull=state.knobs.skip_git_pull, mode=state.knobs.component_source,
                          progress=progress.say, git_mirror=state.git_mirror)


def _template_definitions(config: pytest.Config) -> list[TemplateDefinition]:
    """The template matrix: the definitions backup-maker's pinned source ships (resolved once per process)."""
    state = _load_inputs(config)
    if state.templates is None:
        backup_maker = next(c for c in COMPONENTS if c.name == "backup-maker")
        try:
            source = _resolver(state).resolve(backup_maker, state.release.pin(backup_maker.pin_key))
            state.templates = load_definitions(source.path)
        except (ComponentSourceError, TemplateDefinitionError) as exc:
            pytest.exit(f"e2e-harness: the template matrix: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
    return state.templates


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The template matrix: one case per definition in the pinned backup-maker's source.

    Collecting it resolves backup-maker's source (the only component resolved at collection:
    the matrix is whatever that revision ships). A scenario marked ``template_family(x)``
    gets that family's templates only; a known defect of the release (e2e_harness/known-defects.yaml,
    ``handling: xfail``) marks its cases xfail(strict=True), expected only on its symptom."""
    if "procedure_template" not in metafunc.fixturenames:
        return
    state = _load_inputs(metafunc.config)
    _template_definitions(metafunc.config)
    family = metafunc.definition.get_closest_marker("template_family")
    defects = state.known_defects
    params = []
    for definition in state.templates:
        if family and definition.family != family.args[0]:
            continue
        marks = [pytest.mark.xfail(strict=True, raises=KnownDefectHit, reason=f"known defect {d.id}: {d.symptom}")
                 for d in template_defects(defects, state.release, metafunc.function.__name__,
                                           definition.backup_template, definition.restore_template)]
        params.append(pytest.param(definition, id=definition.name, marks=marks))
    metafunc.parametrize("procedure_template", params)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test using the cluster is a scenario (marker e2e): the reports carry it to xdist's controller."""
    for item in items:
        if "cluster" in getattr(item, "fixturenames", ()) and item.get_closest_marker("e2e") is None:
            item.add_marker(pytest.mark.e2e)


class _Reports:
    """Every phase's report, by test, in the order they ran (in xdist's controller: the workers' reports)."""

    def __init__(self, config: pytest.Config):
        self.config = config

    def pytest_runtest_logreport(self, report) -> None:
        self.config.stash[REPORTS].setdefault(report.nodeid, {})[report.when] = report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    report = yield
    if report.failed:
        _attach_failure_bundle(item, report)
        masked = item.config.stash[STATE].masker.mask(str(report.longrepr))
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
                       [namespace, *backend.diagnostic_namespaces()], dest, state.masker, backend.service_logs(),
                       extra)
    except Exception as exc:  # noqa: BLE001 - a broken collector must not hide the test's own failure
        report.sections.append(("failure bundle", f"could not be collected: {type(exc).__name__}: {exc}"))
        return
    state.bundles[item.nodeid] = dest
    report.sections.append(("failure bundle", str(dest)))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus) -> None:
    """Report the release; and a run whose scenarios were all skipped did not test it: not green.

    A pytest-xdist worker hands what it learnt to the controller instead (``_worker_output``), which
    reports for the whole run."""
    state = session.config.stash[STATE]
    if state.worker is not None:
        if hasattr(session.config, "workeroutput"):
            session.config.workeroutput[shared_cluster.WORKER_OUTPUT] = _worker_output(state)
        return
    if state.release is not None and not session.config.option.collectonly:
        _write_reports(session, state, interrupted=exitstatus == pytest.ExitCode.INTERRUPTED)
    if exitstatus != pytest.ExitCode.OK or session.config.option.collectonly:
        return
    scenarios = {nodeid: reports for nodeid, reports in session.config.stash[REPORTS].items()
                 if any("e2e" in r.keywords for r in reports.values())}
    if not scenarios:
        return
    # an xfail ran: its known defect showed (a run of only those tested the release and found it as known)
    ran = [nodeid for nodeid, reports in scenarios.items()
           if any(not r.skipped or hasattr(r, "wasxfail") for r in reports.values() if r.when == "call")]
    if not ran:
        session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED
        state.all_skipped = True


def _worker_output(state: HarnessState) -> dict:
    """What the controller's report needs from a worker: plain data (it crosses execnet)."""
    return {"release_loaded": state.release is not None,
            "backend": state.backend_name, "platform": state.platform,
            "sources": [{"component": s.component.name, "path": str(s.path), "origin": s.origin,
                         "revision": s.revision, "detail": s.detail} for s in state.sources],
            "occurrences": state.occurrences.counts(), "secrets": state.masker.values()}


def _merge_worker_output(config: pytest.Config, output: dict) -> None:
    """A worker's output into the controller's state (its secrets into the masker before anything is written)."""
    state = config.stash[STATE]
    for value in output.get("secrets", ()):
        state.masker.add(value)
    for defect_id, count in output.get("occurrences", {}).items():
        state.occurrences.add_count(defect_id, count)
    if not output.get("release_loaded"):
        return
    state = _load_inputs(config)
    if output.get("backend") and (not state.backend_name or "(unavailable)" in state.backend_name):
        state.backend_name = output["backend"]
    state.platform.update(output.get("platform") or {})
    if not state.sources and output.get("sources"):
        by_name = {c.name: c for c in COMPONENTS}
        state.sources = [ResolvedSource(by_name[s["component"]], state.release.pin(by_name[s["component"]].pin_key),
                                        Path(s["path"]), s["origin"], s["revision"], s["detail"])
                         for s in output["sources"]]


class _Controller:
    """pytest-xdist's main process: hands the workers one run id, gathers what they learnt, and removes the
    cluster they shared after the last one has ended (shared_cluster.py)."""

    def __init__(self, config: pytest.Config):
        self.config = config

    @pytest.hookimpl(tryfirst=True)   # before xdist starts the workers (its sessionstart is trylast)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """A run of the scenarios checks its inputs here, once: a usage error in a worker's collection would
        end as xdist's internal error instead of exit status 4 with the message."""
        if _runs_scenarios(self.config):   # the controller collects nothing: it asks the command line
            _template_definitions(self.config)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        state = self.config.stash[STATE]
        node.workerinput[shared_cluster.RUN_ID] = state.run_id
        node.workerinput[shared_cluster.ARTIFACTS_DIR] = str(state.artifacts_dir)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:
        output = getattr(node, "workeroutput", {}).get(shared_cluster.WORKER_OUTPUT)
        if output:
            _merge_worker_output(self.config, output)

    @pytest.hookimpl(tryfirst=True)
    def pytest_keyboard_interrupt(self, excinfo) -> None:
        """Pass the interrupt on to the workers (a terminal's Ctrl-C reaches them too; a `kill -INT` or a CI
        cancel may reach only this process), so that each tears down what it started before xdist ends them.
        The controller runs no phase itself: the workers' lines say where each was stopped."""
        if isinstance(excinfo.value, pytest.exit.Exception):   # pytest.exit (a usage error) comes here too
            return
        progress.note_interrupt("the concurrent run (each worker's line names its own phase)")
        for worker in children(os.getpid()):   # xdist's workers are this process's only children
            try:
                os.kill(worker, signal.SIGINT)
            except ProcessLookupError:
                pass

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """After xdist has ended its workers (its own sessionfinish): remove the run's cluster, once."""
        state = self.config.stash[STATE]
        shared = SharedCluster(state.build_dir, state.run_id)
        record = shared.read()
        if record is None:
            return
        what = f"backend {record['backend']}: removing the run's cluster"
        if self.config.getoption("--keep-cluster"):
            what = f"backend {record['backend']}: keeping the run's cluster for the next run"
        with interrupts.deferred(what), progress.step(what):
            settings = _settings(self.config, _load_inputs(self.config), shared=True,
                                 keep_cluster=self.config.getoption("--keep-cluster"))
            backend_class(record["backend"])(settings).release_shared()
            shared.remove()


def _write_reports(session: pytest.Session, state: HarnessState, interrupted: bool = False) -> None:
    results = []
    for nodeid, reports in session.config.stash[REPORTS].items():
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
        results.append(TestResult(nodeid, outcome, sum(r.duration for r in reports.values()),
                                  _bundle_of(reports), state.masker.mask(reason)))
    seen = state.occurrences.counts()
    defects = [(d, seen.get(d.id, 0)) for d in state.known_defects if d.applies(state.release)]
    text = render_markdown(state.release, state.sources, state.backend_name, results, state.artifacts_dir, defects,
                           state.platform, interrupted=interrupted)
    state.report_path = write_report(state.masker.mask(text), state.artifacts_dir)


def pytest_unconfigure(config: pytest.Config) -> None:
    """The release's pins, sources, backend and platform as properties of the JUnit file (once written)."""
    state = config.stash.get(STATE, None)
    xml_path = getattr(config.option, "xmlpath", None)
    if state is None or state.worker is not None or state.release is None or not xml_path or not Path(xml_path).is_file():
        return
    add_junit_properties(Path(xml_path), release_properties(state.release, state.sources, state.backend_name,
                                                            state.platform))


def _bundle_of(reports: dict) -> Path | None:
    """The failure bundle a test's reports name (``_attach_failure_bundle``), if any."""
    for report in reports.values():
        for name, content in report.sections:
            if name == "failure bundle" and content.startswith("/"):
                return Path(content)
    return None


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


def _settings(config: pytest.Config, state: HarnessState, *, keep_cluster: bool, shared: bool) -> Settings:
    knobs = state.knobs
    return Settings(release=state.release, project_dir=state.project_dir, build_dir=state.build_dir,
                    artifacts_dir=state.artifacts_dir, run_id=state.run_id, keep_cluster=keep_cluster,
                    skip_server_install=knobs.skip_server_install, skip_client_install=knobs.skip_client_install,
                    kube_context=config.getoption("--kube-context"), cluster_name=config.getoption("--cluster-name"),
                    shared=shared, masker=state.masker)


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest, release: Release, harness_state: HarnessState):
    """The backend, started and with the release deployed; stopped at the end of the session.

    In a pytest-xdist worker the cluster is the run's, shared by every worker: the first prepares it,
    the others attach; none stops it (the controller removes it after the last worker)."""
    config = request.config
    worker = harness_state.worker
    settings = _settings(config, harness_state, shared=worker is not None,
                         keep_cluster=config.getoption("--keep-cluster") or worker is not None)
    try:
        backend: Backend = backend_class(config.getoption("--backend"))(settings)
        harness_state.backend_name = f"{backend.name} (unavailable)"
        backend.preflight()  # before any source is resolved or built
    except BackendUnavailable as exc:
        pytest.skip(f"backend unavailable: {exc}")
    harness_state.backend_name = backend.name
    sources = request.getfixturevalue("components")
    try:
        if worker is None:
            _start_and_deploy(backend, sources, harness_state)
        else:
            _prepare_or_attach(backend, sources, harness_state, worker)
        harness_state.platform = backend.platform()
        yield backend
    finally:
        # Not cut short by Ctrl-C: a half-stopped backend leaves its state dir and databases' data behind.
        what = f"backend {backend.name}: stopping" if worker is None else f"backend {backend.name}: detaching"
        with interrupts.deferred(what):
            try:
                _await_deleted_namespaces(backend, harness_state, config.getoption("--keep-cluster"))
            finally:
                with progress.step(what):
                    backend.stop()


NAMESPACES_GONE_TIMEOUT = 180


def _await_deleted_namespaces(backend: Backend, harness_state: HarnessState, keep_cluster: bool) -> None:
    """The namespaces this process's scenarios deleted are gone (bounded; at the end, not after each test),
    where the cluster outlives the run; a cluster the run removes takes them with it."""
    pending, harness_state.deleted_namespaces = harness_state.deleted_namespaces, []
    if not pending or (backend.owns_cluster and not keep_cluster):
        return
    with progress.step(f"waiting for the {len(pending)} deleted test namespace(s) to be gone"):
        left = deadline_clock(NAMESPACES_GONE_TIMEOUT)
        for name in pending:
            backend.kube.wait_deleted("v1", "Namespace", name, timeout=max(left(), 1.0),
                                      what=f"namespace {name} to be deleted (finalizers, namespace controller)")


def _start_and_deploy(backend: Backend, sources, harness_state: HarnessState) -> None:
    with progress.step(f"backend {backend.name}: starting the cluster"):
        backend.start()
    harness_state.backend_name = f"{backend.name} (Kubernetes {backend.kube.server_version()})"
    with progress.step(f"backend {backend.name}: deploying the release"):
        backend.deploy(sources)


def _prepare_or_attach(backend: Backend, sources, harness_state: HarnessState, worker: str) -> None:
    """The first worker starts the cluster and deploys the release; the next ones find both done (a kept
    cluster, deploys whose fingerprints match) and attach. One worker at a time (shared_cluster.py)."""
    shared = SharedCluster(harness_state.build_dir, harness_state.run_id)
    with shared.turn(worker) as record:
        first = record is None
        if first:
            shared.write(state="preparing", worker=worker, backend=backend.name)
        try:
            _start_and_deploy(backend, sources, harness_state)
            backend.share()
        except BaseException as exc:
            if first:
                shared.write(state="failed", worker=worker, backend=backend.name,
                             error=harness_state.masker.mask(f"{type(exc).__name__}: {exc}")[-4000:])
            raise
        if first:
            shared.write(state="ready", worker=worker, backend=backend.name)


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
    # Not awaited here, on each scenario's critical path (a namespace with pods takes seconds to go): the
    # cluster fixture awaits them all once, before it stops.
    cluster.kube.delete_namespace(name, wait=False)
    harness_state.deleted_namespaces.append(name)


@pytest.fixture(scope="session")
def endpoints(cluster: Backend) -> Endpoints:
    """Where the server and the subject PostgreSQL are, from the test process and from pods."""
    return cluster.endpoints()


@pytest.fixture(scope="session")
def role_tokens(cluster: Backend, endpoints: Endpoints, harness_state: HarnessState) -> RoleTokens:
    """The process's server users by role, each logged in once (RoleTokens: the server's login limit)."""
    masker = harness_state.masker
    tokens = RoleTokens(ServerAdmin(cluster.kube, endpoints.server_namespace, masker),
                        ServerClient(endpoints.server_url_from_tests, masker),
                        prefix=f"e2e-{harness_state.run_id}-{harness_state.worker or 'main'}-role")
    yield tokens
    tokens.close()


@pytest.fixture
def backup_server(cluster: Backend, endpoints: Endpoints, namespace: str, role_tokens: RoleTokens,
                  harness_state: HarnessState) -> BackupServer:
    """Admin of the server (users, collections as custom resources) and its API client, per test."""
    masker = harness_state.masker
    server = BackupServer(ServerAdmin(cluster.kube, endpoints.server_namespace, masker),
                          ServerClient(endpoints.server_url_from_tests, masker), prefix=namespace, tokens=role_tokens)
    yield server
    server.close()


@pytest.fixture(scope="session")
def masker(harness_state: HarnessState) -> SecretMasker:
    """The run's secret masker: a test that makes a secret itself (keys) registers it here."""
    return harness_state.masker


@pytest.fixture(scope="session")
def known_defects(harness_state: HarnessState) -> list[KnownDefect]:
    """The release's known defects (e2e_harness/known-defects.yaml, or --known-defects), loaded once."""
    return harness_state.known_defects


@pytest.fixture(scope="session")
def template_definitions(request: pytest.FixtureRequest) -> list[TemplateDefinition]:
    """Every procedure template the pinned backup-maker ships (the template matrix)."""
    return _template_definitions(request.config)


@pytest.fixture
def backups(request: pytest.FixtureRequest, cluster: Backend, namespace: str, release: Release,
            harness_state: HarnessState) -> Backups:
    """ScheduledBackups and RequestedBackupActions in the test's namespace, with bounded waits.

    Afterwards the time spent in backups, restores and the Jobs' pods goes into the test's
    JUnit properties (read by tests/benchmarks/scenario_suite.py)."""
    client = Backups(cluster.kube, namespace, cluster.pod_logs, harness_state.masker, check_alive=cluster.check_services,
                     release=release, defects=harness_state.known_defects, occurrences=harness_state.occurrences)
    yield client
    for name, seconds in client.timings().items():
        request.node.user_properties.append((name, f"{seconds:.2f}"))


@pytest.hookimpl(tryfirst=True)
def pytest_keyboard_interrupt(excinfo) -> None:
    """Ctrl-C, SIGINT or SIGTERM: say in which phase the run was stopped; then it tears down what it started,
    and a second Ctrl-C does not cut that short (exit status 2). First among the hooks: pytest's terminal
    reporter can fail formatting the interrupt's traceback (a frame whose tb_lineno is None, Python 3.11),
    and this must be said, and the teardown held, whatever it does."""
    if isinstance(excinfo.value, pytest.exit.Exception):   # pytest.exit (a usage error), not an interrupt
        return
    progress.interrupted(os.environ.get("PYTEST_CURRENT_TEST"), " ".join(str(a) for a in excinfo.value.args))
    interrupts.hold_during_teardown()
