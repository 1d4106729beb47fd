package kafka

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Committing during rebalances.
//
// franz-go holds every CommitOffsetsSync back while the member joins and
// syncs the group, and under the cooperative protocol the member goes on
// handling the messages of the partitions it keeps meanwhile. A join lasts
// until every member rejoined or the rebalance timeout passed (or a dead
// member's session expired): in a group whose members keep dying it lasts
// most of the time, and everything finished during it runs again if the
// member dies before the rebalance ends (that was most of the crash test's
// duplicates).
//
// The broker itself accepts a commit in the member's current generation
// while the group prepares a rebalance (the members still own their
// partitions then: that is how eager consumers commit on revoke), and
// refuses it once the next generation is being synced
// (REBALANCE_IN_PROGRESS) or has begun (ILLEGAL_GENERATION). So the
// committer's periodic commits are sent as OffsetCommit requests of our
// own, in the generation franz-go reports: they go through during the join,
// and the broker's generation check is what keeps them off partitions that
// moved. Commits in the partition callbacks, where franz-go never holds
// them, still go through franz-go.

// commitDirect commits offsets with an OffsetCommit request of its own in
// the member's current generation, and records what was committed. It
// falls back to commit (franz-go's) when the member has no generation yet
// or a topic's ID is unknown (OffsetCommit v10 addresses topics by ID).
// Called with commitMu held.
func (d *driver) commitDirect(ctx context.Context, offsets map[string]map[int32]kgo.EpochOffset) error {
	member, gen := d.cl.GroupMetadata()
	ids := d.topicIDs(ctx)
	if member == "" || gen < 0 || ids == nil {
		return d.commit(ctx, offsets)
	}
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group = d.q.group
	req.Generation = gen
	req.MemberID = member
	names := make(map[[16]byte]string, len(offsets))
	for topic, parts := range offsets {
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = topic
		rt.TopicID = ids[topic]
		names[rt.TopicID] = topic
		for part, eo := range parts {
			rp := kmsg.NewOffsetCommitRequestTopicPartition()
			rp.Partition = part
			rp.Offset = eo.Offset
			rp.LeaderEpoch = eo.Epoch
			rp.Metadata = &req.MemberID
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, d.cl)
	if err != nil {
		return fmt.Errorf("kafka: commit: %w", err)
	}
	var rerr error
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, t := range resp.Topics {
		topic := t.Topic
		if topic == "" {
			topic = names[t.TopicID]
		}
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				if rerr == nil {
					rerr = fmt.Errorf("kafka: commit %s[%d]: %w", topic, p.Partition, err)
				}
				continue
			}
			if ps := d.parts[tp{topic, p.Partition}]; ps != nil {
				ps.sent = offsets[topic][p.Partition].Offset
			}
		}
	}
	return rerr
}

// topicIDs returns the IDs of the main and retry topics, listed once (nil
// when they cannot be listed or a broker does not report IDs). Called with
// commitMu held.
func (d *driver) topicIDs(ctx context.Context) map[string][16]byte {
	if d.ids != nil {
		return d.ids
	}
	tds, err := d.q.adm.ListTopics(ctx, d.q.topics(false)...)
	if err != nil {
		return nil
	}
	ids := make(map[string][16]byte, len(tds))
	for _, td := range tds.Sorted() {
		if td.Err != nil || td.ID == ([16]byte{}) {
			return nil
		}
		ids[td.Topic] = td.ID
	}
	d.ids = ids
	return ids
}
