"""Whole-book scoring: every customer of a file (`tierwise score`) or a Spark DataFrame
(app/book/spark.py) scored on one context, with the answers of POST /v1/score/batch.

- options.py: what a run asks for (parts, top N, explain, nested recommendations).
- output.py: the output columns (one row per customer) and the Parquet metadata.
- values.py: a file's columns → the named values the API would receive.
- chunks.py: one chunk of rows → its scored rows and the rows that failed, with field and
  problem (shared by the file command and Spark).
- sources.py: the bundles to score with (directories, registry API, registry database).
- files.py / command.py: streaming CSV and Parquet in and out, the `score` command.
- spark.py: `score_dataframe` (optional extra `tierwise[spark]`).
"""
