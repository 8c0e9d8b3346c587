"""The daily pipeline (Amp's batch half, Meesho's retraining, Personalize's import -> train -> deploy MLOps):
a Step Functions state machine on an EventBridge Scheduler schedule. docs/pipeline.md draws it.

    ValidateInput -> BatchFeatures -> IngestFeatures -> BuildTrainingSet -> Train -> Evaluate -> QualityGate
      -> ModelPassedGate? --yes--> RegisterModel -> Deploy -> Notify
                          --no---> Notify
    any task's error (after its retries) -> CountFailure -> AlertOnCall -> PipelineFailed

State names are recsys.pipeline.steps.Step values, which the local runner (recsys.local.daily) runs too.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, CfnOutput, Duration, Stack, TimeZone
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from recsys.batch.feature_store import STORE_ENTITIES
from recsys.config import StageConfig
from recsys.pipeline.steps import Step
from stacks.constructs.bundling import image_asset, image_context
from stacks.constructs.pipeline_step import (
    SAGEMAKER_TRANSIENT_ERRORS,
    PipelineLambdaStep,
    retry_props,
    with_retries,
)
from stacks.constructs.state_machine import logged_state_machine
from stacks.constructs.topics import EncryptedTopic
from stacks.foundation import shared_key
from stacks.nag import acknowledge
from stacks.network import NetworkStack
from stacks.serving import ServingStack

# The images' build context is the repository root; only what each Dockerfile copies is staged (and hashed).
PROCESSING_CONTEXT = image_context("recsys", "requirements.txt", "containers/processing/Dockerfile",
                                   "containers/processing/job.py")
TRAINING_CONTEXT = image_context("recsys", "containers/training/Dockerfile", "containers/training/requirements.txt",
                                 "containers/training/train.py")
PROCESSING_INPUT = "/opt/ml/processing/input/interactions"
PROCESSING_OUTPUT = "/opt/ml/processing/output"
INGEST_SCRIPT = "/opt/program/recsys/pipeline/ingest_job.py"
# The failure path's metric (namespace: config.names.metrics_namespace); the monitoring dashboard graphs it.
FAILURE_METRIC = "PipelineFailures"
DEFAULT_INPUT = {"source": "schedule"}


class PipelineStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: StageConfig,
        key: kms.IKey,
        alarm_topic: sns.ITopic,
        network: NetworkStack,
        serving: ServingStack,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        self.config = config
        names = config.names
        prefix = config.prefix
        self.key = shared_key(self, key)
        # By name, as the serving stack does: IAM resources and nag findings read as the buckets' names.
        self.lake_bucket = s3.Bucket.from_bucket_name(self, "LakeBucket", names.bucket("lake", Aws.ACCOUNT_ID))
        self.artifacts_bucket = s3.Bucket.from_bucket_name(
            self, "ArtifactsBucket", names.bucket("artifacts", Aws.ACCOUNT_ID)
        )

        self.processing_image = self._image("ProcessingImage", "containers/processing/Dockerfile", PROCESSING_CONTEXT)
        self.training_image = self._image("TrainingImage", "containers/training/Dockerfile", TRAINING_CONTEXT)
        self.job_role = self._job_role()
        self.model_package_group = sagemaker.CfnModelPackageGroup(
            self,
            "ModelPackageGroup",
            model_package_group_name=names.model_package_group,
            model_package_group_description=f"{prefix}: ranker bundles that passed the daily pipeline's quality gate",
        )
        self.topic = EncryptedTopic(self, "PipelineTopic", topic_name=names.pipeline_topic, key=self.key).topic
        self.alarm_topic = alarm_topic

        ranker = serving.ranker
        subnet_ids = network.vpc.select_subnets(subnet_group_name=network.app_subnets.subnet_group_name).subnet_ids
        environment = {
            "LAKE_BUCKET": self.lake_bucket.bucket_name,
            "ARTIFACTS_BUCKET": self.artifacts_bucket.bucket_name,
            "KMS_KEY_ARN": self.key.key_arn,
            "TRAINING_IMAGE_URI": self.training_image.image_uri,
            "INFERENCE_IMAGE_URI": ranker.image.image_uri,
            "MODEL_ROLE_ARN": ranker.role.role_arn,
            "MODEL_SECURITY_GROUP": ranker.security_group.security_group_id,
            "MODEL_SUBNETS": ",".join(subnet_ids),
        }
        self.steps = self._lambda_steps(environment)
        self._grant_steps(ranker.role)

        self.state_machine = logged_state_machine(
            self,
            "StateMachine",
            name=names.state_machine,
            definition=self._definition(),
            timeout=Duration.hours(24),
            key=self.key,
            logs_id="StateMachineLogs",
            log_days=config.pipeline.log_retention_days,
            log_field="pipeline.log_retention_days",
            retain=config.retain_data,
        )
        self._grant_state_machine()
        self.schedule = self._schedule()
        self._acknowledge()

        CfnOutput(self, "StateMachineArn", value=self.state_machine.state_machine_arn)
        CfnOutput(self, "PipelineTopicArn", value=self.topic.topic_arn)

    # --- building blocks ------------------------------------------------------------------------------------

    def _image(self, id: str, dockerfile: str, context: list[str]) -> ecr_assets.DockerImageAsset:
        return image_asset(self, id, dockerfile=dockerfile, exclude=context, platform=ecr_assets.Platform.LINUX_AMD64)

    def _job_role(self) -> iam.Role:
        """The processing and training jobs' execution role: the lake and artifacts buckets, the key, the two
        feature groups, the images, and SageMaker's own log groups."""
        prefix = self.config.prefix
        role = iam.Role(
            self,
            "JobRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"Execution role of the {prefix} daily pipeline's processing and training jobs",
        )
        # The Spark jobs read the lake and (re)write features/ and training/ there (an overwrite deletes).
        role.add_to_policy(_s3(["s3:ListBucket"], self.lake_bucket.bucket_arn))
        role.add_to_policy(
            _s3(["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], self.lake_bucket.arn_for_objects("*"))
        )
        role.add_to_policy(_s3(["s3:GetObject", "s3:PutObject"], self.artifacts_bucket.arn_for_objects("pipeline/*")))
        self.key.grant(role, "kms:Decrypt", "kms:GenerateDataKey")
        self.processing_image.repository.grant_pull(role)
        self.training_image.repository.grant_pull(role)
        sagemaker_arn = f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}"
        groups = [f"{sagemaker_arn}:feature-group/{self.config.names.feature_group(e)}" for e in STORE_ENTITIES]
        role.add_to_policy(iam.PolicyStatement(actions=["sagemaker:PutRecord"], resources=groups))
        log_groups = [
            f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:/aws/sagemaker/{kind}"
            for kind in ("ProcessingJobs", "TrainingJobs")
        ]
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[*log_groups, *(f"{group}:log-stream:{prefix}-*" for group in log_groups)],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={
                    "StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*", self.config.names.metrics_namespace]}
                },
            )
        )
        return role

    def _lambda_steps(self, environment: dict[str, str]) -> dict[Step, PipelineLambdaStep]:
        def step(step: Step, entry: str, description: str, payload: dict[str, str], result_path: str,
                 env: tuple[str, ...]) -> PipelineLambdaStep:
            return PipelineLambdaStep(
                self,
                f"{step.value}Step",
                config=self.config,
                step=step,
                entry=entry,
                key=self.key,
                description=description,
                payload=payload,
                result_path=result_path,
                environment={name: environment[name] for name in env},
            )

        buckets = ("LAKE_BUCKET", "ARTIFACTS_BUCKET")
        return {
            Step.VALIDATE_INPUT: step(
                Step.VALIDATE_INPUT, "validate_input", "Daily pipeline: checks the input, plans the run",
                {"input.$": "$", "execution.$": "$$.Execution.Name", "started_at.$": "$$.Execution.StartTime"},
                "$.run", (*buckets, "TRAINING_IMAGE_URI"),
            ),
            Step.QUALITY_GATE: step(
                Step.QUALITY_GATE, "quality_gate", "Daily pipeline: the quality gate over the evaluation report",
                {"run.$": "$.run"}, "$.gate", buckets,
            ),
            Step.REGISTER_MODEL: step(
                Step.REGISTER_MODEL, "register_model", "Daily pipeline: registers the model package",
                {"run.$": "$.run", "gate.$": "$.gate", "model_data.$": "$.training.model_data"},
                "$.registration", (*buckets, "INFERENCE_IMAGE_URI"),
            ),
            Step.DEPLOY: step(
                Step.DEPLOY, "deploy", "Daily pipeline: deploys the new model as the endpoint's challenger",
                {"run.$": "$.run", "model_package.$": "$.registration.model_package_arn",
                 "model_data.$": "$.training.model_data"},
                "$.deployment",
                (*buckets, "KMS_KEY_ARN", "INFERENCE_IMAGE_URI", "MODEL_ROLE_ARN", "MODEL_SECURITY_GROUP",
                 "MODEL_SUBNETS"),
            ),
        }

    def _grant_steps(self, model_role: iam.IRole) -> None:
        names = self.config.names
        arn = f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}"
        validate = self.steps[Step.VALIDATE_INPUT].function.role
        validate.add_to_principal_policy(_s3(["s3:ListBucket"], self.lake_bucket.bucket_arn))
        validate.add_to_principal_policy(_s3(["s3:PutObject"], self.artifacts_bucket.arn_for_objects("pipeline/*")))
        self.key.grant(validate, "kms:Decrypt", "kms:GenerateDataKey")

        endpoint = f"{arn}:endpoint/{names.endpoint}"
        endpoint_configs = f"{arn}:endpoint-config/{self.config.prefix}-*"
        models = f"{arn}:model/{self.config.prefix}-*"
        package_group = f"{arn}:model-package-group/{names.model_package_group}"
        packages = f"{arn}:model-package/{names.model_package_group}/*"
        champion_lookup = iam.PolicyStatement(
            actions=["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig", "sagemaker:DescribeModel",
                     "sagemaker:ListTags", "sagemaker:DescribeModelPackage"],
            resources=[endpoint, endpoint_configs, models, packages],
        )
        gate = self.steps[Step.QUALITY_GATE].function.role
        gate.add_to_principal_policy(_s3(["s3:GetObject"], self.artifacts_bucket.arn_for_objects("pipeline/*")))
        self.key.grant(gate, "kms:Decrypt")
        gate.add_to_principal_policy(champion_lookup)

        register = self.steps[Step.REGISTER_MODEL].function.role
        register.add_to_principal_policy(
            iam.PolicyStatement(actions=["sagemaker:CreateModelPackage", "sagemaker:AddTags"],
                                resources=[package_group, packages])
        )

        deploy = self.steps[Step.DEPLOY].function.role
        deploy.add_to_principal_policy(champion_lookup)
        deploy.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["sagemaker:CreateModel", "sagemaker:CreateEndpointConfig", "sagemaker:CreateEndpoint",
                         "sagemaker:UpdateEndpoint", "sagemaker:AddTags"],
                resources=[endpoint, endpoint_configs, models],
            )
        )
        deploy.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[model_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        # The new model's artifact, copied to the variant's live key (ServingConfig.live_model_key).
        deploy.add_to_principal_policy(_s3(["s3:GetObject"], self.artifacts_bucket.arn_for_objects("pipeline/*")))
        deploy.add_to_principal_policy(
            _s3(["s3:GetObject", "s3:PutObject"],
                self.artifacts_bucket.arn_for_objects(f"{self.config.serving.model_prefix}/*"))
        )
        self.key.grant(deploy, "kms:Decrypt", "kms:GenerateDataKey")

    # --- the state machine ----------------------------------------------------------------------------------

    def _processing_job(self, step: Step, job: str, app: dict[str, Any], result_path: str, *,
                        instance_count: int, instance_type: str, volume_gb: int, max_runtime_s: int,
                        extra: dict[str, Any] | None = None) -> sfn.CustomState:
        return sfn.CustomState(
            self,
            step.value,
            state_json={
                "Type": "Task",
                "Resource": f"arn:{Aws.PARTITION}:states:::sagemaker:createProcessingJob.sync",
                "Parameters": {
                    "ProcessingJobName.$": f"$.run.jobs.{job}",
                    "RoleArn": self.job_role.role_arn,
                    "AppSpecification": app,
                    "Environment": {"RECSYS_STAGE": self.config.stage},
                    "ProcessingResources": {
                        "ClusterConfig": {
                            "InstanceCount": instance_count,
                            "InstanceType": instance_type,
                            "VolumeSizeInGB": volume_gb,
                            "VolumeKmsKeyId": self.key.key_arn,
                        }
                    },
                    "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime_s},
                    "NetworkConfig": {"EnableInterContainerTrafficEncryption": True},
                    "Tags": [{"Key": "recsys:pipeline-run", "Value.$": "$.run.run_id"}],
                    **(extra or {}),
                },
                "ResultSelector": {"job.$": "$.ProcessingJobName", "status.$": "$.ProcessingJobStatus"},
                "ResultPath": result_path,
                "Retry": [retry_props(SAGEMAKER_TRANSIENT_ERRORS, self.config.pipeline)],
            },
        )

    def _spark_job(self, step: Step, job: str, arguments: str, result_path: str) -> sfn.CustomState:
        processing = self.config.batch_features.processing
        return self._processing_job(
            step, job, {"ImageUri": self.processing_image.image_uri, "ContainerArguments.$": arguments}, result_path,
            instance_count=processing.instance_count, instance_type=processing.instance_type,
            volume_gb=processing.volume_size_gb, max_runtime_s=processing.max_runtime_s,
        )

    def _definition(self) -> sfn.IChainable:
        config = self.config
        stage = config.stage
        common = f"'--lake', $.run.lake, '--output', $.run.output, '--cutoff', $.run.cutoff, '--stage', '{stage}'"
        window = "'--window-days', States.Format('{}', $.run.window_days)"
        batch_features = self._spark_job(
            Step.BATCH_FEATURES, "features",
            f"States.Array({common}, {window}, '--snapshot-date', $.run.snapshot_date, '--mode', 'features')",
            "$.jobs.features",
        )
        ingest = self._processing_job(
            Step.INGEST_FEATURES, "ingest",
            {
                "ImageUri": self.processing_image.image_uri,
                "ContainerEntrypoint": ["smspark-submit", INGEST_SCRIPT],
                "ContainerArguments.$": f"States.Array('--output', $.run.output, '--snapshot-date', "
                                        f"$.run.snapshot_date, '--ingest', 'sagemaker', '--stage', '{stage}')",
            },
            "$.jobs.ingest",
            instance_count=config.batch_features.processing.instance_count,
            instance_type=config.batch_features.processing.instance_type,
            volume_gb=config.batch_features.processing.volume_size_gb,
            max_runtime_s=config.batch_features.processing.max_runtime_s,
        )
        training_set = self._spark_job(
            Step.BUILD_TRAINING_SET, "trainset",
            f"States.Array({common}, {window}, '--mode', 'training-set')",
            "$.jobs.training_set",
        )
        train = self._train_state()
        evaluate = self._processing_job(
            Step.EVALUATE, "evaluate",
            {
                "ImageUri": self.training_image.image_uri,
                "ContainerEntrypoint": ["python3", "-m", "recsys.pipeline.evaluate_job"],
                "ContainerArguments": ["--dataset", PROCESSING_INPUT, "--out", PROCESSING_OUTPUT],
            },
            "$.jobs.evaluate",
            instance_count=1,
            instance_type=config.pipeline.evaluation_instance_type,
            volume_gb=config.pipeline.training_volume_gb,
            max_runtime_s=config.pipeline.evaluation_max_runtime_s,
            extra={
                "ProcessingInputs": [{
                    "InputName": "interactions",
                    "S3Input": {"S3Uri.$": "$.run.interactions_manifest", "S3DataType": "ManifestFile",
                                "LocalPath": PROCESSING_INPUT, "S3InputMode": "File",
                                "S3DataDistributionType": "FullyReplicated"},
                }],
                "ProcessingOutputConfig": {
                    "KmsKeyId": self.key.key_arn,
                    "Outputs": [{
                        "OutputName": "evaluation",
                        "S3Output": {"S3Uri.$": "$.run.evaluation", "LocalPath": PROCESSING_OUTPUT,
                                     "S3UploadMode": "EndOfJob"},
                    }],
                },
            },
        )
        notify = tasks.SnsPublish(
            self,
            Step.NOTIFY.value,
            topic=self.topic,
            subject=f"{config.prefix} daily pipeline finished",
            message=sfn.TaskInput.from_object({
                "execution": sfn.JsonPath.string_at("$$.Execution.Name"),
                "run": sfn.JsonPath.string_at("$.run.run_id"),
                "cutoff": sfn.JsonPath.string_at("$.run.cutoff"),
                "deployed": sfn.JsonPath.string_at("$.gate.passed"),
                "reasons": sfn.JsonPath.list_at("$.gate.reasons"),
            }),
            result_path=sfn.JsonPath.DISCARD,
        )
        with_retries(notify, ("States.ALL",), config.pipeline)
        gate_choice = (
            sfn.Choice(self, "ModelPassedGate")
            .when(sfn.Condition.boolean_equals("$.gate.passed", True),
                  self.steps[Step.REGISTER_MODEL].task.next(self.steps[Step.DEPLOY].task).next(notify))
            .otherwise(notify)
        )
        failure = self._failure_path()
        tasks_in_order = [self.steps[Step.VALIDATE_INPUT].task, batch_features, ingest, training_set, train, evaluate,
                          self.steps[Step.QUALITY_GATE].task, self.steps[Step.REGISTER_MODEL].task,
                          self.steps[Step.DEPLOY].task, notify]
        for state in tasks_in_order:
            state.add_catch(failure, errors=["States.ALL"], result_path="$.error")
        chain = sfn.Chain.start(tasks_in_order[0])
        for state in tasks_in_order[1:7]:
            chain = chain.next(state)
        return chain.next(gate_choice)

    def _train_state(self) -> sfn.CustomState:
        pipeline = self.config.pipeline

        def channel(name: str, data_type: str, uri_path: str) -> dict[str, Any]:
            return {
                "ChannelName": name,
                "DataSource": {"S3DataSource": {"S3DataType": data_type, "S3Uri.$": uri_path,
                                                "S3DataDistributionType": "FullyReplicated"}},
            }

        return sfn.CustomState(
            self,
            Step.TRAIN.value,
            state_json={
                "Type": "Task",
                "Resource": f"arn:{Aws.PARTITION}:states:::sagemaker:createTrainingJob.sync",
                "Parameters": {
                    "TrainingJobName.$": "$.run.jobs.train",
                    "RoleArn": self.job_role.role_arn,
                    # Image and hyperparameters come from the run plan: defaults, or the execution input's.
                    "AlgorithmSpecification": {"TrainingImage.$": "$.run.training_image", "TrainingInputMode": "File"},
                    "HyperParameters.$": "$.run.hyperparameters",
                    "InputDataConfig": [
                        channel("train", "S3Prefix", "$.run.training_set"),
                        channel("interactions", "ManifestFile", "$.run.interactions_manifest"),
                    ],
                    "OutputDataConfig": {"S3OutputPath.$": "$.run.model_output", "KmsKeyId": self.key.key_arn},
                    "ResourceConfig": {
                        "InstanceCount": 1,
                        "InstanceType": pipeline.training_instance_type,
                        "VolumeSizeInGB": pipeline.training_volume_gb,
                        "VolumeKmsKeyId": self.key.key_arn,
                    },
                    "StoppingCondition": {"MaxRuntimeInSeconds": pipeline.training_max_runtime_s},
                    # train.py reads its channels and writes the bundle: it needs no network.
                    "EnableNetworkIsolation": True,
                    "EnableInterContainerTrafficEncryption": True,
                    "Tags": [{"Key": "recsys:pipeline-run", "Value.$": "$.run.run_id"}],
                },
                "ResultSelector": {"job.$": "$.TrainingJobName", "model_data.$": "$.ModelArtifacts.S3ModelArtifacts"},
                "ResultPath": "$.training",
                "Retry": [retry_props(SAGEMAKER_TRANSIENT_ERRORS, pipeline)],
            },
        )

    def _failure_path(self) -> sfn.IChainable:
        names = self.config.names
        # An SDK task, not a Lambda: the failure path must not depend on more code that could fail. The grant
        # (cloudwatch:PutMetricData, limited to the platform's namespace) is in _grant_state_machine.
        count = sfn.CustomState(
            self,
            "CountFailure",
            state_json={
                "Type": "Task",
                "Resource": f"arn:{Aws.PARTITION}:states:::aws-sdk:cloudwatch:putMetricData",
                "Parameters": {
                    "Namespace": names.metrics_namespace,
                    "MetricData": [{"MetricName": FAILURE_METRIC, "Value": 1, "Unit": "Count"}],
                },
                # Not null: CDK drops null values from a custom state, and "$" would replace the error with {}.
                "ResultPath": "$.failure_metric",
                "Retry": [retry_props(("States.ALL",), self.config.pipeline)],
            },
        )
        alert = tasks.SnsPublish(
            self,
            "AlertOnCall",
            topic=self.alarm_topic,
            subject=f"{self.config.prefix} daily pipeline FAILED",
            message=sfn.TaskInput.from_object({
                "execution": sfn.JsonPath.string_at("$$.Execution.Id"),
                "error": sfn.JsonPath.string_at("$.error.Error"),
                "cause": sfn.JsonPath.string_at("$.error.Cause"),
            }),
            result_path=sfn.JsonPath.DISCARD,
        )
        with_retries(alert, ("States.ALL",), self.config.pipeline)
        failed = sfn.Fail(self, "PipelineFailed", error="PipelineFailed",
                          cause="A step failed after its retries; the on-call topic has the error.")
        return count.next(alert).next(failed)

    def _grant_state_machine(self) -> None:
        role = self.state_machine.role
        arn = f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}"
        prefix = self.config.prefix
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob",
                         "sagemaker:StopProcessingJob", "sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob",
                         "sagemaker:StopTrainingJob", "sagemaker:AddTags"],
                resources=[f"{arn}:processing-job/{prefix}-*", f"{arn}:training-job/{prefix}-*"],
            )
        )
        # The .sync integrations wait on the jobs through EventBridge rules that Step Functions manages.
        rule = f"arn:{Aws.PARTITION}:events:{Aws.REGION}:{Aws.ACCOUNT_ID}:rule/StepFunctionsGetEventsForSageMaker"
        rules = [f"{rule}{kind}JobsRule" for kind in ("Processing", "Training")]
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"], resources=rules)
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.job_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": self.config.names.metrics_namespace}},
            )
        )
        # Publishing to the KMS-encrypted topics.
        self.key.grant(role, "kms:Decrypt", "kms:GenerateDataKey")

    def _schedule(self) -> scheduler.Schedule:
        pipeline = self.config.pipeline
        return scheduler.Schedule(
            self,
            "DailySchedule",
            schedule_name=self.config.names.state_machine,
            description=f"{self.config.prefix}: starts the daily pipeline ({pipeline.schedule} {pipeline.timezone})",
            schedule=scheduler.ScheduleExpression.expression(pipeline.schedule,
                                                             time_zone=TimeZone.of(pipeline.timezone)),
            enabled=pipeline.schedule_enabled,
            key=self.key,
            target=scheduler_targets.StepFunctionsStartExecution(
                self.state_machine,
                input=scheduler.ScheduleTargetInput.from_object(DEFAULT_INPUT),
                # A run that cannot start within two hours is left to the next day's.
                max_event_age=Duration.hours(2),
                retry_attempts=pipeline.retry_attempts,
            ),
        )

    def _acknowledge(self) -> None:
        prefix = self.config.prefix
        names = self.config.names
        sagemaker_arn = "arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>"
        lake = f"arn:<AWS::Partition>:s3:::{names.bucket('lake', '<AWS::AccountId>')}"
        artifacts = f"arn:<AWS::Partition>:s3:::{names.bucket('artifacts', '<AWS::AccountId>')}"
        logs = "arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/sagemaker"
        run_objects = (f"Resource::{artifacts}/pipeline/*",
                       "Each run writes its manifest, model and evaluation report below pipeline/<run id>/.")
        run_names = ("Every run creates SageMaker resources with new names (the run id); the pattern stops at the "
                     "stage prefix.")
        endpoint_configs = (f"Resource::{sagemaker_arn}:endpoint-config/{prefix}-*", run_names)
        models = (f"Resource::{sagemaker_arn}:model/{prefix}-*", run_names)
        packages = (f"Resource::{sagemaker_arn}:model-package/{names.model_package_group}/*",
                    "Model package versions are numbered by SageMaker inside the one group of this stage.")
        findings = {
            self.job_role: [
                ("Resource::*", "ecr:GetAuthorizationToken and cloudwatch:PutMetricData (limited by a condition to "
                                "SageMaker's and the platform's namespaces) support no resource-level permissions."),
                (f"Resource::{lake}/*", "The Spark jobs read any event, import and feature partition of the lake and "
                                        "rewrite the features/ and training/ snapshots they produce."),
                run_objects,
                *((f"Resource::{logs}/{kind}:log-stream:{prefix}-*",
                   "The jobs write one log stream per run under SageMaker's fixed log group, named after the run's "
                   "unique job name; the pattern stops at the stage prefix.")
                  for kind in ("ProcessingJobs", "TrainingJobs")),
            ],
            self.steps[Step.VALIDATE_INPUT].function.role: [run_objects],
            self.steps[Step.QUALITY_GATE].function.role: [run_objects, endpoint_configs, models, packages],
            self.steps[Step.REGISTER_MODEL].function.role: [packages],
            self.steps[Step.DEPLOY].function.role: [
                run_objects, endpoint_configs, models, packages,
                (f"Resource::{artifacts}/{self.config.serving.model_prefix}/*",
                 "Deploy copies each variant's artifact to its live key under the serving model prefix."),
            ],
        }
        for role, role_findings in findings.items():
            policy = role.node.find_child("DefaultPolicy").node.default_child
            for finding, reason in role_findings:
                acknowledge(policy, f"AwsSolutions-IAM5[{finding}]", reason)

        machine_policy = self.state_machine.role.node.find_child("DefaultPolicy").node.default_child
        for kind in ("processing-job", "training-job"):
            acknowledge(
                machine_policy,
                f"AwsSolutions-IAM5[Resource::{sagemaker_arn}:{kind}/{prefix}-*]",
                f"Every run creates {kind}s with new unique names (the run id); the pattern limits the state "
                "machine to this stage's jobs.",
            )
        for step in (Step.VALIDATE_INPUT, Step.QUALITY_GATE, Step.REGISTER_MODEL, Step.DEPLOY):
            function = self._logical_id(self.steps[step].function.function)
            acknowledge(
                machine_policy,
                f"AwsSolutions-IAM5[Resource::<{function}.Arn>:*]",
                "lambda:InvokeFunction on the step's own function and its versions or aliases (CDK's grant for a "
                "Lambda task); no other function.",
            )
        acknowledge(
            machine_policy,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray's PutTraceSegments, PutTelemetryRecords and GetSampling* (tracing), the log delivery actions of "
            "Step Functions' logging, and cloudwatch:PutMetricData (limited by a condition to the platform's "
            "namespace) support no resource-level permissions.",
        )

    def _logical_id(self, construct: Construct) -> str:
        return self.resolve(self.get_logical_id(construct.node.default_child))


def _s3(actions: list[str], resource: str) -> iam.PolicyStatement:
    return iam.PolicyStatement(actions=actions, resources=[resource])
