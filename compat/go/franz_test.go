package compat

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func newClient(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	base := []kgo.Opt{
		kgo.SeedBrokers(brokerAddr),
		kgo.ClientID("sluice-franz-go"),
		kgo.RequestTimeoutOverhead(10 * time.Second),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func newAdmin(t *testing.T) *kadm.Client {
	return kadm.NewClient(newClient(t))
}

func createTopic(t *testing.T, adm *kadm.Client, topic string, partitions int32, configs map[string]*string) {
	t.Helper()
	resp, err := adm.CreateTopics(testContext(t), partitions, -1, configs, topic)
	if err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}
	if r := resp[topic]; r.Err != nil {
		t.Fatalf("create %s: %v (%s)", topic, r.Err, r.ErrMessage)
	}
}

// consumeN reads n records of topic from the start of every partition without a group.
func consumeN(t *testing.T, topic string, n int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl := newClient(t, append([]kgo.Opt{
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}, opts...)...)
	ctx := testContext(t)
	var out []*kgo.Record
	for len(out) < n {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records of %s before the deadline", len(out), n, topic)
		}
		fetches.EachError(func(topic string, p int32, err error) {
			t.Fatalf("fetch %s/%d: %v", topic, p, err)
		})
		out = append(out, fetches.Records()...)
	}
	if len(out) != n {
		t.Fatalf("consumed %d records of %s, want %d", len(out), topic, n)
	}
	return out
}

// Produce with the idempotent producer (franz-go's default) in every codec, then read back.
func TestProduceEveryCodecAndConsume(t *testing.T) {
	adm := newAdmin(t)
	codecs := map[string]kgo.CompressionCodec{
		"none":   kgo.NoCompression(),
		"gzip":   kgo.GzipCompression(),
		"snappy": kgo.SnappyCompression(),
		"lz4":    kgo.Lz4Compression(),
		"zstd":   kgo.ZstdCompression(),
	}
	for name, codec := range codecs {
		t.Run(name, func(t *testing.T) {
			topic := "codec-" + name
			createTopic(t, adm, topic, 3, nil)
			producer := newClient(t, kgo.ProducerBatchCompression(codec), kgo.DefaultProduceTopic(topic))
			const count = 300
			var records []*kgo.Record
			for i := 0; i < count; i++ {
				records = append(records, &kgo.Record{
					Key:     []byte("key-" + strconv.Itoa(i%7)),
					Value:   []byte(fmt.Sprintf("%s-value-%d-%s", name, i, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")),
					Headers: []kgo.RecordHeader{{Key: "i", Value: []byte(strconv.Itoa(i))}, {Key: "codec", Value: []byte(name)}},
				})
			}
			results := producer.ProduceSync(testContext(t), records...)
			if err := results.FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
			perPartition := map[int32][]int64{}
			for _, r := range results {
				perPartition[r.Record.Partition] = append(perPartition[r.Record.Partition], r.Record.Offset)
			}
			for p, offsets := range perPartition {
				sort.Slice(offsets, func(i, j int) bool { return offsets[i] < offsets[j] })
				for i, o := range offsets {
					if o != int64(i) {
						t.Fatalf("partition %d: offsets %v are not 0..n-1", p, offsets)
					}
				}
			}
			got := consumeN(t, topic, count)
			seen := map[string]bool{}
			for _, r := range got {
				if len(r.Headers) != 2 || r.Headers[1].Key != "codec" || string(r.Headers[1].Value) != name {
					t.Fatalf("headers of %s/%d@%d: %+v", r.Topic, r.Partition, r.Offset, r.Headers)
				}
				i, err := strconv.Atoi(string(r.Headers[0].Value))
				if err != nil || string(r.Key) != "key-"+strconv.Itoa(i%7) {
					t.Fatalf("record %d: key %q", i, r.Key)
				}
				seen[string(r.Value)] = true
			}
			if len(seen) != count {
				t.Fatalf("%d distinct values, want %d", len(seen), count)
			}
		})
	}
}

// acks=1 and acks=0 need the idempotent producer off (Kafka requires acks=all for it).
func TestProduceAcks(t *testing.T) {
	adm := newAdmin(t)
	for _, c := range []struct {
		name string
		acks kgo.Acks
	}{{"leader", kgo.LeaderAck()}, {"none", kgo.NoAck()}} {
		t.Run(c.name, func(t *testing.T) {
			topic := "acks-" + c.name
			createTopic(t, adm, topic, 1, nil)
			producer := newClient(t, kgo.RequiredAcks(c.acks), kgo.DisableIdempotentWrite(), kgo.DefaultProduceTopic(topic))
			var records []*kgo.Record
			for i := 0; i < 50; i++ {
				records = append(records, kgo.StringRecord("v"+strconv.Itoa(i)))
			}
			if err := producer.ProduceSync(testContext(t), records...).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
			got := consumeN(t, topic, 50)
			for i, r := range got {
				if string(r.Value) != "v"+strconv.Itoa(i) || r.Offset != int64(i) {
					t.Fatalf("record %d: %q at %d", i, r.Value, r.Offset)
				}
			}
		})
	}
}

// Two group members split a topic's partitions, consume everything once and commit.
func TestConsumerGroup(t *testing.T) {
	adm := newAdmin(t)
	const topic, group, count = "group-input", "franz-group", 600
	createTopic(t, adm, topic, 4, nil)
	producer := newClient(t, kgo.DefaultProduceTopic(topic))
	var records []*kgo.Record
	for i := 0; i < count; i++ {
		records = append(records, &kgo.Record{Key: []byte("k" + strconv.Itoa(i)), Value: []byte(strconv.Itoa(i))})
	}
	if err := producer.ProduceSync(testContext(t), records...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}

	ctx := testContext(t)
	seen := make(chan string, count*2)
	members := make([]*kgo.Client, 2)
	for i := range members {
		members[i] = newClient(t,
			kgo.ConsumerGroup(group),
			kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.DisableAutoCommit(),
			kgo.Balancers(kgo.CooperativeStickyBalancer()),
		)
	}
	errs := make(chan error, len(members))
	for _, m := range members {
		go func(m *kgo.Client) {
			for ctx.Err() == nil {
				fetches := m.PollFetches(ctx)
				var err error
				fetches.EachError(func(topic string, p int32, e error) {
					if !errors.Is(e, context.DeadlineExceeded) && !errors.Is(e, context.Canceled) {
						err = fmt.Errorf("fetch %s/%d: %w", topic, p, e)
					}
				})
				if err != nil {
					errs <- err
					return
				}
				fetches.EachRecord(func(r *kgo.Record) { seen <- string(r.Value) })
				if err := m.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
					errs <- fmt.Errorf("commit: %w", err)
					return
				}
			}
			errs <- nil
		}(m)
	}
	distinct := map[string]bool{}
	for len(distinct) < count {
		select {
		case v := <-seen:
			distinct[v] = true
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatalf("group consumed %d of %d records", len(distinct), count)
		}
	}

	// Both members hold partitions, and the committed offsets reach the log end.
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatalf("describe groups: %v", err)
	}
	g := described[group]
	if g.Err != nil || g.State != "Stable" || len(g.Members) != 2 {
		t.Fatalf("group: err %v state %q members %d", g.Err, g.State, len(g.Members))
	}
	assigned := 0
	for _, m := range g.Members {
		c, ok := m.Assigned.AsConsumer()
		if !ok {
			t.Fatalf("member %s: assignment is not the consumer protocol", m.MemberID)
		}
		for _, tp := range c.Topics {
			assigned += len(tp.Partitions)
		}
	}
	if assigned != 4 {
		t.Fatalf("%d partitions assigned, want 4", assigned)
	}
	waitFor(t, "committed offsets reach the log end", func() bool {
		lag, err := adm.Lag(ctx, group)
		if err != nil {
			return false
		}
		l := lag[group]
		return l.Error() == nil && l.Lag.Total() == 0 && len(l.Lag[topic]) == 4
	})
	for _, m := range members {
		m.Close()
	}
	waitFor(t, "the group is empty after its members leave", func() bool {
		d, err := adm.DescribeGroups(ctx, group)
		return err == nil && d[group].State == "Empty"
	})
}

// kadm: topics, partitions, configs, offsets, records deletion, groups.
func TestAdmin(t *testing.T) {
	adm := newAdmin(t)
	ctx := testContext(t)
	const topic = "admin-topic"
	retention := "3600000"
	createTopic(t, adm, topic, 2, map[string]*string{"retention.ms": &retention})

	again, err := adm.CreateTopics(ctx, 2, -1, nil, topic)
	if err != nil || !errors.Is(again[topic].Err, kerr.TopicAlreadyExists) {
		t.Fatalf("second create: %v / %v, want TOPIC_ALREADY_EXISTS", err, again[topic].Err)
	}

	listed, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatalf("list topics: %v", err)
	}
	detail, ok := listed[topic]
	if !ok || len(detail.Partitions) != 2 || detail.Err != nil {
		t.Fatalf("list topics: %s missing or wrong: %+v", topic, detail)
	}

	meta, err := adm.Metadata(ctx)
	if err != nil || len(meta.Brokers) != 1 || meta.Controller != meta.Brokers[0].NodeID {
		t.Fatalf("metadata: %v %+v", err, meta.Brokers)
	}

	configs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatalf("describe configs: %v", err)
	}
	rc, err := configs.On(topic, nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("describe configs of %s: %v %v", topic, err, rc.Err)
	}
	if v := configValue(rc.Configs, "retention.ms"); v != retention {
		t.Fatalf("retention.ms = %q, want %s", v, retention)
	}

	compact := "compact"
	altered, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "cleanup.policy", Value: &compact},
		{Op: kadm.DeleteConfig, Name: "retention.ms"},
	}, topic)
	if err != nil || altered[0].Err != nil {
		t.Fatalf("alter configs: %v %v", err, altered)
	}
	configs, err = adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatalf("describe configs: %v", err)
	}
	rc, _ = configs.On(topic, nil)
	if v := configValue(rc.Configs, "cleanup.policy"); v != "compact" {
		t.Fatalf("cleanup.policy = %q after alter", v)
	}
	for _, c := range rc.Configs {
		if c.Key == "retention.ms" && c.Source == 1 { // DYNAMIC_TOPIC_CONFIG
			t.Fatalf("retention.ms still set on the topic after DeleteConfig")
		}
	}
	compact = "delete"
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "cleanup.policy", Value: &compact}}, topic); err != nil {
		t.Fatalf("alter back: %v", err)
	}

	grown, err := adm.CreatePartitions(ctx, 2, topic)
	if err != nil || grown[topic].Err != nil {
		t.Fatalf("create partitions: %v %v", err, grown[topic].Err)
	}
	waitFor(t, "the topic has 4 partitions", func() bool {
		l, err := adm.ListTopics(ctx, topic)
		return err == nil && len(l[topic].Partitions) == 4
	})

	// Records to partition 0, then offsets, DeleteRecords and group offsets.
	producer := newClient(t, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	var records []*kgo.Record
	for i := 0; i < 10; i++ {
		records = append(records, &kgo.Record{Partition: 0, Value: []byte(strconv.Itoa(i)), Timestamp: time.UnixMilli(1_600_000_000_000 + int64(i))})
	}
	if err := producer.ProduceSync(ctx, records...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("list end offsets: %v", err)
	}
	if o, _ := ends.Lookup(topic, 0); o.Offset != 10 {
		t.Fatalf("end offset of partition 0 = %d, want 10", o.Offset)
	}
	byTime, err := adm.ListOffsetsAfterMilli(ctx, 1_600_000_000_005, topic)
	if err != nil {
		t.Fatalf("list offsets by time: %v", err)
	}
	if o, _ := byTime.Lookup(topic, 0); o.Offset != 5 {
		t.Fatalf("offset at time +5 = %d, want 5", o.Offset)
	}
	deleteTo := kadm.Offsets{}
	deleteTo.Add(kadm.Offset{Topic: topic, Partition: 0, At: 3})
	deleted, err := adm.DeleteRecords(ctx, deleteTo)
	if err != nil {
		t.Fatalf("delete records: %v", err)
	}
	if d, _ := deleted.Lookup(topic, 0); d.Err != nil || d.LowWatermark != 3 {
		t.Fatalf("delete records: %+v", d)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("list start offsets: %v", err)
	}
	if o, _ := starts.Lookup(topic, 0); o.Offset != 3 {
		t.Fatalf("start offset after DeleteRecords = %d, want 3", o.Offset)
	}

	const group = "admin-group"
	commit := kadm.Offsets{}
	commit.Add(kadm.Offset{Topic: topic, Partition: 0, At: 7, LeaderEpoch: -1})
	committed, err := adm.CommitOffsets(ctx, group, commit)
	if err != nil || committed.Error() != nil {
		t.Fatalf("commit offsets: %v %v", err, committed.Error())
	}
	fetched, err := adm.FetchOffsets(ctx, group)
	if err != nil || fetched.Error() != nil {
		t.Fatalf("fetch offsets: %v %v", err, fetched.Error())
	}
	if o, ok := fetched.Lookup(topic, 0); !ok || o.At != 7 {
		t.Fatalf("fetched offset %+v, want 7", o)
	}
	lag, err := adm.Lag(ctx, group)
	if err != nil || lag[group].Lag.Total() != 3 {
		t.Fatalf("lag: %v %+v", err, lag[group].Lag)
	}
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatalf("list groups: %v", err)
	}
	if _, ok := groups[group]; !ok {
		t.Fatalf("list groups: %s missing from %v", group, groups.Groups())
	}
	delOff, err := adm.DeleteOffsets(ctx, group, kadm.TopicsSet{topic: {0: {}}})
	if err != nil || delOff.Error() != nil {
		t.Fatalf("delete offsets: %v %v", err, delOff.Error())
	}
	fetched, _ = adm.FetchOffsets(ctx, group)
	if o, ok := fetched.Lookup(topic, 0); ok && o.At >= 0 {
		t.Fatalf("offset still committed after DeleteOffsets: %+v", o)
	}
	delGroups, err := adm.DeleteGroups(ctx, group)
	if err != nil || delGroups[group].Err != nil {
		t.Fatalf("delete groups: %v %v", err, delGroups[group].Err)
	}
	groups, _ = adm.ListGroups(ctx)
	if _, ok := groups[group]; ok {
		t.Fatalf("group %s listed after DeleteGroups", group)
	}

	dt, err := adm.DeleteTopics(ctx, topic)
	if err != nil || dt[topic].Err != nil {
		t.Fatalf("delete topics: %v %v", err, dt[topic].Err)
	}
	waitFor(t, "the topic is gone", func() bool {
		l, err := adm.ListTopics(ctx)
		_, still := l[topic]
		return err == nil && !still
	})
}

func configValue(configs []kadm.Config, key string) string {
	for _, c := range configs {
		if c.Key == key {
			return c.MaybeValue()
		}
	}
	return ""
}

// waitFor polls cond every 100 ms for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
