package main

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// stagedQuote is a row of live_outbox: a stored quote waiting to be
// published to the live stream.
type stagedQuote struct {
	quote
	staged time.Time // when it was staged (before any claim)
}

// insertQuotesStaged stores qs like insertQuotes and, in the same
// transaction, stages the quotes that were new in live_outbox under owner.
// It returns the new quotes: a quote whose ID was already stored (a
// redelivery) is neither stored nor staged again, so each stored quote is
// staged exactly once.
func (s *database) insertQuotesStaged(ctx context.Context, qs []quote, owner string, now time.Time) ([]quote, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	byID := make(map[string]int, len(qs))
	for i, q := range qs {
		byID[q.ID] = i
	}
	fresh := make([]quote, 0, len(qs))
	for lo, hi := range valuesChunks(4, len(qs)) {
		query, args := s.valuesStatement("INSERT INTO quotes (id, symbol, price, ts_us)", 4, lo, hi, func(i int) []any {
			q := qs[i]
			return []any{q.ID, q.Symbol, q.Price, q.TS.UnixMicro()}
		}, "ON CONFLICT (id) DO NOTHING RETURNING id")
		s.statements.Add(1)
		rows, err := tx.QueryContext(ctx, query, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, err
			}
			if i, ok := byID[id]; ok {
				fresh = append(fresh, qs[i])
				delete(byID, id) // a batch may carry a quote twice
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	if len(fresh) > 0 {
		_, err = s.insertValuesTx(ctx, tx, "INSERT INTO live_outbox (id, symbol, price, ts_us, owner, staged_us)", 6, len(fresh), func(i int) []any {
			q := fresh[i]
			return []any{q.ID, q.Symbol, q.Price, q.TS.UnixMicro(), owner, now.UnixMicro()}
		}, "")
		if err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return fresh, nil
}

// insertValuesTx is insertValues inside tx.
func (s *database) insertValuesTx(ctx context.Context, tx *sql.Tx, head string, ncols, n int, row func(i int) []any, tail string) (int64, error) {
	var total int64
	for lo, hi := range valuesChunks(ncols, n) {
		query, args := s.valuesStatement(head, ncols, lo, hi, row, tail)
		s.statements.Add(1)
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return total, err
		}
		n, _ := res.RowsAffected()
		total += n
	}
	return total, nil
}

// unstage deletes published quotes from live_outbox.
func (s *database) unstage(ctx context.Context, ids []string) error {
	return s.execIDs(ctx, s.db, `DELETE FROM live_outbox WHERE id IN (%s)`, nil, ids)
}

// execIDs runs query, whose %s is replaced by a list of placeholders, with
// args followed by a chunk of ids, for every chunk.
func (s *database) execIDs(ctx context.Context, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, query string, args []any, ids []string) error {
	const per = 1000
	for lo := 0; lo < len(ids); lo += per {
		hi := min(len(ids), lo+per)
		ph := make([]string, hi-lo)
		all := append(make([]any, 0, len(args)+hi-lo), args...)
		for i := range ph {
			ph[i] = s.d.placeholder(len(args) + i + 1)
			all = append(all, ids[lo+i])
		}
		s.statements.Add(1)
		if _, err := db.ExecContext(ctx, fmt.Sprintf(query, strings.Join(ph, ",")), all...); err != nil {
			return err
		}
	}
	return nil
}

// claimStaged takes over, for owner, at most limit rows of live_outbox
// staged before cutoff (left by a replica that died, or could not publish,
// between storing and publishing): they are re-stamped with now, so no
// other claim takes them for another lease. It returns them with the time
// they were first staged.
func (s *database) claimStaged(ctx context.Context, owner string, cutoff, now time.Time, limit int) ([]stagedQuote, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	lock := ""
	if s.d.name == "postgres" {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	s.statements.Add(1)
	rows, err := tx.QueryContext(ctx, `SELECT id, symbol, price, ts_us, staged_us FROM live_outbox WHERE staged_us < `+s.d.placeholder(1)+
		` ORDER BY staged_us LIMIT `+s.d.placeholder(2)+lock, cutoff.UnixMicro(), limit)
	if err != nil {
		return nil, err
	}
	var out []stagedQuote
	for rows.Next() {
		var q stagedQuote
		var ts, staged int64
		if err := rows.Scan(&q.ID, &q.Symbol, &q.Price, &ts, &staged); err != nil {
			rows.Close()
			return nil, err
		}
		q.TS, q.staged = time.UnixMicro(ts).UTC(), time.UnixMicro(staged)
		out = append(out, q)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	ids := make([]string, len(out))
	for i, q := range out {
		ids[i] = q.ID
	}
	err = s.execIDs(ctx, tx, `UPDATE live_outbox SET owner = `+s.d.placeholder(1)+`, staged_us = `+s.d.placeholder(2)+` WHERE id IN (%s)`,
		[]any{owner, now.UnixMicro()}, ids)
	if err != nil {
		return nil, err
	}
	return out, tx.Commit()
}

// countStaged returns the rows waiting in live_outbox.
func (s *database) countStaged(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM live_outbox`).Scan(&n)
	return n, err
}
