# Everything runs through scripts/: they install what they need (Docker engine,
# base image, venv, wheelhouse) and are safe to repeat.
.PHONY: help setup demo demo-down test lint sanity unit integration molecule collection clean bench

help:
	@echo "make demo       deploy 1 scheduler + 2 workers in containers and run a computation"
	@echo "make demo-down  remove the demo cluster"
	@echo "make test       the whole suite: lint, sanity, unit, molecule, installed collection"
	@echo "make setup      only prepare this machine (engine, image, venv, wheelhouse)"
	@echo "make bench      time deploy, re-run, --check, scale-out, rolling upgrade against the floors (BENCH_WORKERS=2,4,8 BENCH_REPEAT=3 BENCH_ARGS=)"

setup:
	scripts/harness.sh all

demo:
	scripts/demo.sh up

demo-down:
	scripts/demo.sh down

test:
	scripts/test.sh

# Figures and logs go to .cache/bench/ (see the docstring of scripts/bench.py).
BENCH_WORKERS ?= 2,4,8
BENCH_REPEAT ?= 3
bench:
	scripts/harness.sh engine image venv wheelhouse
	.venv/bin/python scripts/bench.py --workers $(BENCH_WORKERS) --repeat $(BENCH_REPEAT) $(BENCH_ARGS)

lint sanity unit integration collection:
	scripts/test.sh $@

molecule:
	scripts/test.sh molecule

clean: demo-down
	rm -rf .cache .venv
