// What the ECS driver records between phases: plain JSON, so a later task (a strategy's separate step) can go on
// from it. Task-definition ARNs and a deployment id are all ECS needs to follow, finish or undo a rollout.
export interface EcsPhaseState extends Record<string, unknown> {
  cluster: string;
  service: string;
  serviceArn: string;
  /** The task definition the service ran when the task began: what restore goes back to. */
  previousTaskDefinition: string;
  /** The task definition this task deploys (registered in start, or an earlier one reused). */
  newTaskDefinition?: string;
  /** An earlier revision already carrying the pinned images (a rollback), used instead of registering a new one. */
  reuseTaskDefinition?: string;
  /** Our deployment's id in the service's deployments[]. */
  deploymentId?: string;
  /** container name → component, as mapped for this task. */
  containers: Record<string, string>;
  /** The service already runs exactly these images: nothing to roll out. */
  alreadyDeployed?: boolean;
  /** The service's deployment strategy when the task began (ROLLING unless BLUE_GREEN, LINEAR or CANARY). */
  strategy?: string;
  /** For BLUE_GREEN / LINEAR / CANARY: the service deployment the update started, followed instead of deployments[]. */
  serviceDeploymentArn?: string;
  /** Ferry's own verdict against the service deployment (a failed bake or gate), once it gave one. */
  ferryFailure?: { code: "HEALTH_CHECK_FAILED" | "CANARY_ANALYSIS_FAILED"; summary: string };
  /** What the running tasks were checked to run. */
  verified?: { taskArn: string; container: string; digest: string }[];
}
