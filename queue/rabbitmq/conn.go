package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/outrigger-dev/outrigger/queue"
)

// connManager owns the AMQP connection: it dials, watches for the
// connection's close and redials with capped exponential backoff and full
// jitter until it is stopped. Safe for concurrent use.
type connManager struct {
	url      string
	amqpCfg  amqp.Config
	min, max time.Duration
	log      *slog.Logger

	mu    sync.Mutex       // protects the fields below
	conn  *amqp.Connection // current connection; nil while down
	up    chan struct{}    // closed while conn is up; replaced when it goes down
	stop  chan struct{}    // closed by close
	done  bool
	drops int64 // connections lost so far

	wg sync.WaitGroup
}

// errStopped is returned by get once the manager is closed.
var errStopped = fmt.Errorf("rabbitmq: %w", queue.ErrClosed)

// newConnManager dials once (so a bad URL or an unreachable broker fails
// New) and then keeps the connection up in the background.
func newConnManager(url string, cfg amqp.Config, minB, maxB time.Duration, log *slog.Logger) (*connManager, error) {
	conn, err := amqp.DialConfig(url, cfg)
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: dial: %w", err)
	}
	m := &connManager{url: url, amqpCfg: cfg, min: minB, max: maxB, log: log, up: make(chan struct{}), stop: make(chan struct{})}
	m.setUp(conn)
	m.wg.Add(1)
	go m.run(conn)
	return m, nil
}

func (m *connManager) setUp(conn *amqp.Connection) {
	m.mu.Lock()
	m.conn = conn
	close(m.up)
	m.mu.Unlock()
}

// run watches the current connection and redials when it closes.
func (m *connManager) run(conn *amqp.Connection) {
	defer m.wg.Done()
	for {
		closed := conn.NotifyClose(make(chan *amqp.Error, 1))
		select {
		case <-m.stop:
			_ = conn.Close()
			return
		case err := <-closed:
			m.mu.Lock()
			m.conn = nil
			m.up = make(chan struct{})
			m.drops++
			m.mu.Unlock()
			m.log.Warn("rabbitmq: connection lost; reconnecting", "err", err)
		}
		var backoff time.Duration
		for {
			c, err := amqp.DialConfig(m.url, m.amqpCfg)
			if err == nil {
				conn = c
				m.setUp(c)
				m.log.Info("rabbitmq: reconnected")
				break
			}
			backoff = min(max(2*backoff, m.min), m.max)
			wait := backoff/2 + rand.N(backoff/2+1) // jitter: [backoff/2, backoff]
			m.log.Warn("rabbitmq: reconnect failed", "err", err, "retry_in", wait)
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-m.stop:
				t.Stop()
				return
			}
		}
	}
}

// get returns the current connection, waiting for one until ctx is done.
func (m *connManager) get(ctx context.Context) (*amqp.Connection, error) {
	for {
		m.mu.Lock()
		conn, up, done := m.conn, m.up, m.done
		m.mu.Unlock()
		if done {
			return nil, errStopped
		}
		if conn != nil && !conn.IsClosed() {
			return conn, nil
		}
		if conn != nil {
			// Closed but not yet noticed by run: wait a moment for it.
			t := time.NewTimer(5 * time.Millisecond)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, fmt.Errorf("rabbitmq: waiting for a connection: %w", ctx.Err())
			}
			continue
		}
		select {
		case <-up:
		case <-m.stop:
			return nil, errStopped
		case <-ctx.Done():
			return nil, fmt.Errorf("rabbitmq: waiting for a connection: %w", ctx.Err())
		}
	}
}

// channel opens a channel on the current connection.
func (m *connManager) channel(ctx context.Context) (*amqp.Channel, error) {
	for {
		conn, err := m.get(ctx)
		if err != nil {
			return nil, err
		}
		ch, err := conn.Channel()
		if err == nil {
			return ch, nil
		}
		if !errors.Is(err, amqp.ErrClosed) {
			return nil, fmt.Errorf("rabbitmq: open channel: %w", err)
		}
		// The connection just died; get waits for the next one.
	}
}

// dropped reports how many connections were lost so far.
func (m *connManager) dropped() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.drops
}

// close stops reconnecting and closes the connection.
func (m *connManager) close() {
	m.mu.Lock()
	if m.done {
		m.mu.Unlock()
		return
	}
	m.done = true
	close(m.stop)
	m.mu.Unlock()
	m.wg.Wait()
}
