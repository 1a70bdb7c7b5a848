"""Plumbing the three Atelier services share. Domain code, SQL and schemas stay in each service."""
