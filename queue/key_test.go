package queue_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/queue"
)

func TestWithKey(t *testing.T) {
	tests := []struct {
		name string
		opts []queue.PublishOption
		want string
	}{
		{"none", nil, ""},
		{"key", []queue.PublishOption{queue.WithKey("ACME")}, "ACME"},
		{"last wins", []queue.PublishOption{queue.WithKey("a"), queue.WithKey("b")}, "b"},
		{"empty is no key", []queue.PublishOption{queue.WithKey("")}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, err := queue.ResolvePublishOptions(tt.opts...)
			require.NoError(t, err)
			assert.Equal(t, tt.want, ps.Key)
		})
	}
	// The memory backend accepts a key (and does not order by it).
	q := queue.NewMemory("keys")
	defer q.Close()
	_, err := q.Publish(context.Background(), []byte("x"), queue.WithKey("ACME"))
	require.NoError(t, err)
}
