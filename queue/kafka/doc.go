// Package kafka is a [queue.Queue] on Apache Kafka, through franz-go
// (github.com/twmb/franz-go: kgo and kadm), for teams whose ingest has
// outgrown one Redis. It passes the same contract suite (queue/queuetest)
// as the Redis, memory and RabbitMQ backends, except for the features under
// "Unsupported" below, so a service moves to Kafka by changing its
// constructor. It lives in its own package so users of the other backends
// never import the Kafka client.
//
//	q, err := kafka.New(ctx, kafka.Config{Brokers: []string{"127.0.0.1:9092"}}, "quotes")
//	id, err := q.Publish(ctx, body, queue.WithKey("ACME"))  // returns once acks=all
//	err = q.Consume(ctx, func(ctx context.Context, m *queue.Message) error {
//		return store(ctx, m.Body)                          // nil acks, an error retries
//	}, queue.Concurrency(16))
//
// # Topics
//
// For a queue named "<prefix><name>" (prefix from queue.WithPrefix), New
// creates (Config.Partitions partitions, Config.ReplicationFactor) or, with
// Config.NoCreateTopics, checks:
//
//   - "<prefix><name>": the main topic.
//   - "<prefix><name>.retry.<tier>" for each delay tier of
//     Config.RetryTopics (default 1s, 10s, 1m, 10m): retries and
//     queue.WithDelay messages.
//   - "<prefix><name>.dead": the dead letters, one partition, compacted and
//     never expired (a requeue writes a tombstone for the message ID).
//
// Every Consume call is one member of the consumer group Config.GroupID
// (default "<prefix><name>") and reads the main and retry topics. Messages
// are Kafka records: the body is the value, queue.WithKey the record key,
// queue.WithHeaders the record headers; the queue's own headers start with
// "x-outrigger-" (on copies only: message ID, attempt, last error, first
// publish time, and the original topic, partition and offset; and the due
// time of a delayed message). A message's ID is where it was first written,
// "<topic>/<partition>/<offset>", known once the broker acknowledged it:
// unique while the topic lives, as Kafka's offsets are (a topic deleted
// and created again starts again at offset 0). Publishing carries no ID in
// the record, so a record costs what the body and key cost.
//
// # What it guarantees
//
//   - At least once, nothing lost. Publish returns after the broker
//     acknowledged the record with acks=all from an idempotent producer, so
//     the client's own retries never write it twice. A consumer commits, for
//     each partition, the offset of the first message whose handler has not
//     finished (never past unfinished work), every Config.CommitInterval, at
//     the start of every rebalance (franz-go calls OnPartitionsRevoked before
//     it rejoins the group, even when nothing is revoked), on every revoke,
//     as soon as a rebalance ends and when Consume ends. The periodic commits
//     go on during a rebalance's join: they are OffsetCommit requests of the
//     queue's own in the member's current generation, which the broker
//     accepts while the group prepares a rebalance and refuses once the
//     partitions may have moved (franz-go's own commits wait until the
//     rebalance ends, while the member keeps handling messages). A consumer
//     that dies leaves its partitions to the group after
//     Config.SessionTimeout; the next owner starts from the committed
//     offset, so messages finished after the last commit run again
//     (handlers must be idempotent): the crash test, killing a consumer every
//     150-450 ms with a 1s session, measured 0.6-1.7 % of messages twice on
//     kfake (14-55 % before commits went on during joins; see
//     bench/kafka/RESULTS.md). A consumer that stops hands back the messages
//     it had not started, so its partitions' next owner also runs again the
//     later messages of those partitions it had finished (out of offset
//     order, across keys): Kafka commits one offset per partition.
//   - Order per key: messages published with one queue.WithKey key go to one
//     partition and are handled one at a time in publish order; messages
//     with other keys, or none, run concurrently (queue.Concurrency) within
//     and across partitions. Only a message that failed loses its place: it
//     is retried from its retry topic while the messages behind it go on.
//   - Retries without blocking the partition: a failed message is written to
//     the retry topic of its queue.Backoff delay (the largest tier <= the
//     delay, or the first), with Attempt+1, LastError, its original topic,
//     partition and offset and its due time; once that write is
//     acknowledged its offset counts as finished. Consumers of the retry
//     topics hold each record until its due time (never early; up to
//     Config.DelayedBuffer per tier in memory, past which they pause the
//     tier's topic) while they go on with the rest. After queue.MaxAttempts,
//     or at once for queue.Permanent, the message goes to the dead-letter
//     topic instead. DeadLetters lists dead letters and Requeue republishes
//     them with Attempt 1. queue.WithDelay uses the same tiers. A consumer
//     does not fetch the retry partitions it owns that it has read to their
//     end (they are paused: with four tiers, fetches would otherwise carry
//     five times the main topic's partitions): it lists the retry topics'
//     end offsets every half first tier (20ms-500ms) and resumes a partition
//     whose end moved. A retry or delayed message written in the same
//     process resumes its partition at once; one written by another process
//     may wait that interval more, plus up to the 500ms fetch wait when the
//     main topic is idle.
//   - Rebalances: consumers use franz-go's cooperative-sticky balancer, so a
//     rebalance moves only the partitions that change owner. A consumer
//     losing partitions stops reading them, lets the messages it already
//     fetched from them finish (at most Config.RevokeWait, default half of
//     Config.RebalanceTimeout), commits and only then lets the rebalance go
//     on, so the new owner starts after the old one's work and nothing runs
//     on two live consumers at once. A handler still running after
//     RevokeWait (or when the member is kicked out of the group, for example
//     after a long pause) has its ctx cancelled and its result dropped: the
//     member never commits for, or keeps working on, partitions it gave up,
//     and it answers the rebalance in time instead of being kicked out.
//   - Broker gone: Publish waits while franz-go retries and returns an error
//     when its ctx is done (the message may or may not be written, never
//     silently dropped). Consumers reconnect on their own and resume from
//     the committed offsets; Consume returns only when its ctx is done.
//   - Cancelling Consume stops fetching at once (no read starts after the
//     cancel is seen), hands back the messages not started, waits for
//     running handlers up to queue.ShutdownTimeout, commits and leaves the
//     group (a few milliseconds on kfake). Cancellation and shutdown are
//     logged at Debug only.
//
// # Unsupported
//
//   - queue.WithDedupKey and queue.WithID return queue.ErrUnsupported:
//     Kafka has no deduplication of application IDs (only the producer's
//     own retries are deduplicated).
//   - queue.MaxLen returns queue.ErrUnsupported from New: a topic's backlog
//     cannot be bounded (retention deletes by age or size, not by
//     consumption). BlockWhenFull, PublishRetryWindow, PublishPipelines and
//     WaitReplicas are ignored.
//   - queue.VisibilityTimeout is unused: the group's session timeout detects
//     dead consumers. queue.ConsumerName is added to the client ID. A
//     message that kills its consumers every time is not detected (Kafka
//     counts no deliveries): it is redelivered until a handler returns.
//   - Stats: Ready and Delayed come from the brokers' end offsets and the
//     group's committed offsets; InFlight (and Pending) count only this
//     process's consumers (messages fetched by consumers in other processes
//     count as Ready); OldestAge is the age of this process's oldest
//     message in flight. Dead counts live dead letters by following the
//     dead-letter topic (about 100 bytes of memory per dead letter in a
//     process that calls Stats).
//   - DeadLetters and Requeue read the whole dead-letter topic; two Requeue
//     calls at once may both republish a message.
//
// # Versions and testing
//
// franz-go's kgo v1.22.3 and kadm v1.20.0 are pinned in go.mod together
// with its in-process fake cluster kfake (pseudo-version
// v0.0.0-20260918054303-01f206a7e32c, the kfake commit that builds against
// that kgo; upgrade them together). kfake is used only by the tests.
//
// Every test in this package was run on kfake (an in-process Kafka
// cluster speaking the real protocol on loopback); no Kafka broker can be
// installed on the machines where the project is developed. To run the
// tests that do not need kfake's fault controls against a real cluster,
// point OUTRIGGER_KAFKA_BROKERS at it:
//
//	OUTRIGGER_KAFKA_BROKERS=127.0.0.1:9092 go test ./queue/kafka/
//
// The tests create topics under a random "outrigger-test-<hex>." prefix and
// delete them afterwards; the broker must allow topic creation and
// deletion, and group session timeouts down to 3s
// (group.min.session.timeout.ms).
package kafka
