package kafka

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/queue"
)

// TestNewValidation: bad config and options fail New with an error naming
// the field.
func TestNewValidation(t *testing.T) {
	b := []string{"127.0.0.1:1"}
	tests := []struct {
		name string
		cfg  Config
		qn   string
		opts []queue.Option
		want string
	}{
		{"no brokers", Config{}, "q", nil, "Config.Brokers"},
		{"empty broker", Config{Brokers: []string{""}}, "q", nil, "Config.Brokers[0]"},
		{"partitions", Config{Brokers: b, Partitions: -1}, "q", nil, "Config.Partitions"},
		{"replication", Config{Brokers: b, ReplicationFactor: -2}, "q", nil, "Config.ReplicationFactor"},
		{"tier <= 0", Config{Brokers: b, RetryTopics: []time.Duration{0}}, "q", nil, "Config.RetryTopics[0]"},
		{"tier not ascending", Config{Brokers: b, RetryTopics: []time.Duration{time.Minute, time.Second}}, "q", nil, "strictly ascending"},
		{"tier sub-ms", Config{Brokers: b, RetryTopics: []time.Duration{1500 * time.Microsecond}}, "q", nil, "whole number of milliseconds"},
		{"revoke wait", Config{Brokers: b, RebalanceTimeout: time.Second, RevokeWait: 2 * time.Second}, "q", nil, "Config.RevokeWait"},
		{"heartbeat", Config{Brokers: b, SessionTimeout: time.Second, HeartbeatInterval: time.Second}, "q", nil, "Config.HeartbeatInterval"},
		{"commit interval", Config{Brokers: b, CommitInterval: -1}, "q", nil, "Config.CommitInterval"},
		{"delayed buffer", Config{Brokers: b, DelayedBuffer: -1}, "q", nil, "Config.DelayedBuffer"},
		{"empty name", Config{Brokers: b}, "", nil, "name"},
		{"bad name", Config{Brokers: b}, "a:b", nil, "topic rules"},
		{"MaxLen", Config{Brokers: b}, "q", []queue.Option{queue.MaxLen(10)}, "MaxLen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := New(ctx, tt.cfg, tt.qn, tt.opts...)
			require.ErrorContains(t, err, tt.want)
		})
	}
	_, err := New(context.Background(), Config{Brokers: b}, "q", queue.MaxLen(10))
	require.ErrorIs(t, err, queue.ErrUnsupported)

	// An unreachable broker fails New by its ctx.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = New(ctx, Config{Brokers: b}, "q")
	require.Error(t, err)

	// A reserved header is refused.
	q := newTestQueue(t, testConfig(testBrokers(t)), "cfg")
	_, err = q.Publish(context.Background(), []byte("x"), queue.WithHeaders(map[string]string{headerID: "forged"}))
	require.ErrorContains(t, err, "reserved")
}

// TestDeleteUnconsumed: Delete succeeds on a queue no consumer ever read
// (its group does not exist) and removes its topics.
func TestDeleteUnconsumed(t *testing.T) {
	cfg := testConfig(testBrokers(t))
	ctx := context.Background()
	q, err := New(ctx, cfg, randomName("outrigger-test-del-"))
	require.NoError(t, err)
	defer q.Close()
	_, err = q.Publish(ctx, []byte("x"))
	require.NoError(t, err)
	require.NoError(t, q.Delete(ctx))
	topics, err := q.adm.ListTopics(ctx, q.Topics()...)
	require.NoError(t, err)
	var left []string
	for _, td := range topics.Sorted() {
		if td.Err == nil {
			left = append(left, td.Topic)
		}
	}
	require.Empty(t, left, "got topics %v after Delete, want none", left)
}
