# sslcookbook: every target creates .venv on demand.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup run lab test unit notebooks lint book bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,book]' 2>&1 | grep -v "is ignored: it is neither" || true
	$(PY) -c "import sslcookbook, torch, torchvision, nbval"
	touch $(STAMP)

setup: $(STAMP)

# The quickstart: SimCLR on the bundled digits, cpu profile (about a minute and a half on 2 cores).
run: setup
	$(BIN)/sslcookbook run simclr --data digits --profile cpu --out runs/quickstart

lab: setup
	$(BIN)/jupyter lab notebooks/

lint: setup
	$(BIN)/ruff check .

# Tests run on every CPU this process may use, up to 8 (pytest-xdist; TEST_WORKERS=0 runs them in this
# process), one OpenMP thread each: the tests and notebooks train tiny models, where a second thread mostly
# waits on the first, so two workers on a 2-core machine take about 0.6× the time of one (measured
# 2026-12-04: unit 229 → 149 s, notebooks 229 → 123 s on a 2-core Xeon). The count is the CPUs in this
# process's affinity mask, not xdist's "auto" (physical cores: 1 on a VM whose 2 vCPUs are one core's threads).
TEST_WORKERS ?= $(shell python3 -c 'import os; n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(); print(min(8, n or 1))')

unit: setup
	OMP_NUM_THREADS=1 TRITON_INTERPRET=1 SSLCOOKBOOK_PROFILE=smoke MPLBACKEND=Agg $(PY) -m pytest tests -q \
		-n $(TEST_WORKERS) --dist worksteal

# --dist loadfile: a notebook's cells run in order on one worker, in one kernel.
notebooks: setup
	OMP_NUM_THREADS=1 TRITON_INTERPRET=1 SSLCOOKBOOK_PROFILE=smoke $(PY) -m pytest --nbval-lax notebooks -q \
		-p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile

test: lint unit notebooks

# The book shows the notebooks executed: in the cpu profile by default (SSLCOOKBOOK_PROFILE to change).
book: setup
	mkdir -p build/notebooks
	SSLCOOKBOOK_PROFILE=$${SSLCOOKBOOK_PROFILE:-cpu} $(BIN)/jupyter nbconvert --to notebook --execute \
		--ExecutePreprocessor.timeout=1800 --output-dir build/notebooks notebooks/*.ipynb
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/mdbook build

bench: setup
	$(PY) benchmarks/bench_views.py

clean:
	rm -rf build book runs .pytest_cache
