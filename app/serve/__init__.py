"""The process: server start-up, workers, a graceful stop."""
