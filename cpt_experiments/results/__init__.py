"""Results tables (store), their collection from stage logs, and the metrics computed from them."""
