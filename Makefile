# Gatehouse: `make run` starts a node on the embedded default (SQLite, bundled specs/);
# `make test` runs the whole test suite. Both install the one system package the build
# needs (cmake, for Pingora's zlib-ng) when it is missing.

CARGO ?= cargo
DATA_DIR ?= ./data

.PHONY: run test lint deps bench

deps:
	@command -v cmake >/dev/null 2>&1 || { \
	  echo "installing cmake (needed to build Pingora)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq cmake; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq cmake; fi; }

# Runs gateway (127.0.0.1:8080) and admin API (127.0.0.1:8081). Without
# GATEHOUSE_BOOTSTRAP_TOKEN set, a random one is generated once into $(DATA_DIR)/bootstrap-token.
run: deps
	@mkdir -p $(DATA_DIR)
	@if [ -z "$$GATEHOUSE_BOOTSTRAP_TOKEN" ] && [ ! -s $(DATA_DIR)/bootstrap-token ]; then \
	  head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > $(DATA_DIR)/bootstrap-token; \
	  chmod 600 $(DATA_DIR)/bootstrap-token; \
	  echo "admin token written to $(DATA_DIR)/bootstrap-token"; fi
	$(CARGO) build --release -p gatehouse-gateway --bin gatehouse
	GATEHOUSE_BOOTSTRAP_TOKEN="$${GATEHOUSE_BOOTSTRAP_TOKEN:-$$(cat $(DATA_DIR)/bootstrap-token)}" \
	  ./target/release/gatehouse serve --data-dir $(DATA_DIR)

# The end-to-end tests start the debug `gatehouse` binary, so it is built first.
test: deps
	$(CARGO) build -p gatehouse-gateway --bin gatehouse
	$(CARGO) test --workspace --no-fail-fast

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

bench: deps
	bash bench/run.sh
