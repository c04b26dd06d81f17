# Conveniences; the scripts are the source of truth and need only bash and Go.
.PHONY: demo test brokers

demo:
	go run ./cmd/eventbus demo

test:
	./scripts/test.sh

brokers:
	./scripts/brokers.sh ensure
