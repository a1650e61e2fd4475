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
gate: setup
	.venv/bin/triage eval run evals/datasets/demo_tickets.v1.yaml --backends classical,service --quiet \
		--out /tmp/gate-demo-int8 --embedder minilm-int8
	.venv/bin/triage eval gate --baseline evals/baselines/demo.v1.minilm-int8.json \
		--current /tmp/gate-demo-int8/summary.json --tolerance 0.02
	.venv/bin/triage eval run evals/datasets/demo_tickets.v1.yaml --backends classical,service --quiet \
		--out /tmp/gate-demo-onnx --embedder minilm-onnx
	.venv/bin/triage eval gate --baseline evals/baselines/demo.v1.json \
		--current /tmp/gate-demo-onnx/summary.json --tolerance 0.02

clean:
	rm -rf data .pytest_cache .mypy_cache .ruff_cache
