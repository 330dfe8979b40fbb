# Two entry points for a fresh machine (see README):
#   make demo   set up .venv, start the service with the bundled judge, score the example pairs
#   make test   set up .venv, run the test suite
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test setup bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH"; exit 1; }
	@# espeak-ng (Debian) renders part of the PolyTone training voices; the service does not need it.
	@command -v espeak-ng >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get install -y -qq espeak-ng >/dev/null || (apt-get update -qq && apt-get install -y -qq espeak-ng >/dev/null)); } || \
	  echo "note: espeak-ng is not installed; only 'paras2s-judge train' needs it (apt-get install espeak-ng)"
	@# chromium (Debian) renders the benchmark's HTML report in one test; that test skips without it.
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get install -y -qq chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)); } || \
	  echo "note: chromium is not installed; the HTML report test will be skipped (apt-get install chromium)"
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip "setuptools<81" wheel
	$(PY) -m pip install --quiet -e ".[test,tts,rl]"
	@touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/paras2s-judge demo

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/bench_service.py

clean:
	rm -rf $(VENV) build *.egg-info
