// Command limits_consumer runs a Go asynq Server on one queue that succeeds every task,
// whatever its type; test_limits_go.py starts it on a queue where pyasynq enforces limits.
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
)

func main() {
	addr := flag.String("redis", "127.0.0.1:6379", "Redis address")
	queue := flag.String("queue", "default", "queue to serve")
	flag.Parse()

	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: *addr}, asynq.Config{
		Queues:                   map[string]int{*queue: 1},
		DelayedTaskCheckInterval: 200 * time.Millisecond, // parked tasks move soon after due
	})
	handler := asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error { return nil })
	if err := srv.Start(handler); err != nil {
		log.Fatal(err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	srv.Shutdown()
}
