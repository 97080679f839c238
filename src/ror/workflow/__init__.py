"""The validation workflow of offer and structure changes (docs/workflow.md): brouillon → soumis → valide →
publie, rejete back to the author; consumers only ever see published versions (drafts live in `offer_change`)."""

from ror.workflow.service import ACTIONS, Change, Transition, WorkflowError, WorkflowService

__all__ = ["ACTIONS", "Change", "Transition", "WorkflowError", "WorkflowService"]
