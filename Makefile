# Every target creates the local virtual environment on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO ?= build/demo
# The sample's events are from the week before this instant; rule windows count back from it.
SAMPLE_AS_OF ?= 2026-11-07T00:00:00

.PHONY: demo test lint dev bench clean

$(BIN)/segpipe: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

## The sample deployment end to end: a fresh copy of data/ through `segpipe run`.
demo: $(BIN)/segpipe
	@rm -rf $(DEMO)
	@$(BIN)/segpipe sample $(DEMO)
	@# exit 2 means "ran, and some file was rejected": the sample has bad files on purpose.
	@$(BIN)/segpipe run --data-dir $(DEMO) --as-of $(SAMPLE_AS_OF); status=$$?; \
	  if [ $$status -eq 2 ]; then echo "(exit 2: the sample's deliberately bad files were rejected, as they should be)"; exit 0; fi; \
	  exit $$status

test: $(BIN)/segpipe
	$(BIN)/pytest -q

lint: $(BIN)/segpipe
	$(BIN)/ruff check segpipe segpipe_tests

## The Dagster UI over a copy of the sample (or DATA=path), with segpipe's instance settings.
dev: $(BIN)/segpipe
	@test -d $(DEMO) || $(BIN)/segpipe sample $(DEMO)
	@mkdir -p $(DEMO)/.dagster && cp -n segpipe/dagster.yaml $(DEMO)/.dagster/dagster.yaml || true
	SEGPIPE_DATA_DIR=$(abspath $(DEMO)) DAGSTER_HOME=$(abspath $(DEMO))/.dagster $(BIN)/dagster dev -w workspace.yaml

## `segpipe bench` (SCALE=small|full); results in build/bench-$(SCALE)/bench.json.
SCALE ?= small
bench: $(BIN)/segpipe
	$(BIN)/segpipe bench --scale $(SCALE) --dir build/bench-$(SCALE)

clean:
	rm -rf $(VENV) build
