// Command json_worker runs a Go asynq Server that decodes every task's payload as JSON and
// prints one JSON line per task to stdout: id, type, retried count and the decoded payload
// (tests/interop/test_snooze_typed_go.py). For -strict-type tasks the payload is decoded
// into the VerifyEmail struct with unknown fields refused, as a careful Go consumer would.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
)

// VerifyEmail mirrors the Python dataclass of the test.
type VerifyEmail struct {
	Username string `json:"username"`
	Lang     string `json:"lang"`
}

func main() {
	addr := flag.String("redis", "127.0.0.1:6379", "Redis address")
	db := flag.Int("db", 0, "Redis database")
	queue := flag.String("queue", "default", "queue to serve")
	strictType := flag.String("strict-type", "email:verify", "type decoded into VerifyEmail")
	forward := flag.Duration("forward-interval", 100*time.Millisecond, "DelayedTaskCheckInterval")
	flag.Parse()

	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: *addr, DB: *db}, asynq.Config{
		Concurrency:              1,
		Queues:                   map[string]int{*queue: 1},
		DelayedTaskCheckInterval: *forward,
		TaskCheckInterval:        100 * time.Millisecond,
		LogLevel:                 asynq.WarnLevel,
	})
	var mu sync.Mutex
	out := json.NewEncoder(os.Stdout)
	handler := asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		retried, _ := asynq.GetRetryCount(ctx)
		var payload any
		if t.Type() == *strictType {
			var v VerifyEmail
			dec := json.NewDecoder(bytes.NewReader(t.Payload()))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&v); err != nil {
				return fmt.Errorf("decode %s: %w", t.Type(), err)
			}
			payload = v
		} else if err := json.Unmarshal(t.Payload(), &payload); err != nil {
			return fmt.Errorf("decode %s: %w", t.Type(), err)
		}
		mu.Lock()
		defer mu.Unlock()
		return out.Encode(map[string]any{
			"id": id, "type": t.Type(), "retried": retried, "payload": payload,
		})
	})
	if err := srv.Start(handler); err != nil {
		log.Fatal(err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	srv.Shutdown()
}
