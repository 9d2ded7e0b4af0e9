# streamedge: the two commands a user needs are `make run` and `make test`.
# Everything else here is a step they depend on.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# Debian's nginx source tree (package nginx-dev), configured here with Debian's own flags so
# the module carries the same version and signature as /usr/sbin/nginx.
NGINX_SRC   ?= /usr/share/nginx/src
BUILD_DIR   := $(CURDIR)/.build
NGINX_TREE  := $(BUILD_DIR)/nginx
NGINX_STAMP := $(NGINX_TREE)/objs/ngx_auto_config.h
RUN_DIR     ?= $(CURDIR)/.run
# Two cores on the machines we build on: one job per core keeps memory and the shell responsive.
CARGO_JOBS  ?= $(shell nproc)
CARGO       ?= cargo
CARGO_ENV   := NGINX_SOURCE_DIR=$(NGINX_TREE) NGINX_BUILD_DIR=$(NGINX_TREE)/objs

MODULE      := target/release/libngx_http_streamedge_module.so
SIDECAR     := target/release/streamedge
# The web player as nginx serves it: our files and hls.js from npm (web/node_modules).
WEB_OUT     := target/release/web
WEB_FILES   := web/index.html web/app.js web/style.css

.PHONY: help deps deps-test deps-bench build web run test test-unit test-e2e lint fmt bench clean install uninstall

help:
	@echo "make run    install what is missing, build, start a server in .run/ and print how to publish"
	@echo "make test   install what is missing, build, run every test"
	@echo "make deps | deps-test | deps-bench | build | lint | bench | install | uninstall | clean"

# Installs only what is missing (a quick check when nothing is), so every target can call it:
# what running needs, then what the tests or the benchmarks add.
deps:
	@scripts/deps.sh run

deps-test:
	@scripts/deps.sh test

deps-bench:
	@scripts/deps.sh bench

$(NGINX_STAMP):
	rm -rf $(NGINX_TREE)
	mkdir -p $(BUILD_DIR)
	cp -a $(NGINX_SRC) $(NGINX_TREE)
	cd $(NGINX_TREE) && source ./conf_flags && ./configure "$${NGX_CONF_FLAGS[@]}" > configure.log 2>&1 \
		|| { tail -n 30 configure.log; echo "nginx configure failed: see $(NGINX_TREE)/configure.log"; exit 1; }

build: deps
	@$(MAKE) --no-print-directory $(NGINX_STAMP)
	$(CARGO_ENV) $(CARGO) build --release --workspace --jobs $(CARGO_JOBS)
	@$(MAKE) --no-print-directory web

web: $(WEB_FILES) web/node_modules/hls.js/dist/hls.min.js
	@mkdir -p $(WEB_OUT)
	@cp $(WEB_FILES) web/node_modules/hls.js/dist/hls.min.js $(WEB_OUT)/
	@chmod 644 $(WEB_OUT)/*

run: build
	@scripts/run.sh "$(RUN_DIR)"

test: deps-test build
	$(CARGO_ENV) $(CARGO) test --release --workspace --jobs $(CARGO_JOBS) -- --test-threads 2

lint: build
	$(CARGO) fmt --all -- --check
	$(CARGO_ENV) $(CARGO) clippy --release --workspace --all-targets --jobs $(CARGO_JOBS) -- -D warnings

fmt:
	$(CARGO) fmt --all

# A host installation (binaries, module, web player, yt-dlp venv, systemd unit, config in
# /etc/streamedge); `uninstall` reverses it and keeps configuration and data.
install: build
	@scripts/install.sh install

uninstall:
	@scripts/install.sh uninstall

bench: deps-bench build
	@for b in bench/*.sh; do echo "== $$b"; bash "$$b" || exit 1; done

clean:
	rm -rf $(BUILD_DIR) target
