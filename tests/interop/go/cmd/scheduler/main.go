// Command scheduler runs a Go asynq Scheduler with the entries given as flags and prints
// one JSON line per registered entry ({"entry_id", "spec", "type", "payload", "queue"}),
// then {"event": "ready"}; it runs until SIGTERM.
package main

import (
	"flag"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"pyasynq.dev/interop/internal/common"
)

func main() {
	url := flag.String("redis-url", "redis://127.0.0.1:6379/0", "Redis URL")
	var entries common.Multi
	flag.Var(&entries, "entry", "SPEC|TYPE|PAYLOAD|QUEUE, e.g. '@every 1s|cron:tick|x|default' (repeatable)")
	heartbeat := flag.Duration("heartbeat-interval", time.Second, "HeartbeatInterval (entries are written this often)")
	flag.Parse()

	s := asynq.NewScheduler(common.Redis(*url), &asynq.SchedulerOpts{
		HeartbeatInterval: *heartbeat,
		LogLevel:          asynq.WarnLevel,
	})
	for _, e := range entries {
		parts := strings.SplitN(e, "|", 4)
		for len(parts) < 4 {
			parts = append(parts, "")
		}
		spec, typ, payload, queue := parts[0], parts[1], parts[2], parts[3]
		var opts []asynq.Option
		if queue != "" {
			opts = append(opts, asynq.Queue(queue))
		}
		id, err := s.Register(spec, asynq.NewTask(typ, []byte(payload)), opts...)
		if err != nil {
			common.Die("cannot register %q: %v", e, err)
		}
		common.Print(map[string]any{"entry_id": id, "spec": spec, "type": typ, "payload": payload, "queue": queue})
	}
	if err := s.Start(); err != nil {
		common.Die("scheduler did not start: %v", err)
	}
	common.Print(map[string]any{"event": "ready", "pid": os.Getpid()})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	s.Shutdown()
}
