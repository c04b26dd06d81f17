#!/usr/bin/env bash
# make bench: runs every workload of scripts/bench/ through eventbus and its raw clients
# (eventbus bench --raw), writing each report as JSON and as a table under bench-results/,
# then the go test benchmarks of each backend. Needs the local Redis and RabbitMQ
# (scripts/brokers.sh ensure); Kafka runs on the embedded broker. Takes about 5-8 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${BENCH_OUT:-bench-results}
mkdir -p "$out"
go build -o "$out/eventbus" ./cmd/eventbus
for w in kafka kafka-batch kafka-backlog redis redis-backlog rabbitmq rabbitmq-backlog; do
	echo "== $w"
	"$out/eventbus" bench --config "scripts/bench/$w.yaml" --raw --quiet --json >"$out/$w.json"
	if command -v jq >/dev/null; then
		jq -r '.results[] | "\(.client)\tpublish \(.publish_rate|floor)/s\tconsume \(.consume_rate|floor)/s\tp50 \(.latency_us.p50)µs\tp99 \(.latency_us.p99)µs"' "$out/$w.json"
		jq -r '.ratios[] | "eventbus/\(.raw): publish \(.publish*100|round/100)x consume \(.consume*100|round/100)x"' "$out/$w.json"
	else
		cat "$out/$w.json"
	fi
done
echo "== memory (1,000,000 events, eventbus only)"
"$out/eventbus" bench --config scripts/bench/memory.yaml --quiet --json >"$out/memory.json"
grep -E '"max_rss_bytes"' "$out/memory.json"
echo "== go test -bench"
go test -run '^$' -bench . -benchmem -benchtime 3x ./backends/kafka/ | tee "$out/go-bench-kafka.txt"
go test -run '^$' -bench 'Ratio' -benchmem -benchtime 3x ./backends/rabbitmq/ | tee "$out/go-bench-rabbitmq.txt"
go test -run '^$' -bench 'Subscribe/read_batch=(100|1000)$' -benchmem -benchtime 3x ./backends/redis/ | tee "$out/go-bench-redis.txt"
