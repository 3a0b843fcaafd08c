"""Results tables (schema, store), their collection from stage logs, and the metrics computed from them."""
