# codelm: `make quickstart` runs the main job, `make test` runs the tests. Each sets up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  := torch==2.13.0
STAMP  := $(VENV)/.installed

# System packages later features need: compilers and runtimes for multi-language evaluation
# (HumanEval-X) and Chromium for the playground's browser test. Tests skip visibly without them.
# Node.js comes separately: a machine may already have a vendor build whose bundled npm
# conflicts with Debian's npm package.
# MultiPL-E and SAFIM toolchains, one line per language (Debian 12 versions). Julia and Swift have
# no Debian 12 package: their tasks are skipped. C++ (g++ 12), Java (OpenJDK 17), JavaScript (node
# 18), Go (1.19) and Rust (1.63) come from the SYSTEM_PACKAGES below.
MULTIPL_E_PACKAGES := mono-mcs mono-runtime libmono-system-numerics4.0-cil  # cs: Mono 6.8 (SAFIM C# too)
MULTIPL_E_PACKAGES += gdc  # d: GDC 12
MULTIPL_E_PACKAGES += libjavatuples-java  # java: javatuples 1.2
MULTIPL_E_PACKAGES += lua5.4 lua-unit  # lua: Lua 5.4.4, luaunit 3.4
MULTIPL_E_PACKAGES += php-cli  # php: PHP 8.2
MULTIPL_E_PACKAGES += perl libtest-deep-perl  # pl: Perl 5.36, Test::Deep
MULTIPL_E_PACKAGES += r-base-core  # r: R 4.2
MULTIPL_E_PACKAGES += ruby ruby-test-unit  # rb: Ruby 3.1, test-unit
MULTIPL_E_PACKAGES += racket  # rkt: Racket 8.7
MULTIPL_E_PACKAGES += scala  # scala: Scala 2.11.12
MULTIPL_E_PACKAGES += bash  # sh: Bash 5.2
MULTIPL_E_PACKAGES += node-typescript  # ts: TypeScript 4.8 (tsc)
SYSTEM_PACKAGES := g++ libboost-dev libssl-dev default-jdk-headless golang-go \
	golang-github-stretchr-testify-dev rustc cargo librust-rand-dev librust-regex-dev librust-md5-dev \
	chromium chromium-driver util-linux python3.11-doc $(MULTIPL_E_PACKAGES)

.PHONY: install test test-slow eval-prepare quickstart quickstart-isolated bench lint system-deps clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first and pinned: the CPU wheel is what we test on; unpinned pulls gigabytes of CUDA
	$(BIN)/pip install --quiet $(TORCH)
	# `all` includes llamacpp: llama-cpp-python compiles llama.cpp (minutes, once); its multimodal
	# tools are not needed, so they are not built
	CMAKE_ARGS="$${CMAKE_ARGS:--DLLAVA_BUILD=OFF}" $(BIN)/pip install --quiet -e ".[all,test]"
	touch $(STAMP)

install: $(STAMP)

# `make test`: the default tier (minutes); `make test-slow`: the heavy sweeps (canonical solutions of
# every benchmark and language, the tiny recipe end to end, multi-process training). CI runs both.
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: $(STAMP) eval-prepare
	$(BIN)/python -m pytest -q -m slow

# one-time preparation of the HumanEval-X toolchains (Rust crates, Go cache, js-md5 from npm)
eval-prepare: $(STAMP)
	$(BIN)/python -c "from codelm.eval.tasks import humaneval_x as hx; [print(l, *hx.toolchain_available(l)) for l in hx.LANGUAGES]"

# The main job: the tiny recipe, end to end (curate -> tokenizer -> pretrain with FIM -> SFT -> DPO ->
# evaluate before/after -> report), offline, on a laptop CPU. The benchmarks it needs ship with the
# package (src/codelm/eval/bundled); nothing outside this repository is read.
quickstart: $(STAMP)
	$(BIN)/codelm run --allow-code-execution --run-dir runs/tiny

# The cut-down main job from a fresh copy of the committed tree, with ../shared out of reach: proves
# that nothing a user runs needs files outside the clone (CI runs it).
quickstart-isolated: $(STAMP)
	bash .ci/quickstart-isolated

bench: $(STAMP)
	$(BIN)/pip install --quiet -e ".[bench]"
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples

system-deps:
	@if [ "$$(id -u)" != "0" ] || ! command -v apt-get >/dev/null; then \
		echo "system-deps: needs root and apt-get; skipping (tests needing these tools will skip)"; \
	else \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			$(SYSTEM_PACKAGES) >/dev/null \
		|| echo "system-deps: some packages failed to install; tests needing them will skip"; \
		command -v npm >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends nodejs npm >/dev/null \
		|| echo "system-deps: nodejs/npm failed to install; JavaScript evaluation will skip"; \
	fi

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
