SHELL := /bin/bash
PYTHON ?= python

# Hostile input for longer than CI: many unseeded cases per operation (EXAMPLES=200 by default).
fuzz:
	MYHIBACHI_FUZZ_EXAMPLES=$${EXAMPLES:-200} MYHIBACHI_FUZZ_RANDOM=1 $(PYTHON) -m pytest -q tests/reliability/test_fuzz.py

# Workers killed at other random points than CI's (SEED=<n> to repeat a run).
chaos:
	MYHIBACHI_CHAOS_SEED=$${SEED:-$$RANDOM} $(PYTHON) -m pytest -q tests/reliability/test_crash_safety.py

.PHONY: fuzz chaos
