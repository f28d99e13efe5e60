# gcf_ros — the two commands:
#   make demo   set everything up, then run the demo
#   make test   set everything up, then run the test suite (what CI runs)
SHELL := /bin/bash
.DEFAULT_GOAL := help
ACTIVATE := source ./env.sh
PYTEST_ARGS ?=

.PHONY: help setup demo test mutation lint format clean distclean

help:
	@echo "make demo      set up (idempotent) and run the demo"
	@echo "make test      set up (idempotent) and run the test suite (ruff included)"
	@echo "make setup     only the set-up: apt packages, .venv, ROS 2 interfaces, gcf_ros"
	@echo "make mutation  sabotage the code, one break at a time: the tests must catch each (~20 min)"
	@echo "make lint      ruff check"
	@echo "make clean     remove build outputs (keeps .venv)"
	@echo "make distclean remove build outputs and .venv"

setup:
	@bash scripts/setup.sh

demo: setup
	@$(ACTIVATE) && bash scripts/demo.sh

test: setup
	@$(ACTIVATE) && python -m pytest $(PYTEST_ARGS)

mutation: setup
	@$(ACTIVATE) && python scripts/mutation_check.py $(MUTATION_ARGS)

lint: setup
	@$(ACTIVATE) && ruff check . && ruff format --check .

format: setup
	@$(ACTIVATE) && ruff format . && ruff check --fix .

clean:
	rm -rf build/ *.egg-info .pytest_cache .ruff_cache

distclean: clean
	rm -rf .venv
