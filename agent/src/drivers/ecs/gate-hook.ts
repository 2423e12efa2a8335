// Ferry's gate function: an AWS Lambda function a BLUE_GREEN, LINEAR or CANARY ECS service names as a lifecycle hook,
// so that the deployment waits at that stage for Ferry's verdict (docs/drivers/ecs.md#the-gate-function).
//
// ECS invokes it at each stage the hook names with {executionDetails: {serviceArn, targetServiceRevisionArn,
// testTrafficWeights, productionTrafficWeights}, executionId, lifecycleStage, resourceArn (the service deployment),
// hookDetails}. The gateway agent, which follows the deployment, checks the target revision at that stage and records
// its verdict as the service tag `ferry.gate` = `<service deployment id> <stage> <SUCCEEDED|FAILED>`. Until that tag
// names this deployment and stage the function answers IN_PROGRESS (ECS asks again after callBackDelay seconds); then
// it answers the verdict: SUCCEEDED lets ECS go on, FAILED makes ECS roll back. Answering IN_PROGRESS when the tag
// cannot be read (throttling, a network fault) keeps a transient fault from rolling a deployment back; the hook's
// timeoutConfiguration (ECS default 24 h, then ROLLBACK) bounds the wait when no agent ever answers.
//
// The file imports nothing but @aws-sdk/client-ecs, which the Lambda Node.js runtimes include: the built file
// (agent/dist/drivers/ecs/gate-hook.js) is the function's code as it is, handler `gate-hook.handler`. Its role needs
// ecs:ListTagsForResource on the services it gates (installers/ecs/ferry-gate-hook-policy.json).
import { ECSClient, ListTagsForResourceCommand } from "@aws-sdk/client-ecs";

export const GATE_TAG = "ferry.gate";
export type GateVerdict = "SUCCEEDED" | "FAILED";
/** Seconds ECS waits before asking again while Ferry has no verdict, unless hookDetails.callBackDelay says otherwise. */
export const DEFAULT_GATE_CALLBACK_SECONDS = 10;

export interface GateHookEvent {
  executionDetails?: { serviceArn?: unknown };
  lifecycleStage?: unknown;
  resourceArn?: unknown;
  hookDetails?: { callBackDelay?: unknown } | null;
}

export interface GateHookAnswer {
  hookStatus: "SUCCEEDED" | "FAILED" | "IN_PROGRESS";
  callBackDelay?: number;
  hookDetails?: Record<string, unknown>;
}

/** The last path segment of a service deployment ARN: its id. */
export function serviceDeploymentId(arn: string): string {
  return arn.slice(arn.lastIndexOf("/") + 1);
}

/** The tag value the agent records and the function reads. */
export function gateTagValue(serviceDeploymentArn: string, stage: string, verdict: GateVerdict): string {
  return `${serviceDeploymentId(serviceDeploymentArn)} ${stage} ${verdict}`;
}

/** The verdict the tag holds for this deployment and stage, or undefined. */
export function verdictFor(tagValue: string | undefined, serviceDeploymentArn: string, stage: string): GateVerdict | undefined {
  const [id, st, verdict] = (tagValue ?? "").split(" ");
  if (id !== serviceDeploymentId(serviceDeploymentArn) || st !== stage) return undefined;
  return verdict === "SUCCEEDED" || verdict === "FAILED" ? verdict : undefined;
}

interface TagReader {
  send(command: ListTagsForResourceCommand): Promise<{ tags?: { key?: string; value?: string }[] }>;
}

/** The handler, reading tags through `client` (the tests give it one pointed at the ECS fake). */
export function createGateHandler(client: () => TagReader): (event: GateHookEvent) => Promise<GateHookAnswer> {
  return async (event) => {
    const serviceArn = event.executionDetails?.serviceArn;
    const deployment = event.resourceArn;
    const stage = event.lifecycleStage;
    // Not an ECS lifecycle-hook invocation: nothing to wait for, and nothing Ferry could approve.
    if (typeof serviceArn !== "string" || typeof deployment !== "string" || typeof stage !== "string") return { hookStatus: "FAILED" };
    const asked = event.hookDetails?.callBackDelay;
    const callBackDelay = typeof asked === "number" && Number.isInteger(asked) && asked >= 1 && asked <= 900 ? asked : DEFAULT_GATE_CALLBACK_SECONDS;
    let value: string | undefined;
    try {
      const out = await client().send(new ListTagsForResourceCommand({ resourceArn: serviceArn }));
      value = out.tags?.find((t) => t.key === GATE_TAG)?.value;
    } catch {
      return { hookStatus: "IN_PROGRESS", callBackDelay };
    }
    const verdict = verdictFor(value, deployment, stage);
    return verdict ? { hookStatus: verdict } : { hookStatus: "IN_PROGRESS", callBackDelay };
  };
}

let lambdaClient: ECSClient | undefined;
/** The Lambda entry point: the region and credentials are the function's own (AWS_REGION, its execution role). */
export const handler = createGateHandler(() => (lambdaClient ??= new ECSClient({})));
