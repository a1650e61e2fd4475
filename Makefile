# Everyday commands. `make run` and `make test` work on a fresh machine with Python 3.11 and pip.
.PHONY: setup run test lint typecheck check llm gate clean

setup:
	@scripts/setup.sh

run: setup
	.venv/bin/triage serve

test: setup
	.venv/bin/python -m pytest -q

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

typecheck: setup
	.venv/bin/mypy

check: lint typecheck test

llm: setup
	scripts/local_llm.sh install
	scripts/local_llm.sh start

# The regression gate on the demo set, once per vector space with a baseline of its own: the default embedder
# (minilm-int8) and minilm-onnx, whose vectors are torch's. Quality only; latency is reported, never gated.
# gate_for: $(1) the embedder, $(2) its baseline file in evals/baselines/
define gate_for
	.venv/bin/triage eval run evals/datasets/demo_tickets.v1.yaml --backends classical,service --quiet \
		--out /tmp/gate-demo-$(1) --embedder $(1)
	.venv/bin/triage eval gate --baseline evals/baselines/$(2) --current /tmp/gate-demo-$(1)/summary.json --tolerance 0.02
endef

gate: setup
	$(call gate_for,minilm-int8,demo.v1.minilm-int8.json)
	$(call gate_for,minilm-onnx,demo.v1.json)

clean:
	rm -rf data .pytest_cache .mypy_cache .ruff_cache
