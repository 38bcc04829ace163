// Command worker is the Go asynq worker for the pyasynq benchmark harness. Its handlers
// speak the harness' recorder protocol (benchmarks/_rec.py): completion times in memory,
// the running count in $BENCH_DIR/counts/<pid> every 50 ms, all times (float64 seconds,
// little-endian) in $BENCH_DIR/times/<pid> once $BENCH_DIR/dump exists, and for latency
// tasks one datagram "<i> <unix ns>" to $BENCH_DIR/lat.sock.
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"log"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

type recorder struct {
	mu    sync.Mutex
	times []float64
	dir   string
}

func (r *recorder) done() {
	t := float64(time.Now().UnixNano()) / 1e9
	r.mu.Lock()
	r.times = append(r.times, t)
	r.mu.Unlock()
}

func (r *recorder) started(i int, ns int64) {
	c, err := net.Dial("unixgram", filepath.Join(r.dir, "lat.sock"))
	if err != nil {
		return // the driver is not listening: the sample is lost
	}
	fmt.Fprintf(c, "%d %d", i, ns)
	c.Close()
}

func writeAtomic(path string, data []byte) {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err == nil {
		os.Rename(tmp, path)
	}
}

func (r *recorder) flushLoop() {
	pid := strconv.Itoa(os.Getpid())
	counts := filepath.Join(r.dir, "counts")
	times := filepath.Join(r.dir, "times")
	os.MkdirAll(counts, 0o755)
	os.MkdirAll(times, 0o755)
	written, dumped := -1, -1
	for {
		r.mu.Lock()
		n := len(r.times)
		r.mu.Unlock()
		if n != written {
			writeAtomic(filepath.Join(counts, pid), []byte(strconv.Itoa(n)))
			written = n
		}
		if _, err := os.Stat(filepath.Join(r.dir, "dump")); err == nil && n != dumped {
			buf := make([]byte, 8*n)
			r.mu.Lock()
			for i, t := range r.times[:n] {
				binary.LittleEndian.PutUint64(buf[8*i:], math.Float64bits(t))
			}
			r.mu.Unlock()
			writeAtomic(filepath.Join(times, pid), buf)
			dumped = n
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func main() {
	addr := flag.String("redis-addr", "127.0.0.1:6379", "Redis host:port")
	db := flag.Int("redis-db", 0, "Redis database")
	concurrency := flag.Int("concurrency", 32, "tasks in flight")
	flag.Parse()

	rec := &recorder{dir: os.Getenv("BENCH_DIR")}
	if rec.dir != "" {
		go rec.flushLoop()
	}
	mux := asynq.NewServeMux()
	mux.HandleFunc("bench:noop", func(ctx context.Context, t *asynq.Task) error {
		rec.done()
		return nil
	})
	mux.HandleFunc("bench:sleep", func(ctx context.Context, t *asynq.Task) error {
		time.Sleep(time.Millisecond)
		rec.done()
		return nil
	})
	// The "Redis I/O" drain: one round trip per task on a client the benchmark owns.
	own := redis.NewClient(&redis.Options{Addr: *addr, DB: *db, PoolSize: *concurrency})
	mux.HandleFunc("bench:io", func(ctx context.Context, t *asynq.Task) error {
		if err := own.Incr(ctx, "bench:io").Err(); err != nil {
			return err
		}
		rec.done()
		return nil
	})
	mux.HandleFunc("bench:lat", func(ctx context.Context, t *asynq.Task) error {
		now := time.Now().UnixNano()
		i, _ := strconv.Atoi(string(t.Payload()))
		if rec.dir != "" {
			rec.started(i, now)
		}
		return nil
	})
	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: *addr, DB: *db},
		asynq.Config{Concurrency: *concurrency, LogLevel: asynq.WarnLevel})
	if err := srv.Run(mux); err != nil {
		log.Fatal(err)
	}
}
