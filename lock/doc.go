// Package lock is a distributed lock with fencing tokens, auto-refresh,
// lost-lock signalling, direct hand-off to waiters and Redlock quorum, on
// Redis or in-process.
//
// Three Lockers share one contract and return the same *Lock:
//
//	l, err := lock.New(client, lock.WithPrefix("myapp:lock:"))   // one Redis deployment (node, Sentinel, Cluster)
//	l, err := lock.NewRedlock(clients)                           // a majority of N independent nodes
//	l := lock.NewLocal()                                         // in-process
//
//	err = l.Do(ctx, "report", 10*time.Second, func(ctx context.Context, token uint64) error {
//		// ctx is cancelled the moment the lock is lost; pass token to the
//		// resource so that it can reject a stale holder (see Fence).
//		return writeReport(ctx, token)
//	})
//
// # How it works on Redis
//
// A lock on key k is the string <prefix>{k} holding a random owner value
// with a PX expiry; the last token issued is kept in <prefix>{k}:fence.
// Acquire is one script (one round trip): SET NX PX plus a fencing token;
// Release is one compare-and-delete script, Refresh one compare-and-pexpire
// script that never re-creates an expired key. The scripts run with EVALSHA
// and are loaded again after a NOSCRIPT (EVAL if that fails), so they
// survive SCRIPT FLUSH, restarts and failovers. All keys of a lock share the hash tag {k}, hence one Cluster
// slot. An acquire whose owner value is already in the key (go-redis re-sent
// the script after a timeout) counts as acquired, with a new token, so a
// client retry never strands a lock until its TTL; a TryAcquire that fails
// after its script may have run releases what it may have taken.
//
// A waiting Acquire queues itself in Redis in the same round trip and blocks
// (BLPOP, one pooled connection per blocked waiter: size PoolSize for the
// waiters you expect) on a wake list of its own. By default Release grants the lock directly to
// the longest-waiting live waiter (a fresh token, the waiter's TTL) and
// pushes to its list: the waiter holds the lock without another round trip.
// Waiters carry a deadline: a release skips waiters that vanished, a waiter
// that gives up removes itself (passing on a lock granted meanwhile), and a
// lock granted to a waiter that died expires after its TTL. Polling with
// capped, jittered exponential backoff (WithBackoff) is only the fallback.
//
// Goroutines of one RedisLocker that Acquire the same key queue in-process
// behind one of them, which alone waits in Redis (WithLocalHandoff). A
// release passes the lock to the next of them without any round trip — up
// to DefaultLocalHandoff times in a row, while the lock still has 90% of
// its validity, and with the next of the tokens reserved when the lock was
// acquired from Redis — and then through Redis, which grants it to the
// longest-waiting waiter of another process if there is one. Concurrent
// script calls of one Locker share round trips: while pipelines are in
// flight, calls queue and go out together in the next one.
//
// # What the holder knows
//
// Every Lock has a local monotonic deadline: the time the acquire was sent
// + ttl×(1−drift) − margin (WithDrift, WithMargin), moved forward by each
// successful Refresh from the time that refresh was sent. Lost() closes at
// the deadline unless a refresh that started before it has succeeded by
// then (a confirmation arriving later does not reopen it: the lock is then
// treated as lost and should be released), at once when a refresh or
// release finds the lock gone, and on Release. The deadline falls before
// the store can expire the lock, so the holder learns of a loss before
// anyone else can take the lock — provided the process is not paused
// between checking Lost and acting, which is why fencing tokens exist.
// Do refreshes every ttl/3, cancels fn's context (cause ErrLockLost) when
// the lock is lost, releases when fn returns and turns a panic in fn into
// an error. WithMaxHold caps how long Do and WithAutoRefresh keep a lock.
//
// # When Redis fails
//
// Errors are sorted by internal/rediserr. Only errors that mean Redis cannot
// answer now take a degrade path: network errors and timeouts (connection
// refused or reset, EOF, i/o timeout, a pool timeout, unreachable
// sentinels), the replies LOADING, BUSY, CLUSTERDOWN, TRYAGAIN, MASTERDOWN,
// READONLY, NOREPLICAS, MISCONF, OOM, "max number of clients reached" and a
// MOVED or ASK left after the client's redirects. Those are absorbed where
// the lock can go on without the answer, counted in Stats.Errors and logged
// at Warn level: a waiter whose wake-up read failed polls again (backoff),
// an auto-refresh (WithAutoRefresh, Do) that failed is retried every
// ttl/12 until its local deadline (then Lost closes; Err names the last
// error), a Redlock majority answers without the nodes that did not (a
// node's own WithNodeTimeout counts as not answering), and a failed
// clean-up (leaving the wait queue, undoing a failed try) is left to the
// expiry of what it would have removed. Elsewhere they are returned,
// wrapped: Acquire, TryAcquire, Refresh, Release and TTL return them as
// "lock: acquire "k": …" (after a failed Release the lock is still held and
// Release may be retried).
//
// An answer that means the lock's script, the key's data or the reply is
// wrong (ERR user_script…, ERR Error running script, WRONGTYPE — a key of
// another type under the prefix —, an unknown command, NOAUTH or NOPERM, a
// reply or wake-up message of the wrong shape) is never absorbed nor
// retried, and is never taken for Redis being down: the operation returns
// it, wrapped the same way (a waiter leaves the queue first; a Redlock
// operation fails even if a majority answered, after undoing its grants);
// an auto-refresh it refuses closes Lost at once, and Err (and the cause of
// Do's context, and Do's error) wraps it with ErrLockLost. Each is counted
// in Stats.Invalid and logged once per operation and kind at Error level
// through WithLogger. Such an error is a bug or bad data to fix: a
// degrade path that absorbed it would hide it for as long as nobody looks.
//
// # When a Redis lock is safe, and when it is not
//
// A lease lock cannot by itself stop a holder that is paused (GC, swapping,
// a SIGSTOP, a slow network) past its TTL from acting afterwards as if it
// still held the lock: by the time it resumes, another holder may have the
// lock, and nothing in the paused process could have noticed in between.
// Martin Kleppmann's argument ("How to do distributed locking", 2016) is that
// such locks are safe for correctness only when the protected resource
// itself rejects stale holders. That is what fencing tokens are for: every
// grant carries a token greater than every earlier token for the key; the
// resource remembers the highest token it has seen and refuses older ones
// (Fence, or a conditional write in your own store). Without fencing, use
// the lock for efficiency (avoiding duplicate work), not for correctness.
//
// A single Redis deployment with replicas is not strongly consistent: a
// primary can acknowledge an acquire and fail before replicating it, and the
// promoted replica then grants the same lock again. WithWaitReplicas makes
// an acquire wait until n replicas acknowledged it (failing the acquire
// otherwise), which narrows that window; it does not close it — WAIT does
// not turn Redis into a consensus system: an acknowledged write can still
// be lost if a replica that did not acknowledge it is promoted, or on a
// restart without an fsync'd AOF. Fencing tokens remain the safety net: they
// are derived from Redis TIME as well as a counter, so a new primary or a
// restarted server keeps issuing larger tokens.
//
// Redlock (NewRedlock) asks N independent nodes and holds the lock when a
// majority granted it within ttl − elapsed − ttl×drift − margin. It
// tolerates the loss of a minority of nodes without a failover window, but
// it relies on timing: bounded clock drift between nodes and client,
// bounded network delay and process pauses, and nodes that keep their data
// across restarts (or stay down for at least a TTL after losing it).
// Violate those and two clients can both believe they hold the lock; again
// only fencing at the resource makes that harmless.
//
// # What tokens guarantee
//
// Single node, Cluster, Sentinel (New): a token is max(last+1, Redis TIME in
// µs), where last is a per-key counter without expiry. Tokens are strictly
// increasing per key across all holders and processes while the counter
// survives, and still increasing after a restart or failover that lost it,
// as long as the server's clock does not go backwards (tokens are then at
// least the current time in µs, and earlier ones at most the time they were
// issued, plus the few tokens reserved for in-process hand-offs). A lock
// acquired through Acquire reserves the next WithLocalHandoff tokens (the
// counter is set past them), which its Locker hands to in-process
// successors: those are still greater than every token issued before and
// smaller than every token issued after, by any process.
//
// Redlock (NewRedlock): every node issues its own token the same way, and
// the lock's token is the largest among the nodes that granted it. Refresh
// and Release raise every reachable node's counter to that token. Tokens of
// successive holders are strictly increasing when (a) the previous holder
// refreshed or released on a majority (its token is then on a majority of
// counters, which every later majority intersects), or (b) otherwise, when the nodes' clocks differ by
// less than the TTL (a later holder is granted after the earlier lock
// expired, and its token is at least its node's current time). If a node
// loses its counter and its clock is behind, only (a) holds.
//
// In-process (NewLocal): max(last+1, wall clock in µs) from one counter per
// LocalLocker: strictly increasing.
//
// # Concurrency
//
// Lockers and Locks are safe for concurrent use. A Lock's methods never
// panic after Release; they return ErrReleased (which wraps ErrLockLost).
// Auto-refresh goroutines are stopped by Release, by loss of the lock, and
// when Do returns.
//
// # Inspecting and force release
//
// [NewInspector] lists the locks held under a prefix with their owner
// (owner values start with the holder's host and PID), last fencing token,
// remaining TTL and waiters. [Inspector.ForceRelease] takes a lock from its
// holder, fenced: the fencing counter moves past every token issued (the
// revocation token), the next waiter gets the lock with a newer token, the
// holder's next refresh or release fails with [ErrLockLost], and with
// [AdvanceFence] a [Fence] refuses the old holder's token at once.
package lock
