# Backup Repository release harness.
#   make test    the e2e suite on the best available backend (BACKEND=auto: e2e_harness/backend_registry.py picks it)
#   make check   the harness's own tests (tests/unit, tests/integration, tests/selftest)
#   make check-fast   only tests/unit: pure and fast, nothing to build or start first
#   make tools   pinned kubectl, k3d, helm, skaffold into .build/bin (sha256-verified)
#   make local-binaries   the local backend's control plane at the pinned versions
#   make lint-tools   actionlint at its pinned version for the workflow self-tests
SHELL := /bin/bash
PYTHON ?= python3
BUILD := .build
VENV := $(BUILD)/venv
BIN := $(BUILD)/bin
BACKEND ?= auto
TOOLS_MANIFEST ?=
PYTEST_ARGS ?=
# Scenarios run concurrently on one cluster (pytest-xdist); `auto`: the harness's count for this machine
# (pytest_xdist_auto_num_workers in e2e_harness/plugin.py). E2E_WORKERS=0 runs them one at a time.
# worksteal: a worker that runs out of scenarios takes some of another's (they differ in length tenfold).
E2E_WORKERS ?= auto
# Component sources from git bundles when a mirror directory sits beside the checkout (this
# machine, its CI); users without one clone from the git hosting. See README, "Component sources".
E2E_GIT_MIRROR ?= $(if $(wildcard ../shared/mirrors/*.bundle),$(abspath ../shared/mirrors))
export E2E_GIT_MIRROR

.PHONY: test check check-fast tools venv system-deps local-binaries lint-tools clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	touch $@

# Host tools, per backend (the table is HOST_TOOLS in e2e_harness/debian.py; `auto` resolves as the
# harness does): git, gpg and Go for every backend; Docker for k3d; for local the real node's parts
# (containerd, runc, CNI plugins, iptables, conntrack, iproute2, an image registry) and what builds
# its images (mmdebstrap, skopeo, gcc, busybox-static). As root, the missing packages are installed
# with apt-get; anyone else gets the `sudo apt-get install -y ...` line for them. Nothing missing:
# no root needed. Runs with the host's Python (standard library only), before the venv is made.
system-deps:
	@$(PYTHON) -m e2e_harness.debian --backend $(BACKEND)

tools: venv
	$(VENV)/bin/python -m e2e_harness.tools install --dest $(BIN) $(if $(TOOLS_MANIFEST),--manifest $(TOOLS_MANIFEST))

# The local backend's Kubernetes at the pinned versions (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kube-proxy, kubectl, etcd, CoreDNS): found, or built once from Go modules
# into ~/.cache/e2e-harness (about 10 minutes cold on 2 cores, seconds warm).
# `make check` comes through here: its self-tests run the local backend's real node, so it needs that
# backend's host tools (and root), whatever BACKEND says.
local-binaries:
	@$(PYTHON) -m e2e_harness.debian --backend local --self-tests
	@$(MAKE) --no-print-directory venv
	$(VENV)/bin/python -m e2e_harness.backends.local.binaries --release-env release.env

# actionlint at the version pinned in e2e_harness/lint_tools.py: found, or built once from its Go
# module into ~/.cache/e2e-harness/actionlint (seconds); tests/integration/test_workflows.py needs it.
lint-tools: venv
	$(VENV)/bin/python -m e2e_harness.lint_tools

# The three tiers of self-tests, fast ones first: unit (pure), integration (the control plane, the node, git,
# Go, host packages), selftest (whole e2e runs as child processes).
check: local-binaries lint-tools tools
	$(VENV)/bin/python -m pytest tests/unit tests/integration tests/selftest $(PYTEST_ARGS)

# tests/unit alone: no server, cluster, git repository, Go build or e2e run, so nothing to build first (under a
# minute on 2 cores).
check-fast: venv
	$(VENV)/bin/python -m pytest tests/unit $(PYTEST_ARGS)

# --capture=sys: the harness's phase lines reach the console while fixtures set up (with fd capture
# pytest would hold them back until a failure).
# Every backend deploys with the pinned skaffold and helm, so `make tools` runs whatever BACKEND is.
test: system-deps
	@$(MAKE) --no-print-directory tools
	PATH="$(abspath $(BIN)):$$PATH" $(VENV)/bin/python -m pytest tests/e2e --backend $(BACKEND) -n $(E2E_WORKERS) \
	  $(if $(filter 0,$(E2E_WORKERS)),,--dist worksteal) \
	  --capture=sys --junitxml $(BUILD)/junit-e2e.xml $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(BIN) $(BUILD)/artifacts
