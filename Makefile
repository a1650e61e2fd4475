# Everyday commands. `make run` and `make test` work on a fresh machine with Python 3.11 and pip.
.PHONY: setup run test lint typecheck check llm eval-demo gate bench clean

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

clean:
	rm -rf data .pytest_cache .mypy_cache .ruff_cache
