// Package common holds what the interop programs share: the Redis connection flag,
// JSON shapes of asynq's values, and repeated flags.
package common

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hibiken/asynq"
)

// Redis parses a redis:// URL into asynq's connection option; a bad URL ends the program.
func Redis(url string) asynq.RedisConnOpt {
	opt, err := asynq.ParseRedisURI(url)
	if err != nil {
		Die("bad -redis-url %q: %v", url, err)
	}
	return opt
}

// Die prints one line on stderr and exits with status 1.
func Die(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

// Print writes v as one JSON line on stdout.
func Print(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		Die("json: %v", err)
	}
	fmt.Println(string(b))
}

// Multi is a repeatable string flag.
type Multi []string

func (m *Multi) String() string     { return strings.Join(*m, ",") }
func (m *Multi) Set(v string) error { *m = append(*m, v); return nil }

// Unix is a time as Unix seconds (float); Go's zero time ("never") is 0.
func Unix(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

// Task is asynq.TaskInfo as JSON: times in Unix seconds, spans in seconds.
func Task(t *asynq.TaskInfo) map[string]any {
	headers := t.Headers
	if headers == nil {
		headers = map[string]string{}
	}
	return map[string]any{
		"id": t.ID, "queue": t.Queue, "type": t.Type, "payload": string(t.Payload),
		"headers": headers, "state": t.State.String(), "max_retry": t.MaxRetry,
		"retried": t.Retried, "last_err": t.LastErr, "last_failed_at": Unix(t.LastFailedAt),
		"timeout": t.Timeout.Seconds(), "deadline": Unix(t.Deadline), "group": t.Group,
		"next_process_at": Unix(t.NextProcessAt), "is_orphaned": t.IsOrphaned,
		"retention": t.Retention.Seconds(), "completed_at": Unix(t.CompletedAt),
		"result": string(t.Result),
	}
}

// Tasks is a list of Task.
func Tasks(ts []*asynq.TaskInfo) []map[string]any {
	out := make([]map[string]any, 0, len(ts))
	for _, t := range ts {
		out = append(out, Task(t))
	}
	return out
}

// FprintJSON writes v as one JSON line to f in a single write.
func FprintJSON(f *os.File, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		Die("json: %v", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		Die("write %s: %v", f.Name(), err)
	}
}
