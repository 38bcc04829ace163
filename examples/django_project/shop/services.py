"""Placing an order: the row and its confirmation task commit together or not at all."""

from __future__ import annotations

from django.db import transaction

import pyasynq
from pyasynq.integrations.django import PendingEnqueue, enqueue_on_commit

from .models import Order


class OutOfStock(Exception):
    pass


def place_order(customer: str, quantity: int) -> tuple[Order, PendingEnqueue]:
    """Save the order; ``orders:confirm`` is enqueued only when the transaction commits."""
    with transaction.atomic():
        order = Order.objects.create(customer=customer, quantity=quantity)
        task = pyasynq.Task.from_json("orders:confirm", {"order": order.pk})
        pending = enqueue_on_commit(task, queue="orders", max_retry=5)
        if quantity > 10:
            raise OutOfStock(f"only 10 in stock, {customer} asked for {quantity}")
    return order, pending
