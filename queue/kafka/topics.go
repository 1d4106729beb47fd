package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// deadTopicConfigs keep dead letters until they are requeued: the topic is
// compacted (a requeue writes a tombstone for the message ID) and never
// expires by time.
var deadTopicConfigs = map[string]*string{
	"cleanup.policy": kadm.StringPtr("compact"),
	"retention.ms":   kadm.StringPtr("-1"),
}

// ensureTopics creates the queue's topics, or with Config.NoCreateTopics
// checks that they exist.
func (q *Queue) ensureTopics(ctx context.Context) error {
	if q.cfg.NoCreateTopics {
		return q.checkTopics(ctx)
	}
	var configs map[string]*string
	if len(q.cfg.TopicConfigs) > 0 {
		configs = make(map[string]*string, len(q.cfg.TopicConfigs))
		for k, v := range q.cfg.TopicConfigs {
			configs[k] = kadm.StringPtr(v)
		}
	}
	rf := int16(q.cfg.ReplicationFactor)
	resp, err := q.adm.CreateTopics(ctx, int32(q.cfg.Partitions), rf, configs, q.topics(false)...)
	if err != nil {
		return fmt.Errorf("kafka: create topics: %w", err)
	}
	dresp, err := q.adm.CreateTopics(ctx, 1, rf, deadTopicConfigs, q.dead)
	if err != nil {
		return fmt.Errorf("kafka: create topic %q: %w", q.dead, err)
	}
	for _, rs := range []kadm.CreateTopicResponses{resp, dresp} {
		for _, r := range rs.Sorted() {
			if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
				msg := ""
				if r.ErrMessage != "" {
					msg = " (" + r.ErrMessage + ")"
				}
				return fmt.Errorf("kafka: create topic %q: %w%s", r.Topic, r.Err, msg)
			}
		}
	}
	return nil
}

// checkTopics fails unless every topic of the queue exists.
func (q *Queue) checkTopics(ctx context.Context) error {
	md, err := q.adm.ListTopics(ctx, q.topics(true)...)
	if err != nil {
		return fmt.Errorf("kafka: list topics: %w", err)
	}
	var missing []string
	for _, t := range q.topics(true) {
		d, ok := md[t]
		if !ok || d.Err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("kafka: Config.NoCreateTopics is set and these topics do not exist: %s", strings.Join(missing, ", "))
	}
	return nil
}

// Delete deletes the queue's topics, with every message in them, and its
// consumer group's committed offsets. Stop the consumers first (a running
// consumer group cannot be deleted). Use it to remove a queue for good, and
// in tests.
func (q *Queue) Delete(ctx context.Context) error {
	if q.isClosed() {
		return errClosed
	}
	resp, err := q.adm.DeleteTopics(ctx, q.topics(true)...)
	if err != nil {
		return fmt.Errorf("kafka: delete topics: %w", err)
	}
	for _, r := range resp.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
			return fmt.Errorf("kafka: delete topic %q: %w", r.Topic, r.Err)
		}
	}
	gr, err := q.adm.DeleteGroup(ctx, q.group)
	if err == nil {
		err = gr.Err
	}
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) { // no consumer ever committed
		return fmt.Errorf("kafka: delete group %q: %w", q.group, err)
	}
	return nil
}
