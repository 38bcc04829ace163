// Command server runs a Go asynq Server. Flags state the case: queues, concurrency,
// timings, group aggregation, and what the handler does per task type (-handle).
// Every handler event is recorded as a JSON line (-record) so a test can read exactly
// which tasks ran here, with what, and how they ended.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"pyasynq.dev/interop/internal/common"
)

// behaviour is what a handler does for one task type, parsed from
// "fail=N|always,sleep=DUR,wait=FILE,result=TEXT,skipretry" ("ok" or "" does nothing and
// succeeds); wait=FILE holds the task until FILE exists.
type behaviour struct {
	failTimes int // fail the first N attempts; -1: every attempt
	sleep     time.Duration
	waitFile  string // hold the task until this file exists
	result    string // written with the ResultWriter; {payload} and {id} are replaced
	skipRetry bool
}

func parseBehaviour(spec string) behaviour {
	var b behaviour
	for _, item := range strings.Split(spec, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(item), "=")
		switch k {
		case "", "ok":
		case "fail":
			if v == "always" {
				b.failTimes = -1
			} else if n, err := strconv.Atoi(v); err == nil {
				b.failTimes = n
			} else {
				common.Die("bad fail=%q: want a number or always", v)
			}
		case "sleep":
			d, err := time.ParseDuration(v)
			if err != nil {
				common.Die("bad sleep=%q: %v", v, err)
			}
			b.sleep = d
		case "wait":
			b.waitFile = v
		case "result":
			b.result = v
		case "skipretry":
			b.skipRetry = true
		default:
			common.Die("unknown behaviour %q in %q", k, spec)
		}
	}
	return b
}

type recorder struct {
	mu sync.Mutex
	f  *os.File
}

func (r *recorder) event(ev map[string]any) {
	ev["pid"] = os.Getpid()
	ev["t"] = common.Unix(time.Now())
	r.mu.Lock()
	defer r.mu.Unlock()
	common.FprintJSON(r.f, ev)
}

func main() {
	url := flag.String("redis-url", "redis://127.0.0.1:6379/0", "Redis URL")
	var queues, handles common.Multi
	flag.Var(&queues, "queue", "NAME=PRIORITY (repeatable; default: default=1)")
	flag.Var(&handles, "handle", "TYPE=BEHAVIOUR, e.g. email=fail=2,sleep=100ms (repeatable; TYPE * is the fallback)")
	concurrency := flag.Int("concurrency", 10, "tasks run at once")
	strict := flag.Bool("strict", false, "strict queue priority")
	record := flag.String("record", "-", "file to append handler events to as JSON lines (- is stdout)")
	retryDelay := flag.Duration("retry-delay", 0, "delay before each retry (asynq's default backoff when negative)")
	taskCheck := flag.Duration("task-check-interval", 100*time.Millisecond, "TaskCheckInterval")
	delayedCheck := flag.Duration("delayed-task-check-interval", 200*time.Millisecond, "DelayedTaskCheckInterval")
	healthCheck := flag.Duration("health-check-interval", 0, "HealthCheckInterval (0: asynq's 15s)")
	shutdown := flag.Duration("shutdown-timeout", 2*time.Second, "ShutdownTimeout")
	janitor := flag.Duration("janitor-interval", 0, "JanitorInterval (0: asynq's 8s)")
	graceP := flag.Duration("group-grace-period", 0, "GroupGracePeriod (0: asynq's 1m; at least 1s)")
	maxDelay := flag.Duration("group-max-delay", 0, "GroupMaxDelay")
	maxSize := flag.Int("group-max-size", 0, "GroupMaxSize")
	aggType := flag.String("aggregate-type", "", "enable group aggregation: the aggregated task's type (payloads joined by ,)")
	logLevel := flag.String("log-level", "info", "debug, info, warn, error or fatal")
	flag.Parse()

	qs := map[string]int{}
	for _, q := range queues {
		name, prio, ok := strings.Cut(q, "=")
		p := 1
		if ok {
			n, err := strconv.Atoi(prio)
			if err != nil {
				common.Die("bad -queue %q: want NAME=PRIORITY", q)
			}
			p = n
		}
		qs[name] = p
	}
	if len(qs) == 0 {
		qs["default"] = 1
	}
	behaviours := map[string]behaviour{}
	for _, h := range handles {
		typ, spec, _ := strings.Cut(h, "=")
		behaviours[typ] = parseBehaviour(spec)
	}
	out := os.Stdout
	if *record != "-" {
		f, err := os.OpenFile(*record, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			common.Die("cannot open -record %s: %v", *record, err)
		}
		out = f
	}
	rec := &recorder{f: out}
	var level asynq.LogLevel
	if err := level.Set(*logLevel); err != nil {
		common.Die("bad -log-level: %v", err)
	}

	cfg := asynq.Config{
		Concurrency:              *concurrency,
		Queues:                   qs,
		StrictPriority:           *strict,
		TaskCheckInterval:        *taskCheck,
		DelayedTaskCheckInterval: *delayedCheck,
		HealthCheckInterval:      *healthCheck,
		ShutdownTimeout:          *shutdown,
		JanitorInterval:          *janitor,
		GroupGracePeriod:         *graceP,
		GroupMaxDelay:            *maxDelay,
		GroupMaxSize:             *maxSize,
		LogLevel:                 level,
	}
	if *retryDelay >= 0 {
		d := *retryDelay
		cfg.RetryDelayFunc = func(int, error, *asynq.Task) time.Duration { return d }
	}
	if *aggType != "" {
		cfg.GroupAggregator = asynq.GroupAggregatorFunc(func(group string, tasks []*asynq.Task) *asynq.Task {
			parts := make([]string, 0, len(tasks))
			for _, t := range tasks {
				parts = append(parts, string(t.Payload()))
			}
			rec.event(map[string]any{"event": "aggregate", "group": group, "size": len(tasks)})
			return asynq.NewTask(*aggType, []byte(strings.Join(parts, ",")))
		})
	}

	handler := func(ctx context.Context, t *asynq.Task) error {
		b, ok := behaviours[t.Type()]
		if !ok {
			b = behaviours["*"]
		}
		id, _ := asynq.GetTaskID(ctx)
		retried, _ := asynq.GetRetryCount(ctx)
		maxRetry, _ := asynq.GetMaxRetry(ctx)
		queue, _ := asynq.GetQueueName(ctx)
		dl, _ := ctx.Deadline()
		base := map[string]any{
			"id": id, "type": t.Type(), "payload": string(t.Payload()), "queue": queue,
			"retried": retried, "max_retry": maxRetry, "headers": t.Headers(),
			"deadline": common.Unix(dl),
		}
		ev := func(name string, extra ...any) {
			m := map[string]any{"event": name}
			for k, v := range base {
				m[k] = v
			}
			for i := 0; i+1 < len(extra); i += 2 {
				m[extra[i].(string)] = extra[i+1]
			}
			rec.event(m)
		}
		ev("start")
		if b.sleep > 0 {
			select {
			case <-time.After(b.sleep):
			case <-ctx.Done():
				ev("canceled", "error", ctx.Err().Error())
				return ctx.Err()
			}
		}
		for b.waitFile != "" {
			if _, err := os.Stat(b.waitFile); err == nil {
				break
			}
			select {
			case <-time.After(20 * time.Millisecond):
			case <-ctx.Done():
				ev("canceled", "error", ctx.Err().Error())
				return ctx.Err()
			}
		}
		if b.failTimes < 0 || retried < b.failTimes {
			err := fmt.Errorf("interop: %s fails on attempt %d", t.Type(), retried+1)
			if b.skipRetry {
				err = fmt.Errorf("%w: %v", asynq.SkipRetry, err)
			}
			ev("fail", "error", err.Error())
			return err
		}
		if b.result != "" {
			res := strings.NewReplacer("{payload}", string(t.Payload()), "{id}", id).Replace(b.result)
			if _, err := t.ResultWriter().Write([]byte(res)); err != nil {
				ev("fail", "error", err.Error())
				return err
			}
		}
		ev("done")
		return nil
	}

	srv := asynq.NewServer(common.Redis(*url), cfg)
	if err := srv.Start(asynq.HandlerFunc(handler)); err != nil {
		common.Die("server did not start: %v", err)
	}
	rec.event(map[string]any{"event": "ready"})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	srv.Shutdown()
	rec.event(map[string]any{"event": "stopped"})
	if out != os.Stdout {
		out.Close()
	}
}
