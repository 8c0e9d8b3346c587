"""The LocalStack tier's own tests: they need LocalStack (`RECSYS_TEST_AWS=localstack`, `make test-localstack`);
the root conftest leaves this folder out of the moto run."""
