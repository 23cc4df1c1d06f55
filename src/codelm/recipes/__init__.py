"""Recipes: one YAML per model recipe (data, tokenizer, model, stages, eval, serve), planned and run."""
