// Package rabbitmq is a [queue.Queue] on RabbitMQ (AMQP 0-9-1, through
// github.com/rabbitmq/amqp091-go), for teams that already run a broker. It
// passes the same contract suite (queue/queuetest) as the Redis and memory
// backends, except for the features listed under "Unsupported" below. It
// lives in its own package so users of the Redis backend never import the
// AMQP client.
//
//	q, err := rabbitmq.New(ctx, rabbitmq.Config{URL: "amqp://guest:guest@127.0.0.1:5672/"}, "quotes")
//	id, err := q.Publish(ctx, body)         // returns once the broker confirmed it
//	err = q.Consume(ctx, func(ctx context.Context, m *queue.Message) error {
//		return store(ctx, m.Body)             // nil acks, an error retries
//	}, queue.Concurrency(16))
//
// # Broker layout
//
// For a queue named "<prefix><name>" (prefix from queue.WithPrefix):
//
//   - "<prefix><name>": the main queue, durable, quorum (default) or
//     classic ([Config.QueueType]). Messages are published persistent to the
//     default exchange.
//   - "<prefix><name>.dead": the dead-letter queue, same type.
//   - "<prefix><name>.delay.<ms>": one delay queue per delay, declared on
//     first use with x-message-ttl = ms and a dead-letter exchange (the
//     default exchange, routing key = the main queue), so an expired
//     message moves to the main queue. One queue per delay keeps expiry
//     FIFO: a short delay never waits behind a long one. Delays are rounded
//     up to 5 significant bits (at most 1/16 later; 32 queues per doubling
//     at most, so a Backoff with jitter does not make a queue per value); delay queues expire (x-expires) when unused for
//     twice their TTL plus ten minutes, and are redeclared before that while
//     in use. On quorum queues the delay hop is dead-lettered at least once
//     (x-dead-letter-strategy); on classic queues RabbitMQ's dead-lettering
//     is not confirmed internally, so a broker crash during the hop can lose
//     a delayed message.
//
// # What it guarantees
//
//   - Publisher confirms: Publish returns only once the broker confirmed the
//     message. Concurrent publishes share a few confirm-mode channels
//     ([Config.PublishChannels]) and are pipelined; PublishBatch sends all
//     its messages before waiting for their confirms.
//   - Manual acknowledgements after the handler returned nil; basic.qos
//     prefetch = queue.Prefetch. Consume runs on the same engine as the
//     Redis backend: graceful drain, ShutdownTimeout, batch handlers, panic
//     recovery, Permanent errors are identical. A cancelled Consume starts
//     no fetch after the cancel is seen and closes its channel (one broker
//     round trip); a clean stop logs nothing above DEBUG.
//   - Retries with growing backoff: a failed message is republished, with
//     Attempt+1 and LastError, to the delay queue of Backoff(attempt), and
//     the original is acknowledged after that publish was confirmed. After
//     MaxAttempts it goes to the dead-letter queue the same way.
//     DeadLetters lists them and Requeue republishes them with Attempt 1.
//   - WithDelay uses the same delay queues.
//   - Connection loss: the connection is redialed with capped exponential
//     backoff and jitter ([Config.ReconnectMin], [Config.ReconnectMax]);
//     consumers reopen their channel as soon as the connection is back and
//     resume; the broker redelivers every message that was not acknowledged
//     (at least once, so a message whose handler finished just before the
//     loss runs again), within milliseconds of the reconnect. A publish sent
//     but not confirmed fails with [ErrNotConfirmed] (it may or may not be
//     queued); a publish while the broker is unreachable waits for the
//     connection until its ctx is done. Nothing is dropped silently.
//   - On quorum queues, a message delivered more than MaxAttempts times
//     without being settled (its consumers keep crashing, or their
//     connections keep dying) is dead-lettered without running again
//     (x-delivery-count). A graceful shutdown does not count: messages it
//     hands back are republished (confirmed) and acked, not requeued, on
//     quorum queues; only deliveries the broker pushed in the instant
//     between the stop and the channel's close are requeued and counted.
//     Classic queues do not count deliveries (such a message is redelivered
//     until it succeeds or fails).
//
// # Unsupported
//
//   - queue.WithDedupKey and queue.WithID return queue.ErrUnsupported: AMQP
//     has no deduplication (it needs a plugin or a store next to the
//     broker). PublishRetryWindow and PublishPipelines are Redis options
//     and are ignored.
//   - queue.MaxLen is the broker's x-max-length with x-overflow =
//     reject-publish: it bounds the READY messages of the main queue only
//     (not in-flight or delayed ones, as on Redis); a publish over it gets
//     queue.ErrFull, or waits with queue.BlockWhenFull. Classic queues refuse
//     exactly at the limit; quorum queues apply it asynchronously and may
//     accept a few messages more. Like every queue argument, it cannot
//     change for an existing queue (the declaration fails).
//   - Stats is approximate: Ready and Dead are the broker's counts; InFlight
//     (and Pending) count only this process's unsettled deliveries, Delayed
//     only the delay queues this process declared, and OldestAge is always
//     zero. AMQP reports no more; the management API does.
//   - queue.VisibilityTimeout and queue.ConsumerName's takeover have no
//     equivalent: the broker redelivers a dead consumer's messages when its
//     connection closes (heartbeat timeout, [Config.AMQP]). ConsumerName is
//     used as the consumer tag. The broker's consumer_timeout (30 minutes by
//     default) bounds how long one handler may run.
//   - DeadLetters and Requeue read the dead-letter queue with basic.get:
//     while one runs, the dead letters it holds are invisible to another.
//   - Ordering is not kept across retries or redeliveries.
package rabbitmq
