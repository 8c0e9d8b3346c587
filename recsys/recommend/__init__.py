"""The recommend API: candidates, enrichment, scoring with sticky A/B variants and fallback, filters, the blender,
exposure logging; batch recommendations on the same path. See README.md."""
