// Command inspector reads and acts on queues through Go asynq's Inspector and prints
// JSON: what `asynq` (the Go CLI, which is built on the same Inspector) shows and does.
//
//	inspector [-redis-url URL] [-page N] [-size N] VERB ARGS...
//
// Reads: queues | stats | queue Q | history Q DAYS | tasks Q STATE [GROUP] | task Q ID |
// groups Q | servers | cron | cron-history ENTRY_ID
// Actions: archive|run|delete Q ID | archive-all|run-all|delete-all Q STATE [GROUP] |
// pause Q | unpause Q | cancel ID | delete-queue Q [force]
//
// A refused action or read prints {"error", "not_found"} and exits with status 3.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"

	"github.com/hibiken/asynq"
	"pyasynq.dev/interop/internal/common"
)

func main() {
	url := flag.String("redis-url", "redis://127.0.0.1:6379/0", "Redis URL")
	page := flag.Int("page", 1, "page number for lists (from 1)")
	size := flag.Int("size", 1000, "page size for lists")
	flag.Parse()
	args := flag.Args()
	if len(args) == 0 {
		common.Die("usage: inspector [flags] VERB ARGS... (see the source)")
	}
	insp := asynq.NewInspector(common.Redis(*url))
	defer insp.Close()
	lopts := []asynq.ListOption{asynq.Page(*page), asynq.PageSize(*size)}
	v, err := run(insp, args[0], args[1:], lopts)
	if err != nil {
		common.Print(map[string]any{
			"error":     err.Error(),
			"not_found": errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound),
		})
		os.Exit(3)
	}
	common.Print(v)
}

func arg(args []string, i int, what string) string {
	if i >= len(args) {
		common.Die("missing argument: %s", what)
	}
	return args[i]
}

func run(insp *asynq.Inspector, verb string, a []string, lopts []asynq.ListOption) (any, error) {
	switch verb {
	case "queues":
		qs, err := insp.Queues()
		sort.Strings(qs)
		if qs == nil {
			qs = []string{}
		}
		return qs, err
	case "stats":
		qs, err := insp.Queues()
		if err != nil {
			return nil, err
		}
		sort.Strings(qs)
		out := []map[string]any{}
		for _, q := range qs {
			info, err := insp.GetQueueInfo(q)
			if err != nil {
				return nil, err
			}
			out = append(out, queueInfo(info))
		}
		return out, nil
	case "queue":
		info, err := insp.GetQueueInfo(arg(a, 0, "QUEUE"))
		if err != nil {
			return nil, err
		}
		return queueInfo(info), nil
	case "history":
		n, _ := strconv.Atoi(arg(a, 1, "DAYS"))
		days, err := insp.History(arg(a, 0, "QUEUE"), n)
		out := []map[string]any{}
		for _, d := range days {
			out = append(out, map[string]any{"queue": d.Queue, "processed": d.Processed,
				"failed": d.Failed, "date": d.Date.Format("2006-01-02")})
		}
		return out, err
	case "tasks":
		return listTasks(insp, arg(a, 0, "QUEUE"), arg(a, 1, "STATE"), a, lopts)
	case "task":
		info, err := insp.GetTaskInfo(arg(a, 0, "QUEUE"), arg(a, 1, "TASK_ID"))
		if err != nil {
			return nil, err
		}
		return common.Task(info), nil
	case "groups":
		gs, err := insp.Groups(arg(a, 0, "QUEUE"))
		out := []map[string]any{}
		for _, g := range gs {
			out = append(out, map[string]any{"group": g.Group, "size": g.Size})
		}
		return out, err
	case "servers":
		ss, err := insp.Servers()
		out := []map[string]any{}
		for _, s := range ss {
			workers := []map[string]any{}
			for _, w := range s.ActiveWorkers {
				workers = append(workers, map[string]any{"task_id": w.TaskID, "task_type": w.TaskType,
					"task_payload": string(w.TaskPayload), "queue": w.Queue,
					"started": common.Unix(w.Started), "deadline": common.Unix(w.Deadline)})
			}
			out = append(out, map[string]any{"id": s.ID, "host": s.Host, "pid": s.PID,
				"concurrency": s.Concurrency, "queues": s.Queues, "strict_priority": s.StrictPriority,
				"started": common.Unix(s.Started), "status": s.Status, "active_workers": workers})
		}
		return out, err
	case "cron":
		es, err := insp.SchedulerEntries()
		out := []map[string]any{}
		for _, e := range es {
			opts := []string{}
			for _, o := range e.Opts {
				opts = append(opts, o.String())
			}
			out = append(out, map[string]any{"id": e.ID, "spec": e.Spec, "type": e.Task.Type(),
				"payload": string(e.Task.Payload()), "opts": opts, "next": common.Unix(e.Next),
				"prev": common.Unix(e.Prev)})
		}
		return out, err
	case "cron-history":
		evs, err := insp.ListSchedulerEnqueueEvents(arg(a, 0, "ENTRY_ID"), lopts...)
		out := []map[string]any{}
		for _, e := range evs {
			out = append(out, map[string]any{"task_id": e.TaskID, "enqueued_at": common.Unix(e.EnqueuedAt)})
		}
		return out, err
	case "archive", "run", "delete":
		q, id := arg(a, 0, "QUEUE"), arg(a, 1, "TASK_ID")
		var err error
		switch verb {
		case "archive":
			err = insp.ArchiveTask(q, id)
		case "run":
			err = insp.RunTask(q, id)
		default:
			err = insp.DeleteTask(q, id)
		}
		return map[string]any{"ok": err == nil}, err
	case "archive-all", "run-all", "delete-all":
		n, err := bulk(insp, verb, arg(a, 0, "QUEUE"), arg(a, 1, "STATE"), a)
		return map[string]any{"n": n}, err
	case "pause":
		err := insp.PauseQueue(arg(a, 0, "QUEUE"))
		return map[string]any{"ok": err == nil}, err
	case "unpause":
		err := insp.UnpauseQueue(arg(a, 0, "QUEUE"))
		return map[string]any{"ok": err == nil}, err
	case "cancel":
		err := insp.CancelProcessing(arg(a, 0, "TASK_ID"))
		return map[string]any{"ok": err == nil}, err
	case "delete-queue":
		err := insp.DeleteQueue(arg(a, 0, "QUEUE"), len(a) > 1 && a[1] == "force")
		return map[string]any{"ok": err == nil}, err
	}
	return nil, fmt.Errorf("unknown verb %q", verb)
}

func queueInfo(q *asynq.QueueInfo) map[string]any {
	return map[string]any{
		"queue": q.Queue, "memory_usage": q.MemoryUsage, "latency": q.Latency.Seconds(),
		"size": q.Size, "groups": q.Groups, "pending": q.Pending, "active": q.Active,
		"scheduled": q.Scheduled, "retry": q.Retry, "archived": q.Archived,
		"completed": q.Completed, "aggregating": q.Aggregating, "processed": q.Processed,
		"failed": q.Failed, "processed_total": q.ProcessedTotal, "failed_total": q.FailedTotal,
		"paused": q.Paused, "timestamp": common.Unix(q.Timestamp),
	}
}

func listTasks(insp *asynq.Inspector, q, state string, a []string, lopts []asynq.ListOption) (any, error) {
	var ts []*asynq.TaskInfo
	var err error
	switch state {
	case "pending":
		ts, err = insp.ListPendingTasks(q, lopts...)
	case "active":
		ts, err = insp.ListActiveTasks(q, lopts...)
	case "scheduled":
		ts, err = insp.ListScheduledTasks(q, lopts...)
	case "retry":
		ts, err = insp.ListRetryTasks(q, lopts...)
	case "archived":
		ts, err = insp.ListArchivedTasks(q, lopts...)
	case "completed":
		ts, err = insp.ListCompletedTasks(q, lopts...)
	case "aggregating":
		ts, err = insp.ListAggregatingTasks(q, arg(a, 2, "GROUP"), lopts...)
	default:
		return nil, fmt.Errorf("unknown state %q", state)
	}
	return common.Tasks(ts), err
}

func bulk(insp *asynq.Inspector, verb, q, state string, a []string) (int, error) {
	group := ""
	if state == "aggregating" {
		group = arg(a, 2, "GROUP")
	}
	type fns struct{ del, run, arch func(string) (int, error) }
	table := map[string]fns{
		"pending":   {insp.DeleteAllPendingTasks, nil, insp.ArchiveAllPendingTasks},
		"scheduled": {insp.DeleteAllScheduledTasks, insp.RunAllScheduledTasks, insp.ArchiveAllScheduledTasks},
		"retry":     {insp.DeleteAllRetryTasks, insp.RunAllRetryTasks, insp.ArchiveAllRetryTasks},
		"archived":  {insp.DeleteAllArchivedTasks, insp.RunAllArchivedTasks, nil},
		"completed": {insp.DeleteAllCompletedTasks, nil, nil},
		"aggregating": {
			func(q string) (int, error) { return insp.DeleteAllAggregatingTasks(q, group) },
			func(q string) (int, error) { return insp.RunAllAggregatingTasks(q, group) },
			func(q string) (int, error) { return insp.ArchiveAllAggregatingTasks(q, group) },
		},
	}
	f, ok := table[state]
	var fn func(string) (int, error)
	if ok {
		switch verb {
		case "delete-all":
			fn = f.del
		case "run-all":
			fn = f.run
		default:
			fn = f.arch
		}
	}
	if fn == nil {
		return 0, fmt.Errorf("%s does not apply to %s tasks", verb, state)
	}
	return fn(q)
}
