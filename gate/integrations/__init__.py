"""Integrations with training frameworks: gate a model while it trains (see gate.integrations.transformers)."""
