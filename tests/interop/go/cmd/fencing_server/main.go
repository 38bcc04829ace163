// Command fencing_server runs a Go asynq Server whose handler holds its task until told to
// finish, so a test can act while Go owns the task (tests/interop/test_fencing_go.py).
//
// The handler creates -started (its content: the task id and retried count) when it
// begins, waits until -hold exists, writes -result through the task's ResultWriter and
// returns nil. Timings that asynq defaults to seconds are flags so the test stays short.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
)

func main() {
	addr := flag.String("redis", "127.0.0.1:6379", "Redis address")
	db := flag.Int("db", 0, "Redis database")
	queue := flag.String("queue", "default", "queue to serve")
	taskType := flag.String("type", "fence:work", "task type the holding handler serves")
	started := flag.String("started", "", "file to create when the handler starts")
	hold := flag.String("hold", "", "file whose existence lets the handler finish")
	result := flag.String("result", "go", "result the handler writes")
	retryDelay := flag.Duration("retry-delay", 0, "delay before every retry")
	forward := flag.Duration("forward-interval", 100*time.Millisecond, "DelayedTaskCheckInterval")
	poll := flag.Duration("poll-interval", 100*time.Millisecond, "TaskCheckInterval")
	flag.Parse()

	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: *addr, DB: *db}, asynq.Config{
		Concurrency:              1,
		Queues:                   map[string]int{*queue: 1},
		RetryDelayFunc:           func(int, error, *asynq.Task) time.Duration { return *retryDelay },
		DelayedTaskCheckInterval: *forward,
		TaskCheckInterval:        *poll,
		LogLevel:                 asynq.InfoLevel,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc(*taskType, func(ctx context.Context, t *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		retried, _ := asynq.GetRetryCount(ctx)
		if *started != "" {
			line := fmt.Sprintf("%s %d\n", id, retried)
			if err := os.WriteFile(*started, []byte(line), 0o644); err != nil {
				return err
			}
		}
		for *hold != "" {
			if _, err := os.Stat(*hold); err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
		if _, err := t.ResultWriter().Write([]byte(*result)); err != nil {
			return err
		}
		return nil
	})
	if err := srv.Start(mux); err != nil {
		log.Fatal(err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	srv.Shutdown()
}
