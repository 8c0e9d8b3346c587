"""The S3 data lake: the Firehose record transform and (with the batch issue) its readers."""
