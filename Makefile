# The two commands: `make quickstart` (main job on the embedded default) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: venv quickstart test bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -c constraints.txt torch==2.13.0
	$(PIP) install -c constraints.txt -e ".[tflite,adb,dev,farm]"
	touch $@

quickstart: venv
	$(VENV)/bin/hwlat quickstart --out out/quickstart

test: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q

bench: venv
	$(PY) benchmarks/measure_repeatability.py

clean:
	rm -rf $(VENV) out .pytest_cache
