# Two commands for a fresh machine (Python 3.11 + pip, no GPU needed):
#   make demo    set up .venv and run the main job (XRAY_VAE_QUICK=1: about 5 minutes on 2 CPU cores)
#   make test    set up .venv and run the whole test suite (what CI runs through .ci/run)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test figures clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python -m vae_keras demo

test: install
	XRAY_VAE_QUICK=1 TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python -m pytest -n 2 --durations=25 tests notebooks --nbval --nbval-sanitize-with notebooks/nbval_sanitize.cfg

# The committed figures/ (README): train FIGURES_CONFIG on the phantom set for at most
# FIGURES_MINUTES, evaluate it, build figures/gallery/. ~25 min on 2 CPU cores (the default configuration); on a GPU try
#   make figures FIGURES_MINUTES=60 FIGURES_SIZE=224
FIGURES_CONFIG  ?= latent
FIGURES_MINUTES ?= 20
FIGURES_SIZE    ?= 64
FIGURES_OUT     ?= figures
FIGURES_ARGS    ?=

figures: install
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python scripts/make_figures.py --config $(FIGURES_CONFIG) \
		--minutes $(FIGURES_MINUTES) --image-size $(FIGURES_SIZE) --out $(FIGURES_OUT) $(FIGURES_ARGS)

clean:
	rm -rf demo_output .pytest_cache
