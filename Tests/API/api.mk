# API tests: pytest drives a real `molt serve` (and real redis-server processes) with the official
# Dapr Python SDK, grpcio clients and curl. The venv is created by scripts/python-env.sh.
VENV := $(OUT)/venv

.PHONY: python-env test-api

python-env:
	@bash scripts/python-env.sh $(VENV) Tests/API/requirements.txt

test-api: python-env
	MOLT_BIN=$(SWIFT_BIN)/molt MOLT_BENCH_BIN=$(SWIFT_BIN)/molt-bench MOLT_PLUGINS_DIR=$(PLUGINS_DIR) MOLT_FIXTURES_DIR=$(FIXTURES) MOLT_ROOT=$(ROOT) \
	  $(VENV)/bin/python -m pytest -q Tests/API
