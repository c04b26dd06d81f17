package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/eventbus-go/eventbus/config"
)

// benchSection is the config file's section holding the workload of `eventbus bench`.
const benchSection = "bench"

func init() { config.RegisterSection(benchSection) }

// workload is the bench: section, in the manner of the OpenMessaging Benchmark's workloads:
//
//	bench:
//	  payload_size: 1024   # bytes per event (at least 16: send time and sequence number)
//	  messages: 100000     # events per client and round (ignored when duration is set)
//	  duration: 0s         # publish for this long instead of a count
//	  rate: 0              # events/s over all producers; 0 publishes as fast as possible
//	  producers: 8         # goroutines publishing, sharing one client
//	  batch: 1             # events per Publish call
//	  consumers: 1         # consumers in the group, each a client of its own
//	  keys: 0              # distinct ordering keys, spread round-robin; 0 sends none
//	  topics: 1
//	  partitions: 1        # Kafka only: partitions of each topic
//	  backlog: false       # publish everything first, then consume it (a backlog's drain)
//	  rounds: 1            # alternations of eventbus and the raw clients
//	  timeout: 5m          # limit of one client's run
type workload struct {
	PayloadSize int           `yaml:"payload_size" json:"payload_size"`
	Messages    int           `yaml:"messages" json:"messages"`
	Duration    time.Duration `yaml:"duration" json:"duration"`
	Rate        int           `yaml:"rate" json:"rate"`
	Producers   int           `yaml:"producers" json:"producers"`
	Batch       int           `yaml:"batch" json:"batch"`
	Consumers   int           `yaml:"consumers" json:"consumers"`
	Keys        int           `yaml:"keys" json:"keys"`
	Topics      int           `yaml:"topics" json:"topics"`
	Partitions  int32         `yaml:"partitions" json:"partitions"`
	Backlog     bool          `yaml:"backlog" json:"backlog"`
	Rounds      int           `yaml:"rounds" json:"rounds"`
	Timeout     time.Duration `yaml:"timeout" json:"timeout"`
}

func defaultWorkload() workload {
	return workload{PayloadSize: 1024, Messages: 100000, Producers: 8, Batch: 1, Consumers: 1,
		Topics: 1, Partitions: 1, Rounds: 1, Timeout: 5 * time.Minute}
}

// Validate checks the workload; the loader locates each problem in the file.
func (w *workload) Validate() error {
	var errs []error
	positive := func(path string, v int) {
		if v < 1 {
			errs = append(errs, config.Invalid(path, "must be at least 1, got %d", v))
		}
	}
	if w.PayloadSize < payloadHeader {
		errs = append(errs, config.Invalid("payload_size", "must be at least %d bytes (send time and sequence number), got %d", payloadHeader, w.PayloadSize))
	}
	if w.Duration <= 0 {
		positive("messages", w.Messages)
	}
	positive("producers", w.Producers)
	positive("batch", w.Batch)
	positive("consumers", w.Consumers)
	positive("topics", w.Topics)
	positive("partitions", int(w.Partitions))
	positive("rounds", w.Rounds)
	if w.Rate < 0 {
		errs = append(errs, config.Invalid("rate", "must be 0 (as fast as possible) or positive, got %d", w.Rate))
	}
	if w.Keys < 0 {
		errs = append(errs, config.Invalid("keys", "must be 0 (no key) or positive, got %d", w.Keys))
	}
	if w.Timeout <= 0 {
		errs = append(errs, config.Invalid("timeout", "must be positive, got %s", w.Timeout))
	}
	if w.Backlog && w.Duration > 0 {
		errs = append(errs, config.Invalid("backlog", "needs messages, not duration: a backlog is a known count"))
	}
	return errors.Join(errs...)
}

// payloadHeader is what every payload starts with: the send time in Unix nanoseconds and the
// event's sequence number in its run, both big-endian.
const payloadHeader = 16

func newBenchCmd(g *globals) *cobra.Command {
	var (
		asJSON, raw, quiet bool
		prefix             string
		messages           int
		rate               int
		rounds             int
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure publish and consume rates and end-to-end latency, beside the raw clients",
		Long: `bench runs the workload of the config file's bench: section against the configured backend:
producers publish events of payload_size bytes (count or duration, at a target rate or as fast as
possible) while consumers in one consumer group take them; it reports the publish and consume
rates and the end-to-end latency (publish call to handler) from an HDR histogram.

With --raw the same workload also runs through the backend's client directly, alternating
with eventbus round by round (Kafka: Sarama's async producer and consumer group, and franz-go
as the ceiling; Redis: go-redis pipelined XADD and XREADGROUP COUNT 1000 with batched XACK;
RabbitMQ: amqp091-go with async confirms, prefetch 100 and manual acks), and prints
eventbus/raw ratios. The durability settings in force are printed with the results.

It works in topics of its own (--topic-prefix, by default "eventbus-bench-<run>-") and removes
them, and their groups' queues, afterwards.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig(cmd)
			if err != nil {
				return err
			}
			w := defaultWorkload()
			if err := cfg.Section(benchSection).Decode(&w); err != nil {
				return err
			}
			if cmd.Flags().Changed("messages") {
				w.Messages, w.Duration = messages, 0
			}
			if cmd.Flags().Changed("rate") {
				w.Rate = rate
			}
			if cmd.Flags().Changed("rounds") {
				w.Rounds = rounds
			}
			if err := w.Validate(); err != nil {
				return fmt.Errorf("bench workload (flags): %w", err)
			}
			logger := slog.New(slog.DiscardHandler)
			if cmd.Flags().Changed("log-level") {
				if logger, err = g.logger(cmd); err != nil {
					return err
				}
			}
			if prefix == "" {
				prefix = "eventbus-bench-" + strings.ToLower(watermill.NewShortUUID()[:8]) + "-"
			}
			var progress io.Writer = cmd.ErrOrStderr()
			if quiet {
				progress = io.Discard
			}
			rep, err := runBench(cmd.Context(), cfg, w, benchOptions{prefix: prefix, raw: raw, logger: logger, progress: progress})
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			return rep.print(cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().BoolVar(&raw, "raw", false, "also run the workload through the backend's client directly, and print ratios")
	cmd.Flags().BoolVar(&quiet, "quiet", false, "no progress bar")
	cmd.Flags().StringVar(&prefix, "topic-prefix", "", `start of every topic the run creates (default "eventbus-bench-<run>-")`)
	cmd.Flags().IntVar(&messages, "messages", 0, "events per client and round, replacing bench.messages and bench.duration")
	cmd.Flags().IntVar(&rate, "rate", 0, "target events/s, replacing bench.rate (0: as fast as possible)")
	cmd.Flags().IntVar(&rounds, "rounds", 0, "rounds, replacing bench.rounds")
	return cmd
}

type benchOptions struct {
	prefix   string
	raw      bool
	logger   *slog.Logger
	progress io.Writer
}

// benchReport is what bench prints; the JSON field names are its stable interface.
type benchReport struct {
	Backend    string            `json:"backend"`
	Workload   workload          `json:"workload"`
	Durability map[string]string `json:"durability"`
	Results    []*clientResult   `json:"results"`
	// Ratios are eventbus's rates over each raw client's: the median of the rounds' ratios.
	Ratios []ratio `json:"ratios,omitempty"`
	// MaxRSSBytes is the process's peak resident set (VmHWM) at the end; 0 where unknown.
	MaxRSSBytes int64 `json:"max_rss_bytes"`
}

type clientResult struct {
	Client      string  `json:"client"`
	Published   int64   `json:"published"`
	Consumed    int64   `json:"consumed"`
	Unique      int64   `json:"unique"`
	Duplicates  int64   `json:"duplicates"`
	PublishRate float64 `json:"publish_rate"`
	ConsumeRate float64 `json:"consume_rate"`
	// Latency is publish call to handler, in microseconds; meaningless in backlog mode.
	Latency latencies `json:"latency_us"`

	pubTime, conTime time.Duration
	hist             *hdrhistogram.Histogram
	pubRates         []float64 // per round
	conRates         []float64
}

type latencies struct {
	P50  int64 `json:"p50"`
	P95  int64 `json:"p95"`
	P99  int64 `json:"p99"`
	P999 int64 `json:"p99_9"`
	Max  int64 `json:"max"`
}

type ratio struct {
	Raw     string  `json:"raw"`
	Publish float64 `json:"publish"`
	Consume float64 `json:"consume"`
}

// benchClient is one way of publishing and consuming: the bus, or a raw client.
type benchClient interface {
	// Publish sends payloads to topic under key ("" for none) and returns once the broker has
	// acknowledged every one.
	Publish(ctx context.Context, topic, key string, payloads [][]byte) error
	// Consume passes every message of topics to handle, acking it after, until ctx is done.
	// It returns once subscribed, consuming in goroutines of its own.
	Consume(ctx context.Context, topics []string, handle func(payload []byte)) error
	Close() error
}

// benchTarget is one client under test on one backend.
type benchTarget struct {
	name string
	// open returns a client consuming in group.
	open func(ctx context.Context, group string) (benchClient, error)
	// prepare creates topics and the group's subscriptions before a run; cleanup removes them.
	prepare, cleanup func(ctx context.Context, topics []string, group string) error
}

// benchBackend is what a backend provides to bench: its targets and its durability settings.
type benchBackend struct {
	targets    []benchTarget // eventbus first, then the raw clients
	durability map[string]string
	close      func() error
}

func runBench(ctx context.Context, cfg *config.Config, w workload, o benchOptions) (*benchReport, error) {
	be, err := newBenchBackend(ctx, cfg, w, o)
	if err != nil {
		return nil, err
	}
	defer be.close()
	targets := be.targets
	if !o.raw {
		targets = targets[:1]
	}
	rep := &benchReport{Backend: cfg.Backend, Workload: w, Durability: be.durability}
	results := make([]*clientResult, len(targets))
	for i, t := range targets {
		results[i] = &clientResult{Client: t.name, hist: hdrhistogram.New(1, int64(time.Hour/time.Microsecond), 3)}
	}
	for round := range w.Rounds {
		for i, t := range targets {
			if err := runOne(ctx, t, w, o, round, results[i]); err != nil {
				return nil, fmt.Errorf("bench %s, round %d: %w", t.name, round+1, err)
			}
		}
	}
	for _, r := range results {
		r.PublishRate = rate(r.Published, r.pubTime)
		r.ConsumeRate = rate(r.Consumed, r.conTime)
		h := r.hist
		r.Latency = latencies{P50: h.ValueAtQuantile(50), P95: h.ValueAtQuantile(95), P99: h.ValueAtQuantile(99), P999: h.ValueAtQuantile(99.9), Max: h.Max()}
	}
	for _, r := range results[1:] {
		rep.Ratios = append(rep.Ratios, ratio{Raw: r.Client,
			Publish: medianRatio(results[0].pubRates, r.pubRates), Consume: medianRatio(results[0].conRates, r.conRates)})
	}
	rep.Results = results
	rep.MaxRSSBytes = maxRSS()
	return rep, nil
}

func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// medianRatio is the median over rounds of ours[i]/theirs[i]: steadier than the ratio of
// totals when other work shares the machine, since each round's pair ran back to back.
func medianRatio(ours, theirs []float64) float64 {
	var rs []float64
	for i := range min(len(ours), len(theirs)) {
		if theirs[i] > 0 {
			rs = append(rs, ours[i]/theirs[i])
		}
	}
	if len(rs) == 0 {
		return 0
	}
	slices.Sort(rs)
	return rs[len(rs)/2]
}

// runOne runs the workload once through t and adds the figures to r.
func runOne(ctx context.Context, t benchTarget, w workload, o benchOptions, round int, r *clientResult) error {
	ctx, cancel := context.WithTimeout(ctx, w.Timeout)
	defer cancel()
	tag := fmt.Sprintf("%s%s-%d", o.prefix, t.name, round)
	topics := make([]string, w.Topics)
	for i := range topics {
		topics[i] = tag + "-" + strconv.Itoa(i)
	}
	group := tag + "-group"
	if err := t.prepare(ctx, topics, group); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer ccancel()
		if err := t.cleanup(cctx, topics, group); err != nil {
			o.logger.Warn("bench: cleanup failed", "client", t.name, "error", err)
		}
	}()
	pub, err := t.open(ctx, group)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer pub.Close()

	total := int64(w.Messages)
	if w.Duration > 0 {
		total = -1
	}
	bar := progressbar.NewOptions64(total, progressbar.OptionSetWriter(o.progress),
		progressbar.OptionSetDescription(fmt.Sprintf("%s round %d", t.name, round+1)),
		progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("msgs"),
		progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionClearOnFinish())
	defer bar.Close()

	var (
		mu        sync.Mutex
		seen      []bool
		consumed  int64
		unique    int64
		lastAt    time.Time
		published atomic.Int64
		pubDone   = make(chan struct{})
		allIn     = make(chan struct{})
		allOnce   sync.Once
	)
	handle := func(p []byte) {
		now := time.Now()
		if len(p) < payloadHeader {
			return
		}
		sent := int64(binary.BigEndian.Uint64(p))
		seq := binary.BigEndian.Uint64(p[8:])
		mu.Lock()
		consumed++
		if seq >= uint64(len(seen)) {
			seen = append(seen, make([]bool, int(seq)+1-len(seen)+1024)...)
		}
		if !seen[seq] {
			seen[seq] = true
			unique++
		}
		lastAt = now
		_ = r.hist.RecordValue(max(1, now.Sub(time.Unix(0, sent)).Microseconds()))
		done := false
		select {
		case <-pubDone:
			done = unique >= published.Load()
		default:
		}
		mu.Unlock()
		_ = bar.Add(1)
		if done {
			allOnce.Do(func() { close(allIn) })
		}
	}
	cctx, ccancel := context.WithCancel(ctx)
	defer ccancel()
	var consumers []benchClient
	defer func() {
		ccancel()
		for _, c := range consumers {
			_ = c.Close()
		}
	}()
	openConsumers := func() error {
		for range w.Consumers {
			c, err := t.open(ctx, group)
			if err != nil {
				return fmt.Errorf("open a consumer: %w", err)
			}
			consumers = append(consumers, c)
			// A backlog must be kept for the consumers' group before they consume: on RabbitMQ
			// nothing else declares the group's queue (publisher.declare_groups is per service).
			if p, ok := c.(interface{ Prepare(topics []string) error }); ok {
				if err := p.Prepare(topics); err != nil {
					return fmt.Errorf("prepare a consumer: %w", err)
				}
			}
		}
		return nil
	}
	startConsumers := func() (time.Time, error) {
		if len(consumers) == 0 {
			if err := openConsumers(); err != nil {
				return time.Time{}, err
			}
		}
		start := time.Now()
		for _, c := range consumers {
			if err := c.Consume(cctx, topics, handle); err != nil {
				return time.Time{}, fmt.Errorf("consume: %w", err)
			}
		}
		return start, nil
	}

	var conStart time.Time
	if w.Backlog {
		if err := openConsumers(); err != nil {
			return err
		}
	} else {
		if _, err = startConsumers(); err != nil {
			return err
		}
	}
	pubStart := time.Now()
	if err := publishAll(ctx, pub, w, topics, &published); err != nil {
		return err
	}
	pubTime := time.Since(pubStart)
	if w.Backlog {
		if conStart, err = startConsumers(); err != nil {
			return err
		}
	} else {
		conStart = pubStart
	}
	mu.Lock()
	close(pubDone)
	complete := unique >= published.Load()
	mu.Unlock()
	if complete {
		allOnce.Do(func() { close(allIn) })
	}
	select {
	case <-allIn:
	case <-ctx.Done():
		mu.Lock()
		defer mu.Unlock()
		return fmt.Errorf("consumed %d of %d events within bench.timeout (%s)", unique, published.Load(), w.Timeout)
	}
	mu.Lock()
	conTime := lastAt.Sub(conStart)
	r.Published += published.Load()
	r.Consumed += consumed
	r.Unique += unique
	r.Duplicates += consumed - unique
	mu.Unlock()
	r.pubTime += pubTime
	r.conTime += conTime
	r.pubRates = append(r.pubRates, rate(published.Load(), pubTime))
	r.conRates = append(r.conRates, rate(unique, conTime))
	return nil
}

// publishAll runs the producers: each takes the next batch's sequence numbers from a shared
// counter, waits for its turn when a rate is set, and publishes the batch in one call.
func publishAll(ctx context.Context, c benchClient, w workload, topics []string, published *atomic.Int64) error {
	var next atomic.Int64
	start := time.Now()
	deadline := time.Time{}
	if w.Duration > 0 {
		deadline = start.Add(w.Duration)
	}
	errc := make(chan error, w.Producers)
	var wg sync.WaitGroup
	for range w.Producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				first := next.Add(int64(w.Batch)) - int64(w.Batch)
				n := int64(w.Batch)
				if w.Duration <= 0 {
					n = min(n, int64(w.Messages)-first)
				} else if time.Now().After(deadline) {
					return
				}
				if n <= 0 {
					return
				}
				if w.Rate > 0 {
					due := start.Add(time.Duration(float64(first) / float64(w.Rate) * float64(time.Second)))
					if d := time.Until(due); d > 0 {
						select {
						case <-time.After(d):
						case <-ctx.Done():
							errc <- ctx.Err()
							return
						}
					}
				}
				key := ""
				if w.Keys > 0 {
					key = "key-" + strconv.FormatInt(first%int64(w.Keys), 10)
				}
				topic := topics[int(first/int64(w.Batch))%len(topics)]
				payloads := make([][]byte, n)
				now := uint64(time.Now().UnixNano())
				for i := range payloads {
					p := make([]byte, w.PayloadSize)
					binary.BigEndian.PutUint64(p, now)
					binary.BigEndian.PutUint64(p[8:], uint64(first)+uint64(i))
					payloads[i] = p
				}
				if err := c.Publish(ctx, topic, key, payloads); err != nil {
					errc <- fmt.Errorf("publish: %w", err)
					return
				}
				published.Add(n)
			}
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// maxRSS is the process's peak resident set size from /proc/self/status (VmHWM); 0 where
// that file is missing (not Linux).
func maxRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err == nil {
				return kb * 1024
			}
		}
	}
	return 0
}

func (rep *benchReport) print(w io.Writer) error {
	wl := rep.Workload
	amount := strconv.Itoa(wl.Messages) + " events"
	if wl.Duration > 0 {
		amount = wl.Duration.String()
	}
	mode := "live"
	if wl.Backlog {
		mode = "backlog (publish, then consume)"
	}
	fmt.Fprintf(w, "backend %s: %s of %d B, %d producers (batch %d), %d consumers, %d topics, %d keys, rate %s, %d rounds, %s\n",
		rep.Backend, amount, wl.PayloadSize, wl.Producers, wl.Batch, wl.Consumers, wl.Topics, wl.Keys, rateString(wl.Rate), wl.Rounds, mode)
	keys := make([]string, 0, len(rep.Durability))
	for k := range rep.Durability {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %s: %s\n", k, rep.Durability[k])
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "CLIENT\tPUBLISHED\tCONSUMED\tDUPS\tPUBLISH/s\tCONSUME/s\tP50 µs\tP95 µs\tP99 µs\tP99.9 µs\tMAX µs\t")
	for _, r := range rep.Results {
		l := r.Latency
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.0f\t%.0f\t%d\t%d\t%d\t%d\t%d\t\n", r.Client, r.Published, r.Unique, r.Duplicates,
			r.PublishRate, r.ConsumeRate, l.P50, l.P95, l.P99, l.P999, l.Max)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, ra := range rep.Ratios {
		fmt.Fprintf(w, "eventbus/%s: publish %.2fx, consume %.2fx\n", ra.Raw, ra.Publish, ra.Consume)
	}
	if rep.MaxRSSBytes > 0 {
		fmt.Fprintf(w, "max RSS: %.1f MiB\n", float64(rep.MaxRSSBytes)/(1<<20))
	}
	return nil
}

func rateString(r int) string {
	if r == 0 {
		return "max"
	}
	return strconv.Itoa(r) + "/s"
}
