package compat

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Fetches cut mid-batch (tiny byte limits), offsets by time, and a static group member.
func TestConsumeEdgeCases(t *testing.T) {
	adm := newAdmin(t)
	const topic = "edges"
	createTopic(t, adm, topic, 1, nil)
	producer := newClient(t, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	base := time.UnixMilli(1_700_000_000_000)
	var records []*kgo.Record
	for i := 0; i < 400; i++ {
		records = append(records, &kgo.Record{
			Value:     []byte(strconv.Itoa(i) + strings.Repeat("x", 200)),
			Timestamp: base.Add(time.Duration(i) * time.Millisecond),
		})
	}
	if err := producer.ProduceSync(testContext(t), records...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}

	t.Run("tiny fetch limits", func(t *testing.T) {
		got := consumeN(t, topic, 400, kgo.FetchMaxPartitionBytes(512), kgo.FetchMaxBytes(1024))
		for i, r := range got {
			if r.Offset != int64(i) || !strings.HasPrefix(string(r.Value), strconv.Itoa(i)+"x") {
				t.Fatalf("record %d: offset %d value %.10q", i, r.Offset, r.Value)
			}
		}
	})

	// firstAfter is the offset franz-go starts at for a time 350 ms after the first record.
	firstAfter := func(t *testing.T, topic string) int64 {
		cl := newClient(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
			topic: {0: kgo.NewOffset().AfterMilli(base.UnixMilli() + 350)},
		}))
		fetches := cl.PollFetches(testContext(t))
		if errs := fetches.Errors(); len(errs) > 0 {
			t.Fatalf("fetch: %v", errs)
		}
		rs := fetches.Records()
		if len(rs) == 0 {
			t.Fatalf("no records after the time")
		}
		return rs[0].Offset
	}

	t.Run("from a time", func(t *testing.T) {
		const plain = "edges-plain"
		createTopic(t, adm, plain, 1, nil)
		uncompressed := newClient(t, kgo.DefaultProduceTopic(plain), kgo.ProducerBatchCompression(kgo.NoCompression()))
		var copies []*kgo.Record
		for _, r := range records {
			copies = append(copies, &kgo.Record{Value: r.Value, Timestamp: r.Timestamp})
		}
		if err := uncompressed.ProduceSync(testContext(t), copies...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
		if got := firstAfter(t, plain); got != 350 {
			t.Fatalf("first offset at or after the time: %d, want 350", got)
		}
		// Kafka finds the record inside a compressed batch too (LogSegment.findOffsetByTimestamp
		// iterates its records); Sluice answers the batch's base offset (storage/src/ops.rs,
		// documented there). Reported, not asserted.
		if got := firstAfter(t, topic); got != 350 {
			t.Logf("known divergence: ListOffsets by time in an lz4 batch answered %d, Kafka answers 350", got)
		}
	})

	t.Run("static member", func(t *testing.T) {
		const group = "edges-static"
		join := func() *kgo.Client {
			return newClient(t,
				kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
				kgo.InstanceID("static-1"), kgo.SessionTimeout(10*time.Second),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		}
		first := join()
		ctx := testContext(t)
		if rs := first.PollFetches(ctx).Records(); len(rs) == 0 {
			t.Fatalf("static member consumed nothing")
		}
		described, err := adm.DescribeGroups(ctx, group)
		if err != nil || len(described[group].Members) != 1 {
			t.Fatalf("describe: %v %+v", err, described[group])
		}
		m := described[group].Members[0]
		if m.InstanceID == nil || *m.InstanceID != "static-1" {
			t.Fatalf("member instance id: %v", m.InstanceID)
		}
		// A static member leaving on close stays in the group (KIP-345): no rebalance, and a
		// rejoin with the same instance id takes its place.
		first.CloseAllowingRebalance()
		second := join()
		if rs := second.PollFetches(ctx).Records(); len(rs) == 0 && ctx.Err() != nil {
			t.Fatalf("rejoined static member consumed nothing")
		}
		waitFor(t, "one member with the same instance id", func() bool {
			d, err := adm.DescribeGroups(ctx, group)
			if err != nil || len(d[group].Members) != 1 {
				return false
			}
			id := d[group].Members[0].InstanceID
			return id != nil && *id == "static-1"
		})
	})

	t.Run("offsets for leader epoch", func(t *testing.T) {
		ends, err := adm.ListEndOffsets(testContext(t), topic)
		if err != nil {
			t.Fatalf("end offsets: %v", err)
		}
		o, _ := ends.Lookup(topic, 0)
		if o.Offset != 400 {
			t.Fatalf("end offset %d", o.Offset)
		}
		var req kadm.OffsetForLeaderEpochRequest
		req.Add(topic, 0, o.LeaderEpoch)
		epochs, err := adm.OffsetForLeaderEpoch(testContext(t), req)
		if err != nil {
			t.Fatalf("offset for leader epoch: %v", err)
		}
		e, ok := epochs[topic][0]
		if !ok || e.Err != nil || e.EndOffset != 400 {
			t.Fatalf("offset for leader epoch %d: %+v", o.LeaderEpoch, e)
		}
	})
}
