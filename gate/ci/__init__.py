"""CI glue: GitHub Actions reporting (summary, outputs, annotations, PR comment) and the Action's entrypoint."""
