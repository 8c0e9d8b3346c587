#!/bin/sh
# As the AWS base's entrypoint, with no emulator bundled: the runtime interface client against $AWS_LAMBDA_RUNTIME_API.
if [ $# -ne 1 ]; then
  echo "entrypoint requires the handler name to be the first argument" >&2
  exit 142
fi
exec /var/lang/bin/python3 -m awslambdaric "$1"
