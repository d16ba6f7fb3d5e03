# oec-operator: the two commands users need are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

K8S_VERSION ?= 1.36.3
CACHE_HOME ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)
K8S_BIN_DIR ?= $(or $(OEC_K8S_BIN_DIR),$(CACHE_HOME)/oec-operator/k8s-v$(K8S_VERSION))
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= .demo
IMG ?= oec-operator:dev
KIND_CLUSTER ?= oec
BUDGET_ENVIRONMENTS ?= 100

export OEC_K8S_BIN_DIR := $(K8S_BIN_DIR)
export K8S_VERSION

.PHONY: help venv k8s-bin test test-unit lint lint-docker demo demo-down demo-status kind-up kind-deploy \
	manifests image

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

# The operator with its dev tools, and beside it the simulator and the test support: packages of
# their own (simulator/, testkit/), never in the operator's wheel or image.
$(VENV)/.installed: pyproject.toml simulator/pyproject.toml testkit/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]' -e ./simulator -e ./testkit
	touch $@

venv: $(VENV)/.installed ## Create .venv with the operator, the simulator, the test support and the dev tools

k8s-bin: ## Build kube-apiserver, etcd and kubectl v$(K8S_VERSION) into the cache (only what is missing)
	K8S_VERSION=$(K8S_VERSION) tools/k8sbin/build.sh $(K8S_BIN_DIR)

test: venv k8s-bin ## Unit, simulator and integration tests (starts its own control plane and simulator)
	$(PY) -m pytest -q -p no:cacheprovider --durations=30 tests

test-unit: venv ## Only the tests that need no control plane
	$(PY) -m pytest -q -p no:cacheprovider -m "not integration" tests

.PHONY: bench
$(VENV)/.bench-installed: $(VENV)/.installed
	$(VENV)/bin/pip install --quiet -e './testkit[bench]'
	touch $@

bench: venv k8s-bin $(VENV)/.bench-installed ## Benchmark vs the naive design at N=100/1000/3000 (about 1.5 h; BENCH_ARGS=...): bench-results/
	$(PY) tools/bench.py $(BENCH_ARGS)

.PHONY: budget
budget: venv k8s-bin ## Stop and start 100 environments at the default write limit (about 11 min; BUDGET_ENVIRONMENTS=N)
	OEC_BUDGET_ENVIRONMENTS=$(BUDGET_ENVIRONMENTS) $(PY) -m pytest -q -s -p no:cacheprovider tests/integration/test_power_budget.py

.PHONY: budget-backups
budget-backups: venv k8s-bin ## A backup schedule over 200 environments at the default write limit, 20 a minute (about 15 min; SCHEDULE_BUDGET_ENVIRONMENTS=N)
	OEC_SCHEDULE_BUDGET_ENVIRONMENTS=$(or $(SCHEDULE_BUDGET_ENVIRONMENTS),200) OEC_SCHEDULE_BUDGET_WRITE_LIMIT=20 \
		$(PY) -m pytest -q -s -p no:cacheprovider tests/integration/test_backup_budget.py

.PHONY: chaos chaos-long
chaos: venv k8s-bin ## Chaos suite, short form (a few trials per fault; also part of `make test`)
	$(PY) -m pytest -q -p no:cacheprovider tests/chaos

chaos-long: venv k8s-bin ## Chaos benchmark, long form: prints the table, writes bench-results/chaos-results.json (CHAOS_ARGS=...)
	$(PY) tools/chaos.py --out bench-results/chaos-results.json $(CHAOS_ARGS)

lint: venv lint-docker ## ruff, mypy, the import rules (lint-imports) and hadolint
	$(VENV)/bin/ruff check operator simulator testkit tests tools
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

lint-docker: venv ## hadolint the Dockerfile
	$(VENV)/bin/hadolint Dockerfile

demo: venv k8s-bin ## Control plane + simulator + operator + a sample OdooEnvironment reaching Running
	$(PY) tools/demo.py up --state-dir $(DEMO_DIR)

demo-status: venv ## Show the demo's processes and resources
	$(PY) tools/demo.py status --state-dir $(DEMO_DIR)

demo-down: venv ## Stop everything `make demo` started
	$(PY) tools/demo.py down --state-dir $(DEMO_DIR)

kind-up: ## (needs Docker) Create a kind cluster and install the CRDs (OdooEnvironment, kopf peering)
	kind create cluster --name $(KIND_CLUSTER)
	kubectl apply -f crds/

manifests: k8s-bin ## Render the install manifests (deploy/default) into dist/install.yaml
	@mkdir -p dist
	$(K8S_BIN_DIR)/kubectl kustomize deploy/default > dist/install.yaml.tmp
	mv dist/install.yaml.tmp dist/install.yaml
	@echo "dist/install.yaml: image oec-operator:latest (a placeholder: see README, Install)"

image: ## (needs Docker) Build the operator image $(IMG)
	docker build -t $(IMG) .

kind-deploy: image ## (needs Docker) Build the image, load it into kind and deploy the operator with it
	kind load docker-image $(IMG) --name $(KIND_CLUSTER)
	@# deploy/default with the image swapped, as an overlay in dist/ (kustomize needs a relative path)
	@mkdir -p dist/kind
	@img='$(IMG)'; name="$${img%:*}"; tag="$${img##*:}"; \
	  case "$$img" in *:*) case "$$tag" in */*) name="$$img"; tag=latest;; esac;; *) name="$$img"; tag=latest;; esac; \
	  printf 'resources:\n  - ../../deploy/default\nimages:\n  - name: oec-operator\n    newName: %s\n    newTag: %s\n' \
	    "$$name" "$$tag" > dist/kind/kustomization.yaml
	kubectl apply -k dist/kind
	@echo "Create the default API key Secret if not done yet:"
	@echo "  kubectl -n oec-system create secret generic oec-api-key --from-literal=apiKey=oec_live_rw_..."
