# Two commands do everything on a fresh machine; each sets itself up.
#   make book   build the website into _build/html (every chapter executed, strict)
#   make test   unit + integration tests and every notebook (smoke profile)
VENV    ?= .venv
PY      := $(VENV)/bin/python
TORCH   ?= torch==2.13.0
PROFILE ?= cpu
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1

.PHONY: book test setup clean

# MathJax 3 served from the site itself, so math renders for offline readers too (from npm,
# pinned by version and sha256; not committed).
MATHJAX     := book/_static/mathjax/tex-chtml.js
MATHJAX_SHA := 1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09

setup: $(VENV)/.ready

$(VENV)/.ready: requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -r requirements.txt
	touch $@

# The execution cache (_build/.jupyter_cache) is kept per profile; the html is always rebuilt from
# scratch so a strict build never reports "no targets are out of date".
$(MATHJAX):
	@tmp=$$(mktemp -d) && cd $$tmp && npm pack mathjax@3.2.2 --silent >/dev/null && \
	  echo "$(MATHJAX_SHA)  mathjax-3.2.2.tgz" | sha256sum -c --quiet && \
	  tar xzf mathjax-3.2.2.tgz package/es5/tex-chtml.js package/es5/output/chtml/fonts/woff-v2 && \
	  cd - >/dev/null && rm -rf book/_static/mathjax.tmp && mkdir -p book/_static/mathjax.tmp && \
	  cp -r $$tmp/package/es5/* book/_static/mathjax.tmp/ && rm -rf $$tmp && \
	  rm -rf book/_static/mathjax && mv book/_static/mathjax.tmp book/_static/mathjax

book: setup $(MATHJAX)
	rm -rf _build/html _build/.doctrees
	PROMPT_LEARNING_PROFILE=$(PROFILE) $(VENV)/bin/jupyter-book build . -n -W --keep-going \
	  $(if $(filter-out cpu,$(PROFILE)),--path-output _build/$(PROFILE))

test: setup $(MATHJAX)
	$(OFFLINE) PROMPT_LEARNING_PROFILE=smoke $(VENV)/bin/pytest tests --nbmake chapters

clean:
	rm -rf _build
