"""Durable push to consumers: FHIR R4 Subscriptions (backport IG conventions, rest-hook channel) delivered from an
outbox filled in the writing transaction, with exponential retry for more than 24 h (docs/subscriptions.md)."""

from ror.subscriptions.model import Subscription
from ror.subscriptions.service import SubscriptionService

__all__ = ["Subscription", "SubscriptionService"]
