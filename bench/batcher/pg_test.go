// Package batcherbench is the headline benchmark of queue.Batcher: inserting
// rows into PostgreSQL from concurrent producers one statement per row,
// through the Batcher (COPY or multi-row INSERT per batch), and with a
// hand-written COPY loop that needs no coordination at all (the limit).
package batcherbench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outrigger-dev/outrigger/queue"
)

const (
	producers   = 8         // concurrent producers in every mode
	copyBatch   = 1000      // rows per COPY
	insertBatch = 500       // rows per multi-row INSERT (4 params a row, far below the 65535 limit)
	flushConc   = producers // Batcher FlushConcurrency: as many connections as the other modes use
)

// pgURL is the database the benchmark writes to (loopback only).
func pgURL() string {
	if u := os.Getenv("OUTRIGGER_PG_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// benchRows is the number of rows one benchmark op inserts:
// OUTRIGGER_BATCHER_ROWS, default 5000 so that the -benchtime 1x smoke run
// stays short; the headline figures use 100000.
func benchRows(tb testing.TB) int {
	if s := os.Getenv("OUTRIGGER_BATCHER_ROWS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < producers {
			tb.Fatalf("OUTRIGGER_BATCHER_ROWS=%q: want an integer >= %d", s, producers)
		}
		return n
	}
	return 5000
}

// row is one row of the benchmark table.
type row struct {
	ID       int64
	Producer int32
	Payload  string
	Created  time.Time
}

var columns = []string{"id", "producer", "payload", "created_at"}

// counter is a pgx tracer counting the statements (round trips) a
// connection sends: each Exec/Query and each CopyFrom.
type counter struct{ n atomic.Int64 }

func (c *counter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *counter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *counter) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceCopyFromStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *counter) TraceCopyFromEnd(context.Context, *pgx.Conn, pgx.TraceCopyFromEndData) {}

// env is one benchmark's database: a uniquely named table, dropped at the
// end, and connections that count their round trips.
type env struct {
	table string
	admin *pgx.Conn
	trips *counter
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, pgURL())
	if err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatalf("PostgreSQL unreachable at %s (CI is set, so this fails): %v", pgURL(), err)
		}
		tb.Skipf("PostgreSQL unreachable at %s, skipping: %v", pgURL(), err)
	}
	e := &env{
		table: fmt.Sprintf("batcherbench_%d_%d", os.Getpid(), time.Now().UnixNano()),
		admin: admin,
		trips: &counter{},
	}
	_, err = admin.Exec(ctx, `CREATE TABLE `+e.table+` (
		id bigint PRIMARY KEY,
		producer int NOT NULL,
		payload text NOT NULL,
		created_at timestamptz NOT NULL)`)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := admin.Exec(ctx, `DROP TABLE IF EXISTS `+e.table); err != nil {
			tb.Errorf("drop %s: %v", e.table, err)
		}
		_ = admin.Close(ctx)
	})
	return e
}

// conns opens n counted connections, closed at the end.
func (e *env) conns(tb testing.TB, n int) []*pgx.Conn {
	tb.Helper()
	cfg, err := pgx.ParseConfig(pgURL())
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Tracer = e.trips
	var cs []*pgx.Conn
	for range n {
		c, err := pgx.ConnectConfig(context.Background(), cfg)
		if err != nil {
			tb.Fatal(err)
		}
		cs = append(cs, c)
	}
	tb.Cleanup(func() {
		for _, c := range cs {
			_ = c.Close(context.Background())
		}
	})
	return cs
}

func (e *env) count(tb testing.TB) (n, sumID int64) {
	tb.Helper()
	err := e.admin.QueryRow(context.Background(),
		`SELECT count(*), coalesce(sum(id), 0) FROM `+e.table).Scan(&n, &sumID)
	if err != nil {
		tb.Fatal(err)
	}
	return n, sumID
}

// connPool hands out connections to the Batcher's concurrent flushes.
type connPool chan *pgx.Conn

func newConnPool(cs []*pgx.Conn) connPool {
	p := make(connPool, len(cs))
	for _, c := range cs {
		p <- c
	}
	return p
}

func (p connPool) with(ctx context.Context, fn func(*pgx.Conn) error) error {
	select {
	case c := <-p:
		defer func() { p <- c }()
		return fn(c)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// copyRows is a pgx.CopyFromSource over a slice of rows.
type copyRows struct {
	rows []row
	i    int
	vals [4]any
}

func (s *copyRows) Next() bool { s.i++; return s.i <= len(s.rows) }
func (s *copyRows) Values() ([]any, error) {
	r := &s.rows[s.i-1]
	s.vals = [4]any{r.ID, r.Producer, r.Payload, r.Created}
	return s.vals[:], nil
}
func (s *copyRows) Err() error { return nil }

func copyFlush(table string) func(*pgx.Conn, context.Context, []row) error {
	return func(c *pgx.Conn, ctx context.Context, rows []row) error {
		n, err := c.CopyFrom(ctx, pgx.Identifier{table}, columns, &copyRows{rows: rows})
		if err == nil && n != int64(len(rows)) {
			err = fmt.Errorf("COPY wrote %d rows, want %d", n, len(rows))
		}
		return err
	}
}

// insertFlush writes rows with one multi-row INSERT.
func insertFlush(table string) func(*pgx.Conn, context.Context, []row) error {
	var mu sync.Mutex
	sqls := map[int]string{} // statement per row count
	sqlFor := func(n int) string {
		mu.Lock()
		defer mu.Unlock()
		if s, ok := sqls[n]; ok {
			return s
		}
		var sb strings.Builder
		sb.WriteString("INSERT INTO " + table + " (id, producer, payload, created_at) VALUES ")
		for i := range n {
			if i > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, "($%d,$%d,$%d,$%d)", 4*i+1, 4*i+2, 4*i+3, 4*i+4)
		}
		sqls[n] = sb.String()
		return sqls[n]
	}
	return func(c *pgx.Conn, ctx context.Context, rows []row) error {
		args := make([]any, 0, 4*len(rows))
		for _, r := range rows {
			args = append(args, r.ID, r.Producer, r.Payload, r.Created)
		}
		_, err := c.Exec(ctx, sqlFor(len(rows)), args...)
		return err
	}
}

// mode inserts total rows, ids from base, from the given number of
// producers; it returns once every row is committed.
type mode struct {
	name string
	// setup opens what the mode needs and returns the insert function.
	setup func(tb testing.TB, e *env) func(ctx context.Context, base int64, total int) error
}

// produce runs producers goroutines that each make their share of rows and
// pass them to put; it returns the first error.
func produce(ctx context.Context, base int64, total int, put func(p int, r row) error, done func(p int) error) error {
	var wg sync.WaitGroup
	errs := make([]error, producers)
	now := time.Now()
	for p := range producers {
		wg.Go(func() {
			for i := p; i < total; i += producers {
				r := row{ID: base + int64(i), Producer: int32(p), Payload: "payload of row " + strconv.Itoa(i), Created: now}
				if err := put(p, r); err != nil {
					errs[p] = err
					return
				}
			}
			if done != nil {
				errs[p] = done(p)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

var modes = []mode{
	{
		// (a) one INSERT per row, each producer on its own connection.
		name: "row-insert",
		setup: func(tb testing.TB, e *env) func(context.Context, int64, int) error {
			cs := e.conns(tb, producers)
			sql := "INSERT INTO " + e.table + " (id, producer, payload, created_at) VALUES ($1,$2,$3,$4)"
			return func(ctx context.Context, base int64, total int) error {
				return produce(ctx, base, total, func(p int, r row) error {
					_, err := cs[p].Exec(ctx, sql, r.ID, r.Producer, r.Payload, r.Created)
					return err
				}, nil)
			}
		},
	},
	{
		// (b) producers Add to one Batcher that flushes with COPY.
		name: "batcher-copy",
		setup: func(tb testing.TB, e *env) func(context.Context, int64, int) error {
			return batcherMode(tb, e, copyFlush(e.table), copyBatch)
		},
	},
	{
		// (b) producers Add to one Batcher that flushes with multi-row INSERT.
		name: "batcher-insert",
		setup: func(tb testing.TB, e *env) func(context.Context, int64, int) error {
			return batcherMode(tb, e, insertFlush(e.table), insertBatch)
		},
	},
	{
		// (c) the limit: each producer buffers its own rows and COPYs them on
		// its own connection, with no shared structure at all.
		name: "copy-loop",
		setup: func(tb testing.TB, e *env) func(context.Context, int64, int) error {
			cs := e.conns(tb, producers)
			flush := copyFlush(e.table)
			return func(ctx context.Context, base int64, total int) error {
				bufs := make([][]row, producers)
				return produce(ctx, base, total, func(p int, r row) error {
					bufs[p] = append(bufs[p], r)
					if len(bufs[p]) < copyBatch {
						return nil
					}
					err := flush(cs[p], ctx, bufs[p])
					bufs[p] = bufs[p][:0]
					return err
				}, func(p int) error {
					if len(bufs[p]) == 0 {
						return nil
					}
					return flush(cs[p], ctx, bufs[p])
				})
			}
		},
	},
}

// batcherMode builds a Batcher per op (Close is part of the measured time:
// the op ends when every row is committed).
func batcherMode(tb testing.TB, e *env, flush func(*pgx.Conn, context.Context, []row) error, maxItems int) func(context.Context, int64, int) error {
	pool := newConnPool(e.conns(tb, flushConc))
	return func(ctx context.Context, base int64, total int) error {
		var failed atomic.Int64
		b, err := queue.NewBatcher(func(ctx context.Context, rows []row) error {
			return pool.with(ctx, func(c *pgx.Conn) error { return flush(c, ctx, rows) })
		},
			queue.MaxItems(maxItems),
			queue.MaxWait(5*time.Millisecond),
			queue.FlushConcurrency(flushConc),
			queue.Retry(3, func(int) time.Duration { return 10 * time.Millisecond }),
			queue.OnError(func(rows []row, err error) { failed.Add(int64(len(rows))) }),
		)
		if err != nil {
			return err
		}
		perr := produce(ctx, base, total, func(_ int, r row) error { return b.Add(ctx, r) }, nil)
		cerr := b.Close(ctx)
		if n := failed.Load(); n > 0 {
			return fmt.Errorf("%d rows failed", n)
		}
		return errors.Join(perr, cerr)
	}
}

// BenchmarkPostgresInsert inserts OUTRIGGER_BATCHER_ROWS rows per op into a
// fresh table from 8 producers in each mode and reports rows/s and round
// trips (statements sent: one per Exec or CopyFrom).
func BenchmarkPostgresInsert(b *testing.B) {
	for _, m := range modes {
		b.Run("mode="+m.name, func(b *testing.B) {
			e := newEnv(b)
			insert := m.setup(b, e)
			total := benchRows(b)
			ctx := context.Background()
			e.trips.n.Store(0)
			b.ReportAllocs()
			b.ResetTimer()
			var base int64
			for i := 0; i < b.N; i++ {
				if err := insert(ctx, base, total); err != nil {
					b.Fatal(err)
				}
				base += int64(total)
			}
			b.StopTimer()
			rows := int64(total) * int64(b.N)
			if n, _ := e.count(b); n != rows {
				b.Fatalf("table has %d rows, want %d", n, rows)
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(e.trips.n.Load())/float64(b.N), "round-trips/op")
			b.ReportMetric(float64(rows)/float64(e.trips.n.Load()), "rows/round-trip")
		})
	}
}

// TestPostgresInsertModes checks that every mode writes exactly the rows it
// was given (ids and count), on a small run.
func TestPostgresInsertModes(t *testing.T) {
	for _, m := range modes {
		t.Run("mode="+m.name, func(t *testing.T) {
			e := newEnv(t)
			insert := m.setup(t, e)
			const total = 3001
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := insert(ctx, 100, total); err != nil {
				t.Fatal(err)
			}
			n, sum := e.count(t)
			wantSum := int64(total)*100 + int64(total)*(total-1)/2
			if n != total || sum != wantSum {
				t.Fatalf("got %d rows with id sum %d, want %d rows with id sum %d", n, sum, total, wantSum)
			}
		})
	}
}

// syncCallers is the number of concurrent callers in BenchmarkPostgresInsertSync.
const syncCallers = 64

// BenchmarkPostgresInsertSync is the synchronous-write case: 64 callers (say
// request handlers) each insert one row at a time and wait until it is
// committed before the next. Per-row INSERTs share 8 connections; the
// Batcher callers use AddWait, so whatever arrived within MaxWait shares one
// COPY. Reports rows/s and round trips.
func BenchmarkPostgresInsertSync(b *testing.B) {
	for _, name := range []string{"row-insert", "batcher-copy-addwait"} {
		b.Run("mode="+name+"/callers="+strconv.Itoa(syncCallers), func(b *testing.B) {
			e := newEnv(b)
			pool := newConnPool(e.conns(b, producers))
			total := benchRows(b)
			ctx := context.Background()
			var put func(r row) error
			var closeFn func() error
			switch name {
			case "row-insert":
				sql := "INSERT INTO " + e.table + " (id, producer, payload, created_at) VALUES ($1,$2,$3,$4)"
				put = func(r row) error {
					return pool.with(ctx, func(c *pgx.Conn) error {
						_, err := c.Exec(ctx, sql, r.ID, r.Producer, r.Payload, r.Created)
						return err
					})
				}
				closeFn = func() error { return nil }
			default:
				flush := copyFlush(e.table)
				bt, err := queue.NewBatcher(func(ctx context.Context, rows []row) error {
					return pool.with(ctx, func(c *pgx.Conn) error { return flush(c, ctx, rows) })
				}, queue.MaxItems(copyBatch), queue.MaxWait(time.Millisecond), queue.FlushConcurrency(producers))
				if err != nil {
					b.Fatal(err)
				}
				put = func(r row) error { return bt.AddWait(ctx, r) }
				closeFn = func() error {
					st := bt.Stats()
					if st.Batches > 0 {
						b.ReportMetric(st.MeanBatchSize, "rows/batch")
					}
					return bt.Close(ctx)
				}
			}
			e.trips.n.Store(0)
			b.ReportAllocs()
			b.ResetTimer()
			var next atomic.Int64
			var wg sync.WaitGroup
			limit := int64(total) * int64(b.N)
			now := time.Now()
			for p := range syncCallers {
				wg.Go(func() {
					for {
						id := next.Add(1) - 1
						if id >= limit {
							return
						}
						if err := put(row{ID: id, Producer: int32(p), Payload: "payload", Created: now}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			if err := closeFn(); err != nil {
				b.Fatal(err)
			}
			if n, _ := e.count(b); n != limit {
				b.Fatalf("table has %d rows, want %d", n, limit)
			}
			b.ReportMetric(float64(limit)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(e.trips.n.Load())/float64(b.N), "round-trips/op")
		})
	}
}
