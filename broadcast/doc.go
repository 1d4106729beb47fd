// Package broadcast keeps WebSocket and SSE sessions consistent across the
// replicas of a service: a message published on any replica reaches the
// subscribers of its channel on every replica, once and in order; a client
// that reconnects, to any replica, gets what it missed from the channel's
// history; and presence ("who is here") spans every replica and forgets a
// dead one within seconds. It runs on the Redis the service already has
// (New: single node, Sentinel or Cluster) or in one process (NewLocal),
// with the same contract.
//
//	hub, err := broadcast.New(redisClient)              // one per replica
//	defer hub.Close()
//	http.Handle("/live", hub.Handler())                  // WebSocket, or SSE
//	http.Handle("/live/client.js", broadcast.ClientJS)   // the browser client
//	pos, err := hub.Publish(ctx, "quotes:ACME", []byte(`{"bid":101.5}`))
//
//	sub, err := hub.Subscribe(ctx, "quotes:ACME", broadcast.Since(last))
//	for {
//		msg, err := sub.Next(ctx)
//		if errors.Is(err, broadcast.ErrResync) { reload(); continue }
//		...
//	}
//
// # What it guarantees
//
//   - Fan-out across replicas: every subscriber of a channel, on every Hub
//     sharing the Redis and WithPrefix, gets each message once, in offset
//     order. A Hub receives only the channels it has subscribers for (one
//     pub/sub connection, subscribing by interest; on a Cluster one per
//     master, with sharded pub/sub and the channel name as hash tag).
//   - Positions: each message has a Position, an epoch and an offset that
//     grows by one per message. A publish is one atomic Lua script: it
//     increments the offset in the channel's meta hash, appends the message
//     to the channel's stream (the history, WithHistory) and publishes it.
//     The epoch changes when the history is lost (Redis restarted empty,
//     keys expired, a failover lost acknowledged messages), so a stale
//     position is detected, never silently accepted.
//   - Recovery: Subscribe with Since(pos), on any Hub, delivers exactly the
//     messages after pos from the history and then the live ones, with no
//     gap and no duplicate at the seam (Recovered reports it). When the
//     history no longer covers pos (overflow, ttl, another epoch), the first
//     Next returns ErrResync: never a silent gap.
//   - Loss inside a replica is caught: a Hub that misses pub/sub messages
//     (its connection dropped, a failover) notices the offset gap or the
//     re-subscription and reads what it missed from the history, for every
//     subscribed channel. Ready fails while the pub/sub connections do not
//     deliver (a probe round trip through Redis) and recovers by itself.
//   - Presence: members (AsMember, or connections identified by Identify)
//     are listed by Presence on every Hub while their Hub's lease
//     (WithPresenceTTL) lives; when a Hub dies, its members disappear and a
//     live Hub publishes their Leave events within the TTL. Close leaves at
//     once.
//   - Bounded memory: each subscriber (Subscription, WebSocket or SSE
//     connection) has a bounded buffer (WithClientBuffer); a subscriber that
//     falls behind is disconnected or told to resync (WithSlowClient) and
//     never slows the others. Channel names are 1..255 bytes, data must be
//     one JSON value of at most WithMaxMessageSize bytes, a connection has
//     at most MaxSubscriptions channels.
//   - Redis down: Publish returns an error (never a silent drop);
//     subscribers stay connected and recover when Redis is back (or get a
//     resync if its history was lost).
//
// # What it does not do
//
// The history lives in Redis memory with Redis's durability: with no
// persistence, a restart loses it (clients then resync). A message is
// delivered to the subscribers that exist when it arrives; there is no
// per-subscriber acknowledgement or redelivery beyond the history window.
// Presence is as fresh as the lease: a Hub cut off from Redis for longer
// than the TTL loses its members from the list (they join again, with
// Join events, when it is back). Authentication is the application's:
// Identify and Authorize are where it plugs in.
//
// # Cost
//
// An idle WebSocket connection holds one goroutine, parked in a
// readability wait so that its stack stays small, a 512-byte read buffer
// and no write buffer: about 8.5 KB in all, against 19.6 KB for
// centrifuge v0.40.1 on the same benchmark (bench/broadcast). A writer
// goroutine runs only while frames are queued and sends them with one
// writev. One clock per Hub pings every connection (spread over the
// interval), with no timer per connection. Each Hub holds one pub/sub
// connection (one per Cluster master with subscribers) and a lease renewal
// loop.
//
// # Wire protocol: WebSocket
//
// Clients connect with a WebSocket upgrade to the Handler (Origin must be
// the request's host unless AllowOrigins says otherwise). Every frame is a
// text frame holding one JSON object with an "op". Unknown fields are
// ignored. Client to server:
//
//	{"op":"subscribe","id":"1","channel":"c","since":{"epoch":"e","offset":12},"presence":true}
//	{"op":"unsubscribe","id":"2","channel":"c"}
//	{"op":"publish","id":"3","channel":"c","data":<any JSON value>}
//	{"op":"presence","id":"4","channel":"c"}
//
// "id" (at most 64 bytes) is optional and echoed in the reply; "since" is
// optional (resume after that position); "presence": true also delivers the
// channel's join and leave frames. publish is refused unless Authorize
// allows ActionPublish. Server to client:
//
//	{"op":"subscribed","id":"1","channel":"c","epoch":"e","offset":12,"recovered":true}
//	{"op":"message","channel":"c","data":<the JSON value>,"epoch":"e","offset":13}
//	{"op":"join","channel":"c","member":{"client":"k1","user":"ann","node":"n1","info":{...}}}
//	{"op":"leave","channel":"c","member":{"client":"k1","user":"ann","node":"n1"}}
//	{"op":"resync","channel":"c"}
//	{"op":"unsubscribed","id":"2","channel":"c"}
//	{"op":"published","id":"3","channel":"c","epoch":"e","offset":14}
//	{"op":"presence","id":"4","channel":"c","members":[{"client":"k1","user":"ann","node":"n1"}]}
//	{"op":"error","id":"1","channel":"c","code":"forbidden","message":"subscribe not allowed"}
//
// subscribed gives the position the subscription starts after and is
// followed by the recovered messages in offset order, then the live ones.
// With since, recovered false means the history could not cover it: the
// client reloads its state; the subscription is live from the position
// given. resync means messages were lost later (the client was too slow
// under the Resync policy, or the history could not cover a gap): the
// server has dropped the subscription, and the client reloads its state and
// subscribes again without since. unsubscribed and published are sent only
// when the request had an id. Error codes: forbidden (Authorize refused),
// bad_request (malformed frame, unknown op, bad channel, already subscribed,
// too many subscriptions), too_large (data over WithMaxMessageSize),
// not_found (unsubscribe from a channel not subscribed), internal (Redis
// unavailable; try again). After an error frame the connection stays open.
//
// The server pings every PingInterval and closes a connection that answered
// nothing for three; close codes: 1013 (try again later) for a slow client
// under the Disconnect policy, 1001 when the Hub closes, 1009 for a frame
// over WithMaxMessageSize + 4 KiB. A client that stopped reading may only
// see the socket close.
//
// An exchange (C client, S server):
//
//	C {"op":"subscribe","id":"1","channel":"quotes","since":{"epoch":"3f9a0c21be","offset":41}}
//	S {"op":"subscribed","id":"1","channel":"quotes","epoch":"3f9a0c21be","offset":41,"recovered":true}
//	S {"op":"message","channel":"quotes","data":{"bid":101.5},"epoch":"3f9a0c21be","offset":42}
//	S {"op":"message","channel":"quotes","data":{"bid":101.6},"epoch":"3f9a0c21be","offset":43}
//	C {"op":"publish","id":"2","channel":"quotes","data":{"bid":1}}
//	S {"op":"error","id":"2","channel":"quotes","code":"forbidden","message":"publish not allowed"}
//	C {"op":"presence","id":"3","channel":"quotes"}
//	S {"op":"presence","id":"3","channel":"quotes","members":[]}
//
// # Wire protocol: Server-Sent Events
//
// GET the Handler with Accept: text/event-stream and one channel parameter
// per channel: /live?channel=a&channel=b (add presence=1 for join and
// leave events). Identify failing answers 401, Authorize refusing a
// channel 403, a bad channel or id 400. The stream starts with an event
// holding only "retry: 1000" and an id (it sets the browser's
// Last-Event-ID), then:
//
//	id: 3f9a0c21be-42.77d1e0a4c3-7
//	event: message
//	data: {"op":"message","channel":"a","data":{"bid":101.5},"epoch":"3f9a0c21be","offset":42}
//
//	id: 3f9a0c21be-42.77d1e0a4c3-7
//	event: resync
//	data: {"op":"resync","channel":"b"}
//
//	: heartbeat
//
// data is the same JSON as the WebSocket message frame (join and leave
// events too, with event: join / leave). The id encodes the position of
// every channel of the stream, in the order of the channel parameters, as
// "<epoch>-<offset>" joined by "." (an empty element: no position). A
// native EventSource that reconnects sends it as Last-Event-ID, and the
// stream resumes after those positions on any replica, nothing lost; ?since=
// <id> does the same explicitly. A resync event means that channel lost
// messages (the client reloads its state); the stream carries on. A
// heartbeat comment is sent every PingInterval (15s). A slow SSE client
// under the Disconnect policy has its stream ended; EventSource reconnects
// and recovers from the history.
//
// # Hooks and trace context
//
// WithHooks sets callbacks (Hooks) for publish, the fan-out on each Hub,
// each delivery to a subscriber, recoveries, resyncs, gaps, slow
// disconnects and presence, called synchronously with plain values and
// costing nothing when unset; the module
// github.com/outrigger-dev/outrigger/otel turns them into spans and metrics.
// Headers that Hooks.OnPublish adds (W3C trace context) travel with the
// message through Redis, in its history entry and its pub/sub frame, to
// every Hub (Hooks.OnReceive) and every Subscription (Message.Headers).
// They are not part of the browser protocol: WebSocket and SSE frames are
// the same with or without them.
//
// # Redis layout
//
// See the keys in redis.go's redisBackend; every script is in scripts/*.lua
// with its KEYS and ARGV documented at the top. A message with headers is
// sent on pub/sub as an "h" frame (scripts/publish.lua); a Hub of an older
// version drops it, sees the offset gap and reads the message from the
// history, so replicas can be upgraded one at a time.
package broadcast
