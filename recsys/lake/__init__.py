"""The S3 data lake: the Firehose record transform, the stream's prefixes, the Glue view and a local Firehose
(see README.md)."""
