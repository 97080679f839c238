"""Open-source ROR — Répertoire de l'Offre et des Ressources en santé."""

__version__ = "0.1.0"
