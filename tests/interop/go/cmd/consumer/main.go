// Command consumer runs a Go asynq Server on the given queues; flags state the case.
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/hibiken/asynq"
)

func main() {
	addr := flag.String("redis", "127.0.0.1:6379", "Redis address")
	queue := flag.String("queue", "default", "queue to serve")
	flag.Parse()

	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: *addr}, asynq.Config{
		Queues: map[string]int{*queue: 1},
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc("", func(ctx context.Context, t *asynq.Task) error { return nil })
	if err := srv.Start(mux); err != nil {
		log.Fatal(err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	srv.Shutdown()
}
