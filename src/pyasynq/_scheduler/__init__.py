"""The parts of :mod:`pyasynq.scheduler`: cron specs (``cron``), Go text forms
(``goformat``), entries and their identity (``entries``), configuration (``config``), the
running engine (``engine``) and the PeriodicTaskManager (``manager``)."""
