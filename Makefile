# vae-lab: `make train` trains the default VAE, `make test` runs the test suite.
# Both create .venv and install what they need on first use; later calls skip the install.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=
# pytest workers; torch uses one thread per worker (tests/conftest.py)
TEST_WORKERS ?= 2

.PHONY: install dev train test bench tensorboard lint clean reproduce-vae-mnist reproduce-lda reproduce-toy-variance

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# torch is pinned first: the local CPU build. An unpinned torch would pull GBs of CUDA packages.
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.installed-dev

train: install
	$(VENV)/bin/vae-lab train $(ARGS)

test: dev
	$(PY) -m pytest -q -n $(TEST_WORKERS) --durations=15 $(ARGS)

# Every speed benchmark, quietly, each figure against its goal (issue 12); DEVICE=cuda where a GPU exists
# (the CPU-only ones run as they are). 4 to 15 minutes on 2 quiet cores, depending on the machine.
DEVICE ?= cpu
bench: dev
	@$(PY) benchmarks/bench_train.py --device $(DEVICE)
	@$(PY) benchmarks/bench_train.py --device $(DEVICE) --blocks 20
	@$(PY) benchmarks/bench_lda.py --device $(DEVICE)
	@$(PY) benchmarks/bench_von_mises.py --device $(DEVICE)
	@$(PY) benchmarks/bench_iw_nll.py --images 100 --repeats 1
	@$(PY) benchmarks/bench_startup.py
	@$(PY) benchmarks/bench_compile.py --device $(DEVICE)

tensorboard: install
	$(VENV)/bin/tensorboard --logdir outputs

lint: dev
	$(VENV)/bin/ruff check vae_lab tests benchmarks

# Reproductions of Figurnov, Mohamed & Mnih (2018), "Implicit Reparameterization Gradients" (README:
# "Reproducing Figurnov et al. 2018"). Long: hours to days on CPU. ARGS adds overrides to every job
# (ARGS="trainer.max_epochs=2" for a short budget, ARGS="trainer=gpu"), SEEDS sets the seeds and
# REPRO_DIR where the sweeps go. Each target runs all its sweeps, then `vae-lab report`, and fails at the
# end if any job failed (the report lists them).
SEEDS ?= 0,1,2
# After each sweep: a failed one marks the target failed and the next sweep runs; one stopped by a signal
# (exit status 130 after Ctrl-C, 143 after SIGTERM) stops the target there, so nothing new starts.
NEXT = || { code=$$?; [ $$code -lt 128 ] || exit $$code; status=1; }
REPRO_DIR ?= outputs/reproduce/$(shell date +%Y-%m-%d/%H-%M-%S)
REPRO_DIR := $(REPRO_DIR)
VAE_LAB := $(VENV)/bin/vae-lab
SWEEP := $(VAE_LAB) train -m hydra/launcher=joblib

# The MNIST table: 5 families (the paper's 4 and power_spherical) x D = 2, 3, 5, 10 at seed SEED1, and
# further seeds (EXTRA_SEEDS) for the Normal and von Mises VAEs at D = 2 and 10; then, with the concentration
# clip at 1e5 (WIDE_CLIP), the power spherical VAE at every D and the von Mises at D = 2 and 3: where the
# default 1e3 binds. 25-85 minutes a job with two at a time on 2 cores (120-410 epochs to early stopping,
# then 5-9 minutes of test NLL): about 12 hours in all.
# Ctrl-C stops it with checkpoints; the same command with ARGS=resume=true continues it.
EXTRA_SEEDS ?= 1,2
WIDE_CLIP := model.posterior.max_concentration=1e5
MNIST := experiment=figurnov2018/vae_mnist
MNIST_DIR = $(REPRO_DIR)/vae_mnist
reproduce-vae-mnist: install
	@status=0; \
	$(SWEEP) hydra.sweep.dir=$(MNIST_DIR)/grid $(MNIST) posterior=gaussian,gamma,beta,vonmises,power_spherical model.latent_dim=2,3,5,10 seed=$(SEED1) $(ARGS) $(NEXT); \
	$(SWEEP) hydra.sweep.dir=$(MNIST_DIR)/seeds $(MNIST) posterior=gaussian,vonmises model.latent_dim=2,10 seed=$(EXTRA_SEEDS) $(ARGS) $(NEXT); \
	$(SWEEP) hydra.sweep.dir=$(MNIST_DIR)/wide_clip/power_spherical $(MNIST) $(WIDE_CLIP) posterior=power_spherical model.latent_dim=2,3,5,10 seed=$(SEED1) $(ARGS) $(NEXT); \
	$(SWEEP) hydra.sweep.dir=$(MNIST_DIR)/wide_clip/vonmises $(MNIST) $(WIDE_CLIP) posterior=vonmises model.latent_dim=2,3 seed=$(SEED1) $(ARGS) $(NEXT); \
	$(VAE_LAB) report $(MNIST_DIR)/grid $(MNIST_DIR)/seeds $(MNIST_DIR)/wide_clip/power_spherical $(MNIST_DIR)/wide_clip/vonmises --columns model.latent_dim --out $(MNIST_DIR) $(NEXT); \
	exit $$status

# The paper's table at full budget (180k steps): 3 seeds (SEEDS) for implicit, RSVI B=1 and B=20; one
# seed (SEED1) for RSVI B=5, B=10 and the score function; and implicit and RSVI B=20 with the earlier
# preset's clip [0.1, 1e3] (OLD_CLIP). 31-36 minutes a run alone on 2 cores, 37-72 with two at a time (joblib).
SEED1 ?= 0
OLD_CLIP := model.posterior.min_concentration=0.1 model.prior.min_alpha=0.1
LDA := experiment=figurnov2018/lda_20news
LDA_DIR = $(REPRO_DIR)/lda_20news
reproduce-lda: install
	@status=0; \
	$(SWEEP) hydra.sweep.dir=$(LDA_DIR)/implicit $(LDA) estimator=implicit seed=$(SEEDS) $(ARGS) $(NEXT); \
	$(SWEEP) hydra.sweep.dir=$(LDA_DIR)/rsvi $(LDA) estimator=rsvi model.estimator.B=1,20 seed=$(SEEDS) $(ARGS) $(NEXT); \
	$(SWEEP) hydra.sweep.dir=$(LDA_DIR)/rsvi_one_seed $(LDA) estimator=rsvi model.estimator.B=5,10 seed=$(SEED1) $(ARGS) $(NEXT); \
	$(SWEEP) hydra.sweep.dir=$(LDA_DIR)/score $(LDA) estimator=score seed=$(SEED1) $(ARGS) $(NEXT); \
	$(SWEEP) hydra.sweep.dir=$(LDA_DIR)/old_clip_implicit $(LDA) $(OLD_CLIP) estimator=implicit seed=$(SEED1) $(ARGS) $(NEXT); \
	$(SWEEP) hydra.sweep.dir=$(LDA_DIR)/old_clip_rsvi $(LDA) $(OLD_CLIP) estimator=rsvi model.estimator.B=20 seed=$(SEED1) $(ARGS) $(NEXT); \
	$(VAE_LAB) report $(LDA_DIR)/implicit $(LDA_DIR)/rsvi $(LDA_DIR)/rsvi_one_seed $(LDA_DIR)/score $(LDA_DIR)/old_clip_implicit $(LDA_DIR)/old_clip_rsvi --out $(LDA_DIR) $(NEXT); \
	exit $$status

reproduce-toy-variance: install
	$(VAE_LAB) variance hydra.run.dir=$(REPRO_DIR)/toy_variance experiment=figurnov2018/toy_variance $(ARGS)

clean:
	rm -rf outputs multirun .pytest_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
