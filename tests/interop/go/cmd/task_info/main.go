// Command task_info prints what Go asynq's Inspector reads of one task, as one JSON line
// (tests/interop/test_snooze_typed_go.py).
package main

import (
	"encoding/json"
	"flag"
	"log"
	"os"

	"github.com/hibiken/asynq"
)

func main() {
	addr := flag.String("redis", "127.0.0.1:6379", "Redis address")
	db := flag.Int("db", 0, "Redis database")
	queue := flag.String("queue", "default", "the task's queue")
	id := flag.String("id", "", "the task id")
	flag.Parse()

	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: *addr, DB: *db})
	defer insp.Close()
	info, err := insp.GetTaskInfo(*queue, *id)
	if err != nil {
		log.Fatal(err)
	}
	qinfo, err := insp.GetQueueInfo(*queue)
	if err != nil {
		log.Fatal(err)
	}
	err = json.NewEncoder(os.Stdout).Encode(map[string]any{
		"state":           info.State.String(),
		"retried":         info.Retried,
		"last_err":        info.LastErr,
		"last_failed_at":  info.LastFailedAt.Unix(),
		"next_process_at": info.NextProcessAt.Unix(),
		"payload":         string(info.Payload),
		"queue_scheduled": qinfo.Scheduled,
	})
	if err != nil {
		log.Fatal(err)
	}
}
