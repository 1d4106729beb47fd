// Package queue is an at-least-once producer/consumer on Redis Streams, with
// retries, dead letters, delays and backpressure, and an in-process backend
// with the same contract. It also holds [Batcher], which turns a stream of
// items into bulk writes.
//
// The scenario it exists for: a service receives bursts of work (answers
// from third parties, webhooks) that must not be written to the database on
// the request path. It publishes each one and returns at once; consumers on
// any replica process them at the pace the database takes, in batches if
// they like, and survive crashes.
//
//	q, err := queue.NewRedis(client, "quotes")
//	id, err := q.Publish(ctx, body)                       // from any goroutine
//	err = q.Consume(ctx, func(ctx context.Context, m *queue.Message) error {
//		return store(ctx, m.Body)                           // nil acks, an error retries
//	}, queue.Concurrency(16))
//
// # What it guarantees
//
//   - At least once, nothing lost: a message is removed only after its
//     handler returned nil and the acknowledgement reached Redis. A consumer
//     that dies leaves its messages pending; another consumer reclaims them
//     after [VisibilityTimeout] (XAUTOCLAIM, walking the whole pending list),
//     and a consumer restarting under the same [ConsumerName] takes its own
//     back at once. Live consumers renew the lease of long-running handlers,
//     so their work is not run twice. Acknowledged entries are deleted (only
//     entries the group has delivered and no longer has pending are ever
//     trimmed), so an unacknowledged message is never dropped to make room.
//   - Duplicates are possible (a consumer dying between the handler's end
//     and the acknowledgement), so handlers should be idempotent; the crash
//     test measures how many (well under 1% with consumers SIGKILLed every
//     few hundred milliseconds).
//   - A failed message (an error or a panic) is retried after [Backoff],
//     with Message.Attempt counting up; after [MaxAttempts] it moves, in the
//     same atomic script, to a dead-letter stream with its last error. An
//     error wrapped with [Permanent] dead-letters at once. A message that
//     kills or stalls its consumers instead of failing is dead-lettered when
//     it is reclaimed after more than MaxAttempts deliveries, so it cannot
//     take the consumers down forever. [Redis.DeadLetters] lists dead
//     letters and [Redis.Requeue] replays them.
//   - [WithDelay] messages and retries wait in a sorted set; every consumer
//     runs a mover that brings due ones into the stream (atomic, so any
//     number of replicas may run it).
//   - A client retry never duplicates a message: go-redis re-sends a command
//     whose reply timed out, and Redis drops the repeat because every
//     publish call carries an ID it remembers for [PublishRetryWindow].
//     [WithID] extends this to retries by the application, [WithDedupKey]
//     drops a second message with the same key within a window and says so
//     with [ErrDuplicate].
//   - [MaxLen] bounds the backlog: Publish returns [ErrFull], or waits for
//     room with [BlockWhenFull].
//   - Cancelling Consume's ctx stops fetching at once (no read starts after
//     the cancel is seen, and a blocking read in progress ends within a
//     round trip: the consumer also waits on its own wake stream, to which
//     the cancel adds an entry), hands messages fetched but not started back
//     to the queue, waits for running handlers up to [ShutdownTimeout], and
//     acknowledges what finished. An idle consumer stops in about a
//     millisecond on loopback (BenchmarkConsumeCancel). A clean stop logs
//     nothing above DEBUG.
//   - Redis restarts: producers get errors (never a silent drop); consumers
//     keep retrying, recreate their consumer group if Redis came back empty,
//     and carry on. Consume returns only when its ctx is done. A read whose
//     reply was lost (Redis stopped after serving it, or the connection
//     broke and go-redis sent it again) leaves entries pending on the live
//     consumer that it never received: after a failed read, after a read
//     during which the client opened a connection, and every reclaim period
//     (VisibilityTimeout/8, at most 5 s), the consumer takes back its own
//     pending entries that it is not handling, so they come again as soon
//     as Redis answers rather than after VisibilityTimeout.
//
// # Throughput
//
// Concurrent Publish calls are coalesced into shared pipelines: each call
// returns once Redis holds its message, with its own ID or error, but many
// calls share one round trip and one script call. A message published
// without WithID, a dedup key, a delay or headers (and without MaxLen) is
// stored as its body alone, and its stream entry ID ("1733616000000-3") is
// its ID; the others carry an ID of their own. Consumers read with COUNT
// = [Prefetch] and acknowledge in batches, never before the handler
// finished. On the same Redis this is about ten times asynq's rate for
// publish-and-process of small messages; see bench/queue/RESULTS.md.
//
// # What it does not do
//
// Messages are not ordered across consumers or retries. On Redis, durability is Redis's: with no persistence or an
// asynchronous replica, a failover or restart can lose acknowledged
// publishes. [WaitReplicas] narrows the failover window (a publish is
// acknowledged only once replicas have it), and min-replicas-to-write on
// the Redis side makes a stale primary refuse publishes; measured figures
// per fault are in RELIABILITY.md. All keys of a queue share one hash tag, so one queue lives on
// one Redis Cluster node; spread load over several queues.
//
// # Redis layout
//
// See [Redis] for the keys. Every script is in scripts/*.lua with its KEYS
// and ARGV, its replies and its error replies documented, and the test of
// each of its branches named. A reply of another shape than documented
// means a bug, as a script error or WRONGTYPE does, not an unavailable
// Redis: it is returned (or ends Consume, or is logged once at Error level
// by background work), counted in the queue's Counters.Invalid, and never
// read as zeros.
//
// # Inspecting and operating
//
// [NewInspector] reads and operates the queues under a prefix from any
// process (the console package and the outrigger command use it):
// [Inspector.Queues] lists them with their counts, oldest age, consumers
// and throughput; [Inspector.History] returns per-minute counts of the last
// two hours, which every publish and settle pipeline records in Redis in
// the same round trip (p{name}:m:<minute>); [Inspector.Messages] pages
// through messages by state and filters dead letters by error substring in
// Redis; [Inspector.Requeue] and [Inspector.Delete] act on dead letters by
// ID or by filter in bounded batches and return a count;
// [Inspector.Pause] stops consumption on every replica (each Consume call
// checks the flag p{name}:paused before it fetches, at most every quarter
// second) until [Inspector.Resume].
package queue
