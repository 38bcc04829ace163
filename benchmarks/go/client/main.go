// Command client times single-call Client.Enqueue for the pyasynq benchmark harness
// (benchmarks/systems/asynq_go.py). It prints one JSON line: {"n", "seconds", "rate"}.
package main

import (
	"flag"
	"fmt"
	"log"
	"time"

	"github.com/hibiken/asynq"
)

func main() {
	addr := flag.String("redis-addr", "127.0.0.1:6379", "Redis host:port")
	db := flag.Int("redis-db", 0, "Redis database")
	n := flag.Int("n", 20000, "tasks to time")
	warmup := flag.Int("warmup", 1000, "tasks enqueued before the clock starts")
	kind := flag.String("kind", "noop", "noop, sleep or lat")
	flag.Parse()

	client := asynq.NewClient(asynq.RedisClientOpt{Addr: *addr, DB: *db})
	defer client.Close()
	task := asynq.NewTask("bench:"+*kind, nil)
	for i := 0; i < *warmup; i++ {
		if _, err := client.Enqueue(task); err != nil {
			log.Fatal(err)
		}
	}
	start := time.Now()
	for i := 0; i < *n; i++ {
		if _, err := client.Enqueue(task); err != nil {
			log.Fatal(err)
		}
	}
	secs := time.Since(start).Seconds()
	fmt.Printf("{\"n\": %d, \"seconds\": %f, \"rate\": %f}\n", *n, secs, float64(*n)/secs)
}
