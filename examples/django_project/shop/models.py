"""An order, confirmed by a task once it is committed."""

from __future__ import annotations

from django.db import models


class Order(models.Model):
    customer = models.CharField(max_length=100)
    quantity = models.PositiveIntegerField()
    confirmed = models.BooleanField(default=False)

    class Meta:
        app_label = "shop"
