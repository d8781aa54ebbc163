# Two commands do everything on a fresh machine; each sets itself up.
#   make book   build the website into _build/html (every chapter executed, strict)
#   make test   lint, unit + integration + book + browser tests and every notebook (smoke profile),
#               then every notebook again in the rehearsal profile (the hub profiles' code paths,
#               offline, on the CPU)
# The fast loop: make lint (ruff), make unit (under 2 minutes: no test marked slow).
VENV    ?= .venv
PY      := $(VENV)/bin/python
TORCH   ?= torch==2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
PROFILE ?= cpu
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
REHEARSAL_HUB := _build/rehearsal-hub

.PHONY: book test setup clean browser lint unit doctest smoke

setup: $(VENV)/.ready

# torch first, the CPU build pinned by TORCH from PyTorch's CPU index (TORCH_INDEX; PyPI's own
# torch wheel is the multi-gigabyte CUDA build; a wheel already on disk in pip's find-links does
# too), alone; then its dependencies from PyPI. TORCH_INDEX= (empty) leaves the index out.
$(VENV)/.ready: requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-deps "$(TORCH)" $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -r requirements.txt
	touch $@

# MathJax and the widget manager are served from the site itself (see book/fetch_assets.py).
ASSETS := book/_static/mathjax/tex-chtml.js book/_static/widgets/embed-amd.js

$(ASSETS) &: book/fetch_assets.py | setup
	$(PY) book/fetch_assets.py

# The execution cache lives outside the clone, in a folder keyed on the chapters' code, the library's
# source, the computing packages' versions and the profile (book/build_cache.py), so a build never
# reuses outputs of other code. After the build, the CPU and each chapter's execution time
# (book/build_times.py); the cpu profile's total against the book's budget of 60 minutes.
BUILD_DIR := _build$(if $(filter-out cpu,$(PROFILE)),/$(PROFILE)/_build)
book: setup $(ASSETS)
	rm -rf $(BUILD_DIR)/html $(BUILD_DIR)/.doctrees
	start=$$(date +%s); \
	PROMPT_LEARNING_PROFILE=$(PROFILE) $(VENV)/bin/jupyter-book build . -n -W --keep-going \
	  $(if $(filter-out cpu,$(PROFILE)),--path-output _build/$(PROFILE)); status=$$?; \
	PROMPT_LEARNING_PROFILE=$(PROFILE) $(PY) book/build_times.py --since $$start \
	  $(if $(filter cpu,$(PROFILE)),--budget 3600); exit $$status

# Whether the book of this exact content is in the cache (exit 0) or would execute (exit 1).
.PHONY: book-cached
book-cached: setup
	@PROMPT_LEARNING_PROFILE=$(PROFILE) $(PY) book/build_cache.py check

# The website test drives Debian's chromium. As root it is installed here (a failed install stops
# make); otherwise make says how to install it, and the test is skipped.
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's chromium for the website test"; \
	  apt-get install -y -q chromium >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; \
	else echo "the website test needs Debian's chromium (apt-get install chromium); without it the test is skipped"; fi

LINTED := src tests book benchmarks
lint: setup
	$(VENV)/bin/ruff check $(LINTED) chapters
	$(VENV)/bin/ruff format --check $(LINTED)

# the library's >>> examples (src/conftest.py) apart: two conftest modules cannot share a run
DOCTEST := $(VENV)/bin/pytest --doctest-modules src -q
unit: setup
	$(OFFLINE) $(DOCTEST)
	$(OFFLINE) $(VENV)/bin/pytest tests/unit tests/book -m "not slow" -q

# make test = lint, the library's examples, the tests with every notebook in the smoke profile (the
# website test included), then every notebook in the rehearsal profile; CI times each part.
test: lint doctest smoke rehearse

doctest: setup
	$(OFFLINE) $(DOCTEST)

smoke: setup $(ASSETS) browser $(REHEARSAL_HUB)
	$(OFFLINE) PROMPT_LEARNING_PROFILE=smoke $(VENV)/bin/pytest tests --nbmake chapters

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
