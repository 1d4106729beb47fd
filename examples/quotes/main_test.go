package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestServiceServesQuotesAndShutsDown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	cfg := config{addr: "127.0.0.1:0", feedRate: 1000}
	go func() { done <- run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), ready) }()
	addr := <-ready

	var q quote
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/v1/quotes/acme")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&q) == nil
	}, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, "ACME", q.Symbol)
	require.Positive(t, q.Price)

	for _, tc := range []struct {
		path string
		want int
	}{
		{"/v1/quotes/NOPE", http.StatusNotFound},
		{"/v1/quotes/BAD1", http.StatusBadRequest},
		{"/healthz", http.StatusOK},
	} {
		resp, err := http.Get("http://" + addr + tc.path)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, tc.want, resp.StatusCode, "GET %s", tc.path)
	}

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(15 * time.Second):
		t.Fatal("service did not shut down within 15s")
	}
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{args: nil},
		{args: []string{"-feed-rate", "-1"}, wantErr: "-feed-rate"},
		{args: []string{"-feed-count", "-5"}, wantErr: "-feed-count"},
	}
	for _, tc := range tests {
		_, err := parseConfig(tc.args)
		if tc.wantErr == "" {
			require.NoError(t, err)
		} else {
			require.ErrorContains(t, err, tc.wantErr)
		}
	}
}
