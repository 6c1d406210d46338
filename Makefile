# stainless: `make demo` and `make test` work on a fresh clone with Python 3.11+ and the package index.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo sim-demo default-model style-demo results results-doc test test-slow lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall whenever pyproject.toml changes (the stamp carries its checksum).
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[train,dev,openvino,metrics]'
	rm -f $(VENV)/.installed-* && touch $@

# The daemon on the virtual bench with the default model, `stainless-edge watch` beside it:
# scans 8 simulated fields, writes out/demo/gallery.png and prints a summary (edge/bench/demo.py).
demo: $(STAMP)
	$(BIN)/python -m edge.bench.demo --out out/demo

# The simulator alone: two fields as a raw scan (stack, stained re-scan, 100x), the first one drawn.
sim-demo: $(STAMP)
	$(BIN)/stainless-sim scan --fields 2 --seed 1 --out out/sim-demo/scan --stained --hr --wbc-density 150
	$(BIN)/stainless-sim show out/sim-demo/scan/fields/field_0000 --out out/sim-demo/field_0000.png

# Regenerate the shipped models from scratch: render the synthetic dataset, train the default
# (deploy/default-model/train.toml: the seed's generator size, ~4.5 h of one core in bf16) and its distilled
# student `fast` (fast.toml, ~2 h, then a second cycle from its best, fast-long.toml, ~1.5 h), export both and sign
# them with the DEMO key (models/demo-key). A training stopped midway continues from its last checkpoint (`.done`
# marks a finished one).
TRAIN := $(BIN)/stainless-train
DM := out/default-model
$(DM)/data.zarr/zarr.json: | $(STAMP)
	$(TRAIN) build-synthetic --out $(DM)/data.zarr --windows 1200 --window-px 192 --recipe full-nohe --seed 8
$(DM)/%/.done: $(DM)/data.zarr/zarr.json deploy/default-model/%.toml
	$(TRAIN) fit deploy/default-model/$*.toml --threads 1 $(if $(wildcard $(DM)/$*/last.pt),--resume,) && touch $@
$(DM)/fast/.done: $(DM)/train/.done
$(DM)/fast-long/.done: $(DM)/fast/.done
ship = $(BIN)/stainless-export bundle $(DM)/$(1)/best.pt --name $(2) --version $(3) \
		--key models/demo-key/stainless-signing.key --dataset $(DM)/data.zarr --int8 --openvino-int8 \
		--out models/$(2).stainless \
		--json > models/$(2).bundle.json \
	&& $(TRAIN) evaluate $(DM)/$(1)/best.pt $(DM)/data.zarr --split test --report $(DM)/$(1)/report --json \
		> models/$(2).metrics.json \
	&& cp $(DM)/$(1)/config.toml models/$(2).train.toml

default-model: $(DM)/train/.done $(DM)/fast-long/.done
	$(call ship,train,default,0.3.1)
	$(call ship,fast-long,fast,0.2.0)

# docs/results.md: the seed's PLS ablation, loss variants, speed and distillation of the small reference
# model's checkpoint into students at <= 1/4 of its FLOPs, on simulated data (~9 h of CPU). Every
# piece is a file target on one thread: `make -j2 results` runs two at a time on two cores.
R := out/results
ABLATION := $(TRAIN) ablation --threads 1 --recipes full-nohe,le36-nohe,le18,le8,brightfield --seeds 0,1
PAIR := $(TRAIN) ablation --threads 1 --recipes le8,brightfield --seeds 0,1 --generators rrdb
STUDENTS := n_blocks=0,recipe=le18;features=8,growth=4,recipe=le18;n_blocks=0,features=12
DATA := $(DM)/data.zarr/zarr.json

$(R)/ablation-%/ablation.json: $(DATA)
	rm -rf $(R)/ablation-$* && $(ABLATION) --config docs/results/ablation.toml --generators $* \
		--out $(R)/ablation-$* > /dev/null
$(R)/data-hr.zarr/zarr.json: | $(STAMP)
	$(TRAIN) build-synthetic --out $(R)/data-hr.zarr --windows 1200 --window-px 192 --recipe full-nohe --seed 8 --hr
$(R)/ablation-hr/ablation.json: $(R)/data-hr.zarr/zarr.json
	rm -rf $(R)/ablation-hr && $(ABLATION) --config docs/results/ablation-hr.toml --generators rrdb \
		--out $(R)/ablation-hr > /dev/null
$(R)/ablation-hr-long/ablation.json: $(R)/data-hr.zarr/zarr.json
	rm -rf $(R)/ablation-hr-long && $(PAIR) --config docs/results/ablation-hr.toml --epochs 20 \
		--out $(R)/ablation-hr-long > /dev/null
# The same cells scanned with focus error (σ = 1 µm per window; the stained targets stay in focus).
FOCUS_DATA := $(TRAIN) build-synthetic --windows 1200 --window-px 192 --recipe full-nohe --seed 8 --focus-sd-um 1.0
$(R)/data-focus.zarr/zarr.json: | $(STAMP)
	$(FOCUS_DATA) --out $(R)/data-focus.zarr
$(R)/data-focus-hr.zarr/zarr.json: | $(STAMP)
	$(FOCUS_DATA) --hr --out $(R)/data-focus-hr.zarr
$(R)/ablation-focus/ablation.json: $(R)/data-focus.zarr/zarr.json
	rm -rf $(R)/ablation-focus && $(ABLATION) --config docs/results/ablation.toml --dataset $(R)/data-focus.zarr \
		--generators rrdb --out $(R)/ablation-focus > /dev/null
$(R)/ablation-focus-long/ablation.json: $(R)/data-focus.zarr/zarr.json
	rm -rf $(R)/ablation-focus-long && $(ABLATION) --config docs/results/ablation.toml --generators rrdb \
		--dataset $(R)/data-focus.zarr --epochs 12 --out $(R)/ablation-focus-long > /dev/null
$(R)/ablation-focus-hr/ablation.json: $(R)/data-focus-hr.zarr/zarr.json
	rm -rf $(R)/ablation-focus-hr && $(ABLATION) --config docs/results/ablation-hr.toml \
		--dataset $(R)/data-focus-hr.zarr --generators rrdb --out $(R)/ablation-focus-hr > /dev/null
PROBE := $(BIN)/python docs/results/linear_probe.py --recipes brightfield,le8,le18,full-nohe --neighbourhood 3 --json
$(R)/probe-%.json: $(R)/data-hr.zarr/zarr.json
	$(PROBE) --dataset $(R)/data-hr.zarr --target $* > $@
$(R)/probe-focus.json: $(R)/data-focus.zarr/zarr.json
	$(PROBE) --dataset $(R)/data-focus.zarr --target 20x > $@
$(R)/ablation-long/ablation.json: $(DATA)
	rm -rf $(R)/ablation-long && $(PAIR) --config docs/results/ablation.toml --epochs 12 \
		--out $(R)/ablation-long > /dev/null
$(R)/losses/%/best.pt: $(DATA)
	rm -rf $(R)/losses/$* && $(TRAIN) fit docs/results/loss-$*.toml --threads 1 > /dev/null
# maePFNET is the ablation's full-nohe seed-0 run (the same config): evaluated, not trained again.
$(R)/loss-maePFNET.json: $(R)/ablation-rrdb/ablation.json
	$(TRAIN) evaluate $(R)/ablation-rrdb/rrdb-full-nohe-s0/best.pt $(DM)/data.zarr --split test --json > $@
$(R)/losses/maePF-RpGAN-SN/best.pt: $(R)/ablation-rrdb/ablation.json
$(R)/losses-hr/%/best.pt: $(R)/data-hr.zarr/zarr.json
	rm -rf $(R)/losses-hr/$* && $(TRAIN) fit docs/results/loss-$*-hr.toml --threads 1 > /dev/null
$(R)/loss-maePFNET-hr.json: $(R)/ablation-hr/ablation.json
	$(TRAIN) evaluate $(R)/ablation-hr/rrdb-full-nohe-s0/best.pt $(R)/data-hr.zarr --split test --json > $@
$(R)/losses-hr/maePF-RpGAN-SN/best.pt: $(R)/ablation-hr/ablation.json
$(R)/loss-%-hr.json: $(R)/losses-hr/%/best.pt
	$(TRAIN) evaluate $< $(R)/data-hr.zarr --split test --json > $@
$(R)/loss-%.json: $(R)/losses/%/best.pt
	$(TRAIN) evaluate $< $(DM)/data.zarr --split test --json > $@
# The distillations' teacher: the small generator shipped as the default up to 0.2.0 (docs/results/small.toml).
$(R)/small/best.pt: $(DATA) docs/results/small.toml
	$(TRAIN) fit docs/results/small.toml
$(R)/distill.json: $(R)/small/best.pt
	rm -rf $(R)/distill && $(TRAIN) distill --config docs/results/distill.toml --students "$(STUDENTS)" \
		--threads 1 --out $(R)/distill --json > $@
$(R)/distill-long.json: $(R)/small/best.pt
	rm -rf $(R)/distill-long && $(TRAIN) distill --config docs/results/distill-long.toml \
		--students "n_blocks=0,features=12" --threads 1 --out $(R)/distill-long --json > $@
$(R)/led-extent.json: | $(STAMP)
	mkdir -p $(R) && $(BIN)/python docs/results/led_extent.py --json > $@
$(R)/backends.json: | $(STAMP)
	mkdir -p $(R) && $(BIN)/python bench/backends.py --json > $@

.PRECIOUS: $(R)/losses/%/best.pt $(R)/losses-hr/%/best.pt
LOSSES := $(R)/loss-maeNET.json $(R)/loss-maePFNET.json $(R)/loss-maePF-RpGAN-SN.json
LOSSES_HR := $(LOSSES:.json=-hr.json)
PROBES := $(R)/probe-20x.json $(R)/probe-hr.json $(R)/probe-focus.json
results: $(R)/ablation-rrdb/ablation.json $(R)/ablation-affine/ablation.json $(R)/ablation-long/ablation.json \
		$(R)/ablation-hr/ablation.json $(R)/ablation-hr-long/ablation.json $(R)/ablation-focus/ablation.json \
		$(R)/ablation-focus-long/ablation.json $(R)/ablation-focus-hr/ablation.json $(PROBES) $(LOSSES) \
		$(LOSSES_HR) $(R)/distill.json $(R)/distill-long.json $(R)/backends.json $(R)/led-extent.json
	$(BIN)/python docs/results/render.py --ablation $(R)/ablation-rrdb/ablation.json \
		$(R)/ablation-affine/ablation.json --ablation-long $(R)/ablation-long/ablation.json \
		--ablation-hr $(R)/ablation-hr/ablation.json --ablation-hr-long $(R)/ablation-hr-long/ablation.json \
		--ablation-focus $(R)/ablation-focus/ablation.json \
		--ablation-focus-long $(R)/ablation-focus-long/ablation.json \
		--ablation-focus-hr $(R)/ablation-focus-hr/ablation.json --probe $(PROBES) \
		--backends $(R)/backends.json --led-extent $(R)/led-extent.json --losses $(LOSSES) \
		--losses-hr $(LOSSES_HR) --distill $(R)/distill.json --distill-long $(R)/distill-long.json \
		--out docs/results.md

# docs/results.md from the committed inputs (docs/results/data/: the runs above, copied there once done;
# recalibrated/: the ablations re-run on the simulator calibrated against the real UConn stacks).
RD := docs/results/data
results-doc: $(STAMP)
	$(BIN)/python docs/results/render.py --ablation $(RD)/ablation.json --ablation-long $(RD)/ablation-long.json \
		--ablation-hr $(RD)/ablation-hr.json --ablation-hr-long $(RD)/ablation-hr-long.json \
		--ablation-focus $(RD)/ablation-focus.json --ablation-focus-long $(RD)/ablation-focus-long.json \
		--ablation-focus-hr $(RD)/ablation-focus-hr.json \
		--probe $(RD)/probe-20x.json $(RD)/probe-hr.json $(RD)/probe-focus.json \
		--backends $(RD)/backends.json --led-extent $(RD)/led-extent.json \
		--losses $(RD)/loss-maeNET.json $(RD)/loss-maePFNET.json $(RD)/loss-maePF-RpGAN-SN.json \
		--losses-hr $(RD)/loss-maeNET-hr.json $(RD)/loss-maePFNET-hr.json $(RD)/loss-maePF-RpGAN-SN-hr.json \
		--distill $(RD)/distill.json --distill-long $(RD)/distill-long.json \
		--recalibrated-ablation $(wildcard $(RD)/recalibrated/ablation.json $(RD)/recalibrated/ablation-affine.json) \
		--recalibrated-focus $(wildcard $(RD)/recalibrated/ablation-focus.json) \
		--recalibrated-losses $(wildcard $(RD)/recalibrated/loss-*.json) \
		--recalibrated-probe $(wildcard $(RD)/recalibrated/probe-*.json) \
		--shipped "seed size (models/default.stainless)=models/default.metrics.json" \
			"its student (models/fast.stainless 0.2.0, 12 + 16 epochs)=models/fast.metrics.json" \
			"its student after 12 epochs (fast 0.1.1)=$(RD)/fast-0.1.1.metrics.json" \
			"small (docs/results/small.toml, the default up to 0.2.0)=$(RD)/small.metrics.json" --out docs/results.md

# An unpaired stain style (~15 min on one core): synthetic MGG and Wright-Giemsa cells (different
# cells), a CycleGAN MGG → WG (deploy/style/mgg-to-wg.toml), scored on 48 cells rendered in both
# stains, added to the default model as the named stain `stained:wright-giemsa`, and the demo with it.
STY := out/style
$(STY)/mgg/.done: | $(STAMP)
	$(BIN)/stainless-train style-cells --style mgg --count 240 --seed 1 --out $(STY)/mgg && touch $@
$(STY)/wg/.done: | $(STAMP)
	$(BIN)/stainless-train style-cells --style wright-giemsa --count 240 --seed 2 --out $(STY)/wg && touch $@
$(STY)/pairs/.done: | $(STAMP)
	$(BIN)/stainless-train style-cells --style mgg --also wright-giemsa --count 48 --seed 9 --out $(STY)/pairs \
		&& touch $@
$(STY)/run-wg/style.pt: $(STY)/mgg/.done $(STY)/wg/.done deploy/style/mgg-to-wg.toml
	rm -rf $(STY)/run-wg && $(BIN)/stainless-train fit-style deploy/style/mgg-to-wg.toml --threads 1
style-demo: $(STY)/run-wg/style.pt $(STY)/pairs/.done
	$(BIN)/stainless-train eval-style $< --a $(STY)/pairs/mgg --b $(STY)/pairs/wright-giemsa --paired \
		--strip $(STY)/strip.png --threads 1 --json > $(STY)/eval.json
	$(BIN)/stainless-export add-style models/default.stainless --style wright-giemsa=$< --version 0.3.2 \
		--pubkey models/demo-key/stainless-signing.pub --key models/demo-key/stainless-signing.key \
		--out $(STY)/default-0.3.2.stainless
	$(BIN)/python -m edge.bench.demo --out $(STY)/demo --model $(STY)/default-0.3.2.stainless

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

test: lint
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python bench/sim_stack.py
	$(BIN)/python bench/led_latency.py

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
