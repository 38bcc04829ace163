"""Run by Django's test runner (``python manage.py test shop``) on SQLite or PostgreSQL,
against the Redis of PYASYNQ["REDIS_URL"], whose database the tests flush."""

from __future__ import annotations

import redis
from django.conf import settings
from django.test import TransactionTestCase

from pyasynq.testing import run_until_idle

from .models import Order
from .services import OutOfStock, place_order
from .tasks import mux

PENDING = "asynq:{orders}:pending"


class EnqueueOnCommitTests(TransactionTestCase):
    # TransactionTestCase: real COMMITs, so on_commit callbacks run as in production.

    def setUp(self) -> None:
        self.redis = redis.Redis.from_url(settings.PYASYNQ["REDIS_URL"])
        self.redis.flushdb()
        self.addCleanup(self.redis.close)

    def test_a_committed_order_enqueues_its_task_once(self) -> None:
        order, pending = place_order("ada", 2)
        assert pending.info is not None
        self.assertEqual(self.redis.lrange(PENDING, 0, -1), [pending.info.id.encode()])
        self.assertEqual(pending.task.json(), {"order": order.pk})

    def test_a_rolled_back_order_enqueues_nothing(self) -> None:
        with self.assertRaises(OutOfStock):
            place_order("bob", 50)
        self.assertEqual(Order.objects.count(), 0)
        self.assertEqual(self.redis.exists(PENDING), 0)
        self.assertEqual(self.redis.keys("asynq:*"), [])

    def test_the_worker_confirms_the_committed_order(self) -> None:
        order, _ = place_order("cy", 1)
        report = run_until_idle(settings.PYASYNQ["REDIS_URL"], mux, queues={"orders": 1})
        self.assertEqual((report.processed, report.errors), (1, {}))
        order.refresh_from_db()
        self.assertTrue(order.confirmed)
