# Two commands do everything on a fresh machine; each sets itself up.
#   make book   build the website into _build/html (every chapter executed, strict)
#   make test   unit + integration tests and every notebook (smoke profile), then every notebook
#               again in the rehearsal profile (the hub profiles' code paths, offline, on the CPU)
VENV    ?= .venv
PY      := $(VENV)/bin/python
TORCH   ?= torch==2.13.0
PROFILE ?= cpu
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
REHEARSAL_HUB := _build/rehearsal-hub

.PHONY: book test setup clean browser

setup: $(VENV)/.ready

# torch first, from the CPU index's wheel pinned by TORCH: a plain `torch` requirement would pull
# a multi-gigabyte CUDA build.
$(VENV)/.ready: requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -r requirements.txt
	touch $@

# MathJax and the widget manager are served from the site itself (see book/fetch_assets.py).
ASSETS := book/_static/mathjax/tex-chtml.js book/_static/widgets/embed-amd.js

$(ASSETS) &: book/fetch_assets.py | setup
	$(PY) book/fetch_assets.py

# After the build, each chapter's execution time from the execution cache (book/build_times.py);
# the cpu profile's against the book's budget of 30 minutes.
BUILD_DIR := _build$(if $(filter-out cpu,$(PROFILE)),/$(PROFILE)/_build)
book: setup $(ASSETS)
	rm -rf _build/html _build/.doctrees
	start=$$(date +%s); \
	PROMPT_LEARNING_PROFILE=$(PROFILE) $(VENV)/bin/jupyter-book build . -n -W --keep-going \
	  $(if $(filter-out cpu,$(PROFILE)),--path-output _build/$(PROFILE)); status=$$?; \
	$(PY) book/build_times.py $(BUILD_DIR)/.jupyter_cache --since $$start \
	  $(if $(filter cpu,$(PROFILE)),--budget 1800); exit $$status

# The website test drives Debian's chromium; as root it is installed here, otherwise the test
# says how to install it and is skipped.
browser:
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get install -y -q chromium >/dev/null || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)); } || true

test: setup $(ASSETS) browser $(REHEARSAL_HUB)
	$(OFFLINE) PROMPT_LEARNING_PROFILE=smoke $(VENV)/bin/pytest tests --nbmake chapters
	$(MAKE) rehearse

clean:
	rm -rf _build

# On a CUDA machine, in an environment with a CUDA build of torch: the GPU tests, then chapters 2
# and 8 in the gpu profile with the embedded backbones standing in for the hub ones, in under
# 8 minutes. Timings, test results and the device go to $(RESULTS). Without a GPU it stops at once.
RESULTS ?= benchmarks/results
.PHONY: gpu-check
gpu-check:
	@test -x $(PY) || { echo "gpu-check: no environment at $(VENV); create it with a CUDA build of torch first" >&2; exit 2; }
	$(PY) tests/gpu/run_check.py --results $(RESULTS)

# Rehearse the hub profiles with no hub: every chapter with the gpu profile's hub ids and branches, at
# smoke sizes, on the CPU, each hub id served by a tiny random stand-in from a local hub cache
# (prompt_learning.rehearsal). The numbers mean nothing; the hub-only code paths run.
$(REHEARSAL_HUB): | setup
	$(PY) -m prompt_learning.rehearsal build $@

.PHONY: rehearse
rehearse: setup $(REHEARSAL_HUB)
	$(OFFLINE) HF_HOME=$(abspath $(REHEARSAL_HUB)) PROMPT_LEARNING_PROFILE=rehearsal \
	  $(VENV)/bin/pytest --nbmake chapters
