# Two commands do everything on a fresh machine; each sets itself up.
#   make book   build the website into _build/html (every chapter executed, strict)
#   make test   unit + integration tests and every notebook (smoke profile)
VENV    ?= .venv
PY      := $(VENV)/bin/python
TORCH   ?= torch==2.13.0
PROFILE ?= cpu
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1

.PHONY: book test setup clean

setup: $(VENV)/.ready

$(VENV)/.ready: requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -r requirements.txt
	touch $@

# The execution cache (_build/.jupyter_cache) is kept per profile; the html is always rebuilt from
# scratch so a strict build never reports "no targets are out of date".
book: setup
	rm -rf _build/html _build/.doctrees
	PROMPT_LEARNING_PROFILE=$(PROFILE) $(VENV)/bin/jupyter-book build . -n -W --keep-going \
	  $(if $(filter-out cpu,$(PROFILE)),--path-output _build/$(PROFILE))

test: setup
	$(OFFLINE) PROMPT_LEARNING_PROFILE=smoke $(VENV)/bin/pytest tests --nbmake chapters

clean:
	rm -rf _build
