# The two commands: `make up` (the whole system, real components) and `make test` (the whole
# test suite, on its own fresh stack). See README.md and docs/operations.md.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/commerce-target

.PHONY: up down status test bench screenshots fmt lint

up:
	scripts/stack.sh up

down:
	scripts/stack.sh down

status:
	scripts/stack.sh status

test:
	scripts/test.sh

bench:
	scripts/bench.sh

# docs/screenshots/*.png: the storefront and back office in a real browser (see README.md).
screenshots:
	scripts/screenshots.sh

fmt:
	cargo fmt --all

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
