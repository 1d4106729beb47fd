package console_test

import (
	"errors"
	"log"
	"net/http"
	"os"

	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/console"
	"github.com/outrigger-dev/outrigger/lock"
	"github.com/outrigger-dev/outrigger/queue"
	"github.com/outrigger-dev/outrigger/scheduler"
)

// Mount the console at /admin/console/ behind a token: read-only without
// one, everything with it.
func ExampleHandler() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	qi, err := queue.NewInspector(rdb, queue.WithPrefix("app:"))
	if err != nil {
		log.Fatal(err)
	}
	ji, err := scheduler.NewInspector(rdb, scheduler.WithNamespace("app:jobs:"))
	if err != nil {
		log.Fatal(err)
	}
	li, err := lock.NewInspector(rdb, lock.WithPrefix("app:lock:"))
	if err != nil {
		log.Fatal(err)
	}
	token := os.Getenv("CONSOLE_TOKEN")
	h := console.Handler(console.Config{
		Title:  "Billing",
		Queues: qi, Jobs: ji, Locks: li,
		Authorize: func(r *http.Request, a console.Action) error {
			if a.Verb == console.Read {
				return nil
			}
			if token == "" || r.Header.Get("Authorization") != "Bearer "+token {
				return errors.New("actions need the operator token")
			}
			return nil
		},
		AuditRedis: rdb,
	})
	http.Handle("/admin/console/", http.StripPrefix("/admin/console", h))
}
