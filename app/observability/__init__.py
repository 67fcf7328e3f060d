"""What operators see of a replica: Prometheus metrics and structured JSON logs."""
