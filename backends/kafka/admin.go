package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// admin answers driver.Admin: rewinding a group by committing offsets for it (offsets for
// times), and describing topics and groups as kafka-consumer-groups.sh --describe does. Each
// call opens a client of its own and closes it: the calls are an operator's, not a service's.
type admin struct {
	brokers []string
	sc      *sarama.Config
	logger  *slog.Logger
}

func newAdmin(brokers []string, sc *sarama.Config, logger *slog.Logger) *driver.Admin {
	a := &admin{brokers: brokers, sc: sc, logger: logger}
	return &driver.Admin{Rewind: a.rewind, Status: a.status, DeleteTopics: a.deleteTopics}
}

func (a *admin) connect(what string) (sarama.Client, sarama.ClusterAdmin, error) {
	c, err := sarama.NewClient(a.brokers, a.sc)
	if err != nil {
		return nil, nil, classify(fmt.Sprintf("kafka %s: connect to %v", what, a.brokers), err)
	}
	ca, err := sarama.NewClusterAdminFromClient(c)
	if err != nil {
		_ = c.Close()
		return nil, nil, classify(fmt.Sprintf("kafka %s: admin client", what), err)
	}
	return c, ca, nil
}

// rewind commits, for group, the offset each partition of topic is to go on from. Kafka lets
// only an empty group's offsets be set from outside (a member's next commit would overwrite
// them, and the coordinator refuses a commit from a non-member of an active generation), so a
// group with members is refused. Sarama takes no context; the client's timeouts bound each
// request.
func (a *admin) rewind(ctx context.Context, topic, group string, to driver.RewindTarget, dryRun bool) ([]driver.PartitionPosition, error) {
	what := fmt.Sprintf("rewind of %s for group %s", topic, group)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	client, ca, err := a.connect(what)
	if err != nil {
		return nil, err
	}
	defer ca.Close() // closes the client too

	descs, err := ca.DescribeConsumerGroups([]string{group})
	if err != nil {
		return nil, classify("kafka "+what+": describe group", err)
	}
	for _, d := range descs {
		if len(d.Members) > 0 {
			ids := make([]string, 0, len(d.Members))
			for id, m := range d.Members {
				ids = append(ids, id+" ("+m.ClientHost+")")
			}
			sort.Strings(ids)
			return nil, fmt.Errorf("kafka %s: %w (state %s: %s); stop its consumers first: Kafka keeps a group's offsets while it has members, and a member's next commit would undo the move",
				what, driver.ErrGroupActive, d.State, strings.Join(ids, ", "))
		}
	}
	if err := topicExists(client, topic); err != nil {
		return nil, fmt.Errorf("kafka %s: %w", what, err)
	}
	partitions, err := client.Partitions(topic)
	if err != nil {
		return nil, classify("kafka "+what+": partitions", err)
	}
	var onlyPartition int32 = -1
	var atOffset int64
	if to.Position != "" {
		if onlyPartition, atOffset, err = ParseCoordinates(to.Position); err != nil {
			return nil, err
		}
		if !slices.Contains(partitions, onlyPartition) {
			return nil, fmt.Errorf("kafka %s: position %s: topic %s has partitions 0 to %d", what, to.Position, topic, len(partitions)-1)
		}
	}
	committed, err := committedOffsets(ca, group, topic, partitions)
	if err != nil {
		return nil, classify("kafka "+what+": committed offsets", err)
	}

	var out []driver.PartitionPosition
	commit := sarama.NewOffsetCommitRequest(a.sc, group)
	for _, p := range partitions {
		if onlyPartition >= 0 && p != onlyPartition {
			continue
		}
		pos := driver.PartitionPosition{Topic: topic, Group: group, Partition: strconv.Itoa(int(p))}
		if off, ok := committed[p]; ok {
			pos.From = Coordinates(p, off)
		}
		off := atOffset
		if onlyPartition < 0 {
			if off, err = client.GetOffset(topic, p, to.At.UnixMilli()); err != nil {
				return nil, classify(fmt.Sprintf("kafka %s: offset of partition %d at %s", what, p, to.At.Format(time.RFC3339)), err)
			}
		}
		low, high, err := watermarks(client, topic, p)
		if err != nil {
			return nil, classify(fmt.Sprintf("kafka %s: partition %d", what, p), err)
		}
		if off < 0 || off > high { // no record at or after the time; a position past the end
			off = high
		}
		if off < low { // a position no longer retained: the oldest one is
			off = low
		}
		pos.To = Coordinates(p, off)
		out = append(out, pos)
		commit.AddBlock(topic, p, off, 0, "")
	}
	if dryRun {
		return out, nil
	}
	coordinator, err := client.Coordinator(group)
	if err != nil {
		return nil, classify(fmt.Sprintf("kafka %s: coordinator", what), err)
	}
	resp, err := coordinator.CommitOffset(commit)
	if err != nil {
		return nil, classify(fmt.Sprintf("kafka %s: commit", what), err)
	}
	for p, kerr := range resp.Errors[topic] {
		if kerr != sarama.ErrNoError {
			return nil, classify(fmt.Sprintf("kafka %s: commit on partition %d", what, p), kerr)
		}
	}
	a.logger.Info("consumer group rewound", "topic", topic, "group", group, "positions", len(out))
	return out, nil
}

// topicExists fails unless the broker lists topic. It asks for every topic's metadata: asking
// for one topic's would create it on a broker that auto-creates topics.
func topicExists(client sarama.Client, topic string) error {
	if err := client.RefreshMetadata(); err != nil {
		return classify("metadata", err)
	}
	all, err := client.Topics()
	if err != nil {
		return classify("list topics", err)
	}
	if !slices.Contains(all, topic) {
		return fmt.Errorf("%s: %w", topic, driver.ErrUnknownTopic)
	}
	return nil
}

// committedOffsets returns the group's committed offset per partition of topic; partitions
// without one are absent. A group the broker does not know has committed nothing.
func committedOffsets(ca sarama.ClusterAdmin, group, topic string, partitions []int32) (map[int32]int64, error) {
	resp, err := ca.ListConsumerGroupOffsets(group, map[string][]int32{topic: partitions})
	if errors.Is(err, sarama.ErrGroupIDNotFound) {
		return map[int32]int64{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	for _, p := range partitions {
		if b := resp.GetBlock(topic, p); b != nil && b.Err == sarama.ErrNoError && b.Offset >= 0 {
			out[p] = b.Offset
		}
	}
	return out, nil
}

// watermarks returns a partition's oldest retained offset and its high watermark (the offset
// the next record gets).
func watermarks(client sarama.Client, topic string, p int32) (low, high int64, err error) {
	if low, err = client.GetOffset(topic, p, sarama.OffsetOldest); err != nil {
		return 0, 0, err
	}
	if high, err = client.GetOffset(topic, p, sarama.OffsetNewest); err != nil {
		return 0, 0, err
	}
	return low, high, nil
}

// status describes topic (every topic but Kafka's internal ones when topic is ""): its
// partitions, retention.ms / retention.bytes as the broker states them, and its groups (those
// named, else every group with members assigned to the topic or offsets committed on it).
func (a *admin) status(ctx context.Context, topic string, groups []string) ([]driver.TopicStatus, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	client, ca, err := a.connect("status")
	if err != nil {
		return nil, err
	}
	defer ca.Close()
	topics := []string{topic}
	if topic == "" {
		all, err := client.Topics()
		if err != nil {
			return nil, classify("kafka status: list topics", err)
		}
		topics = topics[:0]
		for _, t := range all {
			if !strings.HasPrefix(t, "__") {
				topics = append(topics, t)
			}
		}
		sort.Strings(topics)
	} else if err := topicExists(client, topic); err != nil {
		return nil, fmt.Errorf("kafka status: %w", err)
	}
	candidates := groups
	if len(candidates) == 0 {
		listed, err := ca.ListConsumerGroups()
		if err != nil {
			return nil, classify("kafka status: list groups", err)
		}
		for g := range listed {
			candidates = append(candidates, g)
		}
		sort.Strings(candidates)
	}
	var descs map[string]*sarama.GroupDescription
	if len(candidates) > 0 {
		ds, err := ca.DescribeConsumerGroups(candidates)
		if err != nil {
			return nil, classify("kafka status: describe groups", err)
		}
		descs = make(map[string]*sarama.GroupDescription, len(ds))
		for _, d := range ds {
			descs[d.GroupId] = d
		}
	}

	out := make([]driver.TopicStatus, 0, len(topics))
	for _, t := range topics {
		ts, err := a.topicStatus(ctx, client, ca, t, candidates, len(groups) > 0, descs)
		if err != nil {
			return nil, err
		}
		out = append(out, ts)
	}
	return out, nil
}

func (a *admin) topicStatus(ctx context.Context, client sarama.Client, ca sarama.ClusterAdmin, topic string, groups []string, named bool, descs map[string]*sarama.GroupDescription) (driver.TopicStatus, error) {
	ts := driver.TopicStatus{Topic: topic}
	partitions, err := client.Partitions(topic)
	if err != nil {
		return ts, classify("kafka status of "+topic+": partitions", err)
	}
	for _, p := range partitions {
		low, high, err := watermarks(client, topic, p)
		if err != nil {
			return ts, classify(fmt.Sprintf("kafka status of %s partition %d", topic, p), err)
		}
		ps := driver.PartitionStatus{Partition: strconv.Itoa(int(p)), Messages: high - low}
		if high > low {
			ps.Oldest, ps.Newest = Coordinates(p, low), Coordinates(p, high)
		}
		ts.Partitions = append(ts.Partitions, ps)
	}
	ts.Retention = retention(ca, topic)

	lr := &lagReporter{brokers: a.brokers, sc: a.sc, client: client, admin: ca}
	for _, g := range groups {
		gs := driver.GroupStatus{Group: g}
		assigned := false
		if d := descs[g]; d != nil {
			gs.State = d.State
			if d.State == "Dead" {
				gs.State = "absent" // as the other backends say of a group the broker does not know
			}
			for id, m := range d.Members {
				ms := driver.MemberStatus{ID: id, ClientID: m.ClientId, Host: m.ClientHost, Pending: -1, Idle: -1}
				if asg, err := m.GetMemberAssignment(); err == nil && asg != nil {
					for _, p := range asg.Topics[topic] {
						ms.Partitions = append(ms.Partitions, strconv.Itoa(int(p)))
						assigned = true
					}
				}
				gs.Members = append(gs.Members, ms)
			}
			sort.Slice(gs.Members, func(i, j int) bool { return gs.Members[i].ID < gs.Members[j].ID })
		}
		gs.Consumers = len(gs.Members)
		if !named && !assigned {
			committed, err := committedOffsets(ca, g, topic, partitions)
			if err != nil {
				return ts, classify(fmt.Sprintf("kafka status of %s: offsets of group %s", topic, g), err)
			}
			if len(committed) == 0 {
				continue // a group of other topics
			}
		}
		lr.group = g
		if gs.Lag, err = lr.lag(ctx, topic); err != nil {
			return ts, err
		}
		ts.Groups = append(ts.Groups, gs)
	}
	return ts, nil
}

// retention is the topic's retention.ms and retention.bytes as the broker states them; "" when
// the broker does not say.
func retention(ca sarama.ClusterAdmin, topic string) string {
	results, err := ca.DescribeConfigs([]*sarama.ConfigResource{{Type: sarama.TopicResource, Name: topic, ConfigNames: []string{"retention.ms", "retention.bytes"}}}, sarama.DescribeConfigsOptions{})
	if err != nil || len(results) != 1 || results[0].ErrorCode != sarama.ErrNoError {
		return ""
	}
	var parts []string
	for _, e := range results[0].Configs {
		if e.Name == "retention.ms" || e.Name == "retention.bytes" {
			parts = append(parts, e.Name+"="+e.Value)
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// deleteTopics answers driver.Admin.DeleteTopics.
func (a *admin) deleteTopics(_ context.Context, topics, groups []string) error {
	_, ca, err := a.connect("delete topics")
	if err != nil {
		return err
	}
	defer ca.Close()
	var errs []error
	for _, t := range topics {
		if err := ca.DeleteTopic(t); err != nil && !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			errs = append(errs, fmt.Errorf("kafka: delete topic %s: %w", t, err))
		}
	}
	for _, g := range groups {
		_ = ca.DeleteConsumerGroup(g) // best effort: a group outlives its members briefly
	}
	return errors.Join(errs...)
}
