"""Tension en établissement de santé (TES): an establishment declares its tension level (docs/tension.md) with
reasons and corrective actions; ARS and SAMU follow the regional board live and are alerted on escalation."""

from ror.tension.model import LEVELS, Declaration
from ror.tension.service import TensionService

__all__ = ["LEVELS", "Declaration", "TensionService"]
