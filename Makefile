# Faceplane: `make serve` and `make test` each set up .venv (packages and models) when needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.faceplane-installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: install models serve test lint types services-check pytest bench clean

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -e '.[dev]'
	@# The face_recognition library is the benchmark reference. Its metadata asks for `dlib`
	@# (a source build); dlib-bin provides the same module, so it is installed without deps.
	$(PIP) install --no-deps face-recognition==1.3.0
	@touch $@

install: $(STAMP)

models: $(STAMP)
	@$(BIN)/faceplane models install

serve: models
	$(BIN)/faceplane serve

lint: $(STAMP)
	$(BIN)/ruff check src tests bench train

types: $(STAMP)
	$(BIN)/mypy

# The distributed-mode tests (tests/api/test_tasks.py, celery cases) need PostgreSQL and
# Redis on 127.0.0.1; without them they skip. Say so before pytest, where nobody can miss it.
define SERVICES_CHECK
import socket
down = []
for name, port in (("PostgreSQL", 5432), ("Redis", 6379)):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        print(f"services-check: {name} at 127.0.0.1:{port} answers")
    except OSError:
        down.append(f"{name} at 127.0.0.1:{port}")
if down:
    bar = "!" * 78
    print(bar, "!! DISTRIBUTED MODE NOT TESTED: " + " and ".join(down) + " does not answer.",
          "!! The celery cases of tests/api/test_tasks.py will be SKIPPED.", bar, sep="\n")
endef
export SERVICES_CHECK

services-check: $(STAMP)
	@$(BIN)/python -c "$$SERVICES_CHECK"

pytest: models services-check
	@$(BIN)/python -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "ERROR: pytest collected no tests"; exit 1; fi; exit $$rc

test: lint types pytest

bench: models
	$(BIN)/python bench/detect.py
	$(BIN)/python bench/lfw.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
