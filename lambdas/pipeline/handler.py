"""The daily pipeline's Lambda steps: one bundle, one entry per state (see stacks/constructs/pipeline_step.py).

Thin: each entry reads its settings from the environment and calls recsys.pipeline.aws_steps.
"""

from aws_lambda_powertools import Logger, Tracer

from recsys.pipeline import aws_steps

logger = Logger()
tracer = Tracer()


def _run(step, event):
    result = step(event, aws_steps.StepSettings.from_environment())
    logger.info("step done", extra={"step": step.__name__, "result": result})
    return result


@tracer.capture_lambda_handler
@logger.inject_lambda_context
def validate_input(event, context):
    return _run(aws_steps.validate_input, event)


@tracer.capture_lambda_handler
@logger.inject_lambda_context
def quality_gate(event, context):
    return _run(aws_steps.quality_gate, event)


@tracer.capture_lambda_handler
@logger.inject_lambda_context
def register_model(event, context):
    return _run(aws_steps.register_model, event)


@tracer.capture_lambda_handler
@logger.inject_lambda_context
def deploy(event, context):
    return _run(aws_steps.deploy, event)
