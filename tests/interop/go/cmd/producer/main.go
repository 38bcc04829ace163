// Command producer enqueues tasks with a Go asynq Client; every enqueue option is a flag.
// It prints one JSON line per task: the TaskInfo, or {"error": ...} when the enqueue
// was refused (exit status 3 then).
package main

import (
	"errors"
	"flag"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"pyasynq.dev/interop/internal/common"
)

func main() {
	url := flag.String("redis-url", "redis://127.0.0.1:6379/0", "Redis URL")
	typ := flag.String("type", "interop:task", "task type")
	payload := flag.String("payload", "", "payload text; {i} is replaced by the task's index")
	count := flag.Int("count", 1, "how many tasks to enqueue")
	var headers common.Multi
	flag.Var(&headers, "header", "KEY=VALUE header (repeatable)")
	queue := flag.String("queue", "", "queue")
	maxRetry := flag.Int("max-retry", -1, "retries before archiving (-1: asynq's default)")
	taskID := flag.String("task-id", "", "task id; {i} is replaced by the task's index")
	timeout := flag.Duration("timeout", 0, "time limit per attempt")
	deadline := flag.Float64("deadline", 0, "deadline, Unix seconds")
	processIn := flag.Duration("process-in", 0, "run after this delay")
	processAt := flag.Float64("process-at", 0, "run at, Unix seconds")
	unique := flag.Duration("unique", 0, "unique lock TTL")
	retention := flag.Duration("retention", 0, "keep the completed task this long")
	group := flag.String("group", "", "aggregation group")
	flag.Parse()

	var opts []asynq.Option
	if *queue != "" {
		opts = append(opts, asynq.Queue(*queue))
	}
	if *maxRetry >= 0 {
		opts = append(opts, asynq.MaxRetry(*maxRetry))
	}
	if *timeout > 0 {
		opts = append(opts, asynq.Timeout(*timeout))
	}
	if *deadline > 0 {
		opts = append(opts, asynq.Deadline(unixTime(*deadline)))
	}
	if *processIn > 0 {
		opts = append(opts, asynq.ProcessIn(*processIn))
	}
	if *processAt > 0 {
		opts = append(opts, asynq.ProcessAt(unixTime(*processAt)))
	}
	if *unique > 0 {
		opts = append(opts, asynq.Unique(*unique))
	}
	if *retention > 0 {
		opts = append(opts, asynq.Retention(*retention))
	}
	if *group != "" {
		opts = append(opts, asynq.Group(*group))
	}
	hdrs := map[string]string{}
	for _, h := range headers {
		k, v, ok := strings.Cut(h, "=")
		if !ok {
			common.Die("bad -header %q: want KEY=VALUE", h)
		}
		hdrs[k] = v
	}

	client := asynq.NewClient(common.Redis(*url))
	defer client.Close()
	failed := false
	for i := 0; i < *count; i++ {
		idx := strconv.Itoa(i)
		o := opts
		if *taskID != "" {
			o = append(append([]asynq.Option{}, opts...), asynq.TaskID(strings.ReplaceAll(*taskID, "{i}", idx)))
		}
		t := asynq.NewTaskWithHeaders(*typ, []byte(strings.ReplaceAll(*payload, "{i}", idx)), hdrs)
		info, err := client.Enqueue(t, o...)
		if err != nil {
			failed = true
			common.Print(map[string]any{
				"error":     err.Error(),
				"conflict":  errors.Is(err, asynq.ErrTaskIDConflict),
				"duplicate": errors.Is(err, asynq.ErrDuplicateTask),
			})
			continue
		}
		common.Print(common.Task(info))
	}
	if failed {
		os.Exit(3)
	}
}

func unixTime(s float64) time.Time {
	sec, frac := math.Modf(s)
	return time.Unix(int64(sec), int64(frac*1e9))
}
