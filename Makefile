# Convenience targets. Each runs the same command as README.md or .ci/run,
# so `make X` and CI cannot drift apart.

GO ?= go
# Flags for `stepwise bench`; override on the command line, e.g.
#   make bench BENCH_FLAGS='--duration 30s --concurrency 128'
BENCH_FLAGS ?= --duration 9s --rounds 3 --concurrency 32
BENCH_JSON ?= /tmp/stepwise-bench.json
# PostgreSQL for bench-postgres; the benchmark works in a fresh schema and
# drops it afterwards.
BENCH_PG ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable

.PHONY: test fuzz-smoke bench bench-postgres bench-smoke

# The README's test command.
test:
	$(GO) test -race -count=1 ./...

# Every fuzz target, briefly (as in .ci/run).
fuzz-smoke:
	bash .ci/fuzz-smoke 10s

# The load benchmark on a fresh temporary SQLite database (about 2 minutes).
bench:
	$(GO) run ./cmd/stepwise bench $(BENCH_FLAGS) --json $(BENCH_JSON)

bench-postgres:
	$(GO) run ./cmd/stepwise bench $(BENCH_FLAGS) --db '$(BENCH_PG)' --json /tmp/stepwise-bench-postgres.json

# About a second of every workload (some 10 seconds in all), for CI: it checks that the benchmark
# still runs, not how fast (shared CI machines are too noisy for that).
bench-smoke:
	$(GO) run ./cmd/stepwise bench --duration 1s --rounds 1 --warmup 100ms --concurrency 8 --json /tmp/stepwise-bench-smoke.json
