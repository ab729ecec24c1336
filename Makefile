# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv on first use and install medattr with torch pinned (constraints.txt).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The MONAI Deploy App SDK (Holoscan) is imported by every `import monai` once installed, so its
# tests run in a venv of their own and the main suite stays light.
DEPLOY_VENV ?= .venv-deploy
DEPLOY_STAMP := $(DEPLOY_VENV)/.installed-stamp
OUT ?= demo_out

# OHIF Viewer's prebuilt dist/ for the viewer test: the lockfile pins @ohif/app's version and
# sha512 and nothing else (its dist/ is self-contained: the build-time dependencies it declares
# are already bundled into it), so `npm ci` fetches one tarball.
OHIF_DIR := .ci/ohif
OHIF_STAMP := $(OHIF_DIR)/node_modules/.installed-stamp

.PHONY: demo test lint typecheck clean ohif

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

$(DEPLOY_STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(DEPLOY_VENV)/bin/python -m pip install --quiet -c constraints.txt -e ".[dev,deploy]"
	touch $(DEPLOY_STAMP)

$(OHIF_STAMP): $(OHIF_DIR)/package.json $(OHIF_DIR)/package-lock.json
	npm ci --prefix $(OHIF_DIR) --ignore-scripts --no-audit --no-fund
	touch $(OHIF_STAMP)

ohif: $(OHIF_STAMP)

demo: $(STAMP)
	$(BIN)/medattr demo --out $(OUT)

test: $(STAMP) $(DEPLOY_STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest --ignore=tests/deploy
	$(DEPLOY_VENV)/bin/python -m pytest tests/deploy

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(DEPLOY_VENV) $(OUT) .pytest_cache .ruff_cache .mypy_cache $(OHIF_DIR)/node_modules
