package broadcast_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/outrigger-dev/outrigger/broadcast"
)

// A subscriber, a publisher, and a subscriber that comes back later with
// the position it had reached and gets what it missed.
func ExampleHub_Subscribe() {
	ctx := context.Background()
	hub, err := broadcast.NewLocal() // broadcast.New(redisClient) across replicas
	if err != nil {
		panic(err)
	}
	defer hub.Close()

	sub, _ := hub.Subscribe(ctx, "quotes:ACME")
	_, _ = hub.Publish(ctx, "quotes:ACME", []byte(`{"bid":101.5}`))
	msg, _ := sub.Next(ctx)
	fmt.Println(string(msg.Data), msg.Position.Offset)
	last := sub.Position()
	_ = sub.Close()

	_, _ = hub.Publish(ctx, "quotes:ACME", []byte(`{"bid":101.6}`)) // while it is away
	back, _ := hub.Subscribe(ctx, "quotes:ACME", broadcast.Since(last))
	msg, _ = back.Next(ctx)
	fmt.Println(string(msg.Data), msg.Position.Offset, back.Recovered())
	// Output:
	// {"bid":101.5} 1
	// {"bid":101.6} 2 true
}

// Next returns ErrResync when the history cannot give back what was missed.
func ExampleSubscription_Next() {
	ctx := context.Background()
	hub, _ := broadcast.NewLocal(broadcast.WithHistory(2, 0x7fffffffffff))
	defer hub.Close()
	old, _ := hub.Publish(ctx, "c", []byte(`0`))
	for range 5 {
		_, _ = hub.Publish(ctx, "c", []byte(`1`))
	}
	sub, _ := hub.Subscribe(ctx, "c", broadcast.Since(old))
	_, err := sub.Next(ctx)
	fmt.Println(errors.Is(err, broadcast.ErrResync), sub.Position().Offset)
	// Output: true 6
}

// Presence lists the members of a channel on every Hub.
func ExampleHub_Presence() {
	ctx := context.Background()
	hub, _ := broadcast.NewLocal(broadcast.WithNodeID("web-1"))
	defer hub.Close()
	sub, _ := hub.Subscribe(ctx, "room", broadcast.AsMember(broadcast.Member{ClientID: "c1", UserID: "ann"}))
	defer sub.Close()
	members, _ := hub.Presence(ctx, "room")
	for _, m := range members {
		fmt.Println(m.UserID, m.ClientID, m.Node)
	}
	// Output: ann c1 web-1
}

// The HTTP endpoint (WebSocket and SSE) and the browser client.
func ExampleHub_Handler() {
	hub, _ := broadcast.NewLocal()
	defer hub.Close()
	mux := http.NewServeMux()
	mux.Handle("/live", hub.Handler(
		broadcast.Identify(func(r *http.Request) (broadcast.Member, error) {
			c, err := r.Cookie("user")
			if err != nil {
				return broadcast.Member{}, err // 401
			}
			return broadcast.Member{UserID: c.Value}, nil
		}),
		broadcast.Authorize(func(r *http.Request, m broadcast.Member, channel string, a broadcast.Action) error {
			if a == broadcast.ActionPublish && m.UserID != "admin" {
				return broadcast.ErrForbidden
			}
			return nil
		}),
		broadcast.AllowOrigins("*.example.com"),
	))
	mux.Handle("/live/client.js", broadcast.ClientJS)
	_ = mux // http.ListenAndServe(":8080", mux)
}

// Hooks report what a Hub does, for metrics and tracing; OnPublish may add
// headers (trace context) that reach the subscribers on every Hub, not
// the browsers. The otel module's InstrumentBroadcast fills them in.
func ExampleWithHooks() {
	ctx := context.Background()
	hub, _ := broadcast.NewLocal(broadcast.WithHooks(broadcast.Hooks{
		OnPublish: func(ctx context.Context, channel string, headers map[string]string) context.Context {
			headers["traceparent"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
			return ctx
		},
		OnPublished: func(_ context.Context, channel string, size int, pos broadcast.Position, _ time.Duration, err error) {
			fmt.Println("published", channel, size, "bytes at", pos.Offset, err)
		},
		OnReceive: func(channel string, pos broadcast.Position, _ map[string]string, subscribers int, _ time.Duration) {
			fmt.Println("handed to", subscribers, "subscriber(s)")
		},
	}))
	defer hub.Close()
	sub, _ := hub.Subscribe(ctx, "quotes:ACME")
	_, _ = hub.Publish(ctx, "quotes:ACME", []byte(`{"bid":101.5}`))
	msg, _ := sub.Next(ctx)
	fmt.Println(msg.Headers["traceparent"][:6])
	// Output:
	// handed to 1 subscriber(s)
	// published quotes:ACME 13 bytes at 1 <nil>
	// 00-4bf
}
