# Conveniences; the scripts are the source of truth and need only bash and Go.
.PHONY: demo test brokers mutate matrix bench

demo:
	go run ./cmd/eventbus demo

test:
	./scripts/test.sh

brokers:
	./scripts/brokers.sh ensure

# Mutation testing of the pure-logic packages (outside CI: it takes minutes). GOFLAGS=-short
# skips the tests that need the shared brokers, so each mutant runs the unit tests only.
# MUTATIONS.md lists the breakages the broker-backed tests are known to catch.
GREMLINS := go run github.com/go-gremlins/gremlins/cmd/gremlins@v0.6.0 unleash --workers 1 --test-cpu 1
mutate:
	GOFLAGS=-short $(GREMLINS) ./config
	GOFLAGS=-short $(GREMLINS) ./bus/driver

# Rewrites README.md's capability matrix from a conformance run on every backend (needs the
# shared Redis and RabbitMQ: make brokers).
matrix:
	go test -count=1 ./tests -run '^TestConformance$$' -update-matrix

# Benchmarks against the raw clients (BENCHMARKS.md): eventbus bench on every backend, then the
# go test benchmarks. Needs the shared Redis and RabbitMQ (make brokers); Kafka is embedded.
bench:
	./scripts/bench.sh
