"""The demo ``make demo`` runs: ``python -m gateway.demo``."""
