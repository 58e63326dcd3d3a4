# Backup Repository release harness.
#   make test    the e2e suite on the best available backend (k3d with Docker, else local)
#   make check   the harness's own tests
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
POSTGRES_MAJOR := $(shell sed -n 's/^POSTGRES_VERSION=//p' release.env)
# Component sources from git bundles when a mirror directory sits beside the checkout (this
# machine, its CI); users without one clone from the git hosting. See README, "Component sources".
E2E_GIT_MIRROR ?= $(if $(wildcard ../shared/mirrors/*.bundle),$(abspath ../shared/mirrors))
export E2E_GIT_MIRROR

.PHONY: test check tools venv system-deps local-binaries lint-tools clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	touch $@

# Host tools: git, gpg, Go; for the local backend PostgreSQL (the release's major), Redis, MariaDB
# (Debian's major hosts the templates' mariadb:<that major> images; other majors are not hostable),
# and the real node's parts: containerd, runc, CNI plugins, iptables, conntrack, iproute2, an image
# registry (distribution), and what builds its images (mmdebstrap, skopeo, gcc, busybox-static).
# command:package, then file:package, of the node's parts
NODE_COMMANDS := containerd:containerd ctr:containerd runc:runc iptables:iptables conntrack:conntrack ip:iproute2 \
	nsenter:util-linux docker-registry:docker-registry mmdebstrap:mmdebstrap skopeo:skopeo gcc:gcc busybox:busybox-static
NODE_FILES := /usr/lib/cni/bridge:containernetworking-plugins /usr/include/stdio.h:libc6-dev \
	/etc/ssl/certs/ca-certificates.crt:ca-certificates /usr/share/zoneinfo/UTC:tzdata
system-deps:
	@missing=""; \
	command -v git >/dev/null || missing="$$missing git"; \
	command -v gpg >/dev/null || missing="$$missing gnupg"; \
	command -v go >/dev/null || missing="$$missing golang-go"; \
	command -v setpriv >/dev/null || missing="$$missing util-linux"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	[ -x /usr/lib/postgresql/$(POSTGRES_MAJOR)/bin/postgres ] || missing="$$missing postgresql-$(POSTGRES_MAJOR)"; \
	[ -x /usr/sbin/mariadbd ] || missing="$$missing mariadb-server"; \
	for pair in $(NODE_COMMANDS); do command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair#*:}"; done; \
	for pair in $(NODE_FILES); do [ -e $${pair%%:*} ] || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "missing tools:$$missing; install them, e.g.: sudo apt-get install$$missing" >&2; exit 1; fi; \
	fi

tools: venv
	$(VENV)/bin/python -m e2e_harness.tools install --dest $(BIN) $(if $(TOOLS_MANIFEST),--manifest $(TOOLS_MANIFEST))

# The local backend's Kubernetes at the pinned versions (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kube-proxy, kubectl, etcd, CoreDNS): found, or built once from Go modules
# into ~/.cache/e2e-harness (about 10 minutes cold on 2 cores, seconds warm).
local-binaries: system-deps venv
	$(VENV)/bin/python -m e2e_harness.backends.local.binaries --release-env release.env

# actionlint at the version pinned in e2e_harness/lint_tools.py: found, or built once from its Go
# module into ~/.cache/e2e-harness/actionlint (seconds); tests/unit/test_workflows.py needs it.
lint-tools: venv
	$(VENV)/bin/python -m e2e_harness.lint_tools

check: local-binaries lint-tools
	$(VENV)/bin/python -m pytest tests/unit $(PYTEST_ARGS)

# --capture=sys: the harness's phase lines reach the console while fixtures set up (with fd capture
# pytest would hold them back until a failure).
test: system-deps venv
	@if [ "$(BACKEND)" = k3d ] || [ "$(BACKEND)" = existing ] || { [ "$(BACKEND)" = auto ] && docker info >/dev/null 2>&1; }; then \
	  $(MAKE) --no-print-directory tools; fi
	PATH="$(abspath $(BIN)):$$PATH" $(VENV)/bin/python -m pytest tests/e2e --backend $(BACKEND) \
	  --capture=sys --junitxml $(BUILD)/junit-e2e.xml $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(BIN) $(BUILD)/artifacts
