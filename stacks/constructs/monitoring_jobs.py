"""The scheduled monitoring jobs: EventBridge Scheduler -> Step Functions -> one SageMaker Processing job per run.

The jobs (`python -m recsys.monitoring drift|ab|showcase`) need numpy and scipy, so they run in the monitoring image
(containers/monitoring) on SageMaker Processing, not in a zip-bundled Lambda. A small state machine gives every run a
unique job name and waits for the job (`createProcessingJob.sync`), so a failed job is a failed execution that the
dashboard shows and an alarm reports. Each schedule passes the job's CLI arguments as the execution input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aws_cdk import Aws, Duration
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from recsys.config import StageConfig
from stacks.constructs.bundling import image_asset, image_context
from stacks.constructs.pipeline_step import SAGEMAKER_TRANSIENT_ERRORS
from stacks.constructs.python_lambda import VpcPlacement
from stacks.constructs.ranker_endpoint import SAGEMAKER_VPC_ACTIONS
from stacks.constructs.state_machine import logged_state_machine
from stacks.nag import acknowledge

# The image's build context is the repository root; only what the Dockerfile copies goes into it.
IMAGE_CONTEXT_EXCLUDES = image_context(
    "recsys/**", "requirements.txt", "requirements-dev.txt", "containers/monitoring/**")


@dataclass(frozen=True)
class JobSchedule:
    """One scheduled job: `job` names it (and its processing jobs, `<prefix>-<job>-<uuid>`)."""

    job: str
    expression: str
    arguments: Sequence[str]
    description: str


class MonitoringJobs(Construct):
    """`state_machine` runs one processing job per execution; `schedules` start it with each job's arguments.

    `role` is the jobs' execution role: the caller grants it what the jobs read and write.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: StageConfig,
        key: kms.IKey,
        placement: VpcPlacement,
        environment: Mapping[str, str],
        schedules: Sequence[JobSchedule],
    ) -> None:
        super().__init__(scope, id)
        settings = config.monitoring.jobs
        prefix = config.prefix
        self.image = image_asset(self, "Image", dockerfile="containers/monitoring/Dockerfile",
                                 exclude=IMAGE_CONTEXT_EXCLUDES, platform=ecr_assets.Platform.LINUX_AMD64)

        self.role = iam.Role(
            self,
            "JobRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"Execution role of the {prefix} monitoring processing jobs",
        )
        self.image.repository.grant_pull(self.role)
        key.grant(self.role, "kms:Decrypt", "kms:GenerateDataKey")
        log_group = "/aws/sagemaker/ProcessingJobs"  # SageMaker's, shared by every processing job
        log_group_arn = f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:{log_group}"
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[log_group_arn, f"{log_group_arn}:log-stream:{prefix}-*"],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": config.names.metrics_namespace}},
            )
        )
        self.role.add_to_policy(iam.PolicyStatement(actions=SAGEMAKER_VPC_ACTIONS, resources=["*"]))

        subnet_ids = placement.vpc.select_subnets(
            subnet_group_name=placement.subnets.subnet_group_name
        ).subnet_ids
        job_arn = f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}:processing-job/{prefix}-*"
        run_job = sfn.CustomState(
            self,
            "RunProcessingJob",
            state_json={
                "Type": "Task",
                "Resource": f"arn:{Aws.PARTITION}:states:::sagemaker:createProcessingJob.sync",
                "Parameters": {
                    # SageMaker job names are unique per account and region and at most 63 characters.
                    "ProcessingJobName.$": f"States.Format('{prefix}-{{}}-{{}}', $.job, States.UUID())",
                    "RoleArn": self.role.role_arn,
                    "AppSpecification": {"ImageUri": self.image.image_uri, "ContainerArguments.$": "$.arguments"},
                    "Environment": {"RECSYS_STAGE": config.stage, **environment},
                    "ProcessingResources": {
                        "ClusterConfig": {
                            "InstanceCount": 1,
                            "InstanceType": settings.instance_type,
                            "VolumeSizeInGB": settings.volume_size_gb,
                            "VolumeKmsKeyId": key.key_arn,
                        }
                    },
                    "StoppingCondition": {"MaxRuntimeInSeconds": settings.max_runtime_s},
                    "NetworkConfig": {
                        "EnableInterContainerTrafficEncryption": True,
                        "VpcConfig": {
                            "SecurityGroupIds": [placement.security_group.security_group_id],
                            "Subnets": subnet_ids,
                        },
                    },
                    "Tags": [{"Key": "monitoring-job", "Value.$": "$.job"}],
                },
                # Throttling or a busy account: retry; a job that ran and failed is not retried (the next run comes).
                "Retry": [
                    {
                        "ErrorEquals": list(SAGEMAKER_TRANSIENT_ERRORS),
                        "IntervalSeconds": 30,
                        "MaxAttempts": 3,
                        "BackoffRate": 2,
                    }
                ],
                "ResultSelector": {"job.$": "$.ProcessingJobName", "status.$": "$.ProcessingJobStatus"},
            },
        )
        self.state_machine = logged_state_machine(
            self,
            "StateMachine",
            name=config.names.monitoring_jobs_state_machine,
            definition=run_job,
            timeout=Duration.seconds(settings.max_runtime_s + 15 * 60),
            key=key,
            logs_id="StateMachineLogs",
            log_days=settings.log_retention_days,
            log_field="monitoring.jobs.log_retention_days",
            retain=config.retain_data,
        )
        state_machine_role = self.state_machine.role
        state_machine_role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:CreateProcessingJob",
                    "sagemaker:DescribeProcessingJob",
                    "sagemaker:StopProcessingJob",
                    "sagemaker:AddTags",
                ],
                resources=[job_arn],
            )
        )
        # The .sync integration waits on the job through an EventBridge rule that Step Functions manages.
        sync_rule = (
            f"arn:{Aws.PARTITION}:events:{Aws.REGION}:{Aws.ACCOUNT_ID}:rule/"
            "StepFunctionsGetEventsForSageMakerProcessingJobsRule"
        )
        state_machine_role.add_to_principal_policy(
            iam.PolicyStatement(actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                                resources=[sync_rule])
        )
        state_machine_role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )

        self.schedules: dict[str, scheduler.Schedule] = {}
        for schedule in schedules:
            self.schedules[schedule.job] = scheduler.Schedule(
                self,
                f"{schedule.job.title()}Schedule",
                schedule_name=f"{prefix}-{schedule.job}",
                description=schedule.description,
                schedule=scheduler.ScheduleExpression.expression(schedule.expression),
                key=key,
                target=targets.StepFunctionsStartExecution(
                    self.state_machine,
                    input=scheduler.ScheduleTargetInput.from_object(
                        {"job": schedule.job, "arguments": list(schedule.arguments)}
                    ),
                    # A run that cannot start within the schedule's period is superseded by the next one.
                    max_event_age=Duration.minutes(5),
                    retry_attempts=2,
                ),
            )

        self._acknowledge(prefix, state_machine_role)

    def _acknowledge(self, prefix: str, state_machine_role: iam.IRole) -> None:
        job_policy = self.role.node.find_child("DefaultPolicy").node.default_child
        acknowledge(
            job_policy,
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken, the EC2 network-interface actions SageMaker needs to place the job in the VPC, "
            "and cloudwatch:PutMetricData (limited by a condition to the platform's metrics namespace) support no "
            "resource-level permissions.",
        )
        acknowledge(
            job_policy,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:"
            f"/aws/sagemaker/ProcessingJobs:log-stream:{prefix}-*]",
            "The jobs write one log stream per run under SageMaker's fixed processing-job log group, named after the "
            "run's unique job name; the pattern stops at the stage prefix.",
        )
        machine_policy = state_machine_role.node.find_child("DefaultPolicy").node.default_child
        acknowledge(
            machine_policy,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:"
            f"processing-job/{prefix}-*]",
            "Every run creates a processing job with a new unique name; the pattern limits the state machine to the "
            "jobs of this stage.",
        )
        acknowledge(
            machine_policy,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray's PutTraceSegments, PutTelemetryRecords and GetSampling* (the state machine's tracing) and the "
            "CloudWatch Logs log-delivery actions (its execution logs) support no resource-level permissions.",
        )
